"""Train tab, method forms: one sub-tab per registered method, built from its ``MethodSpec``
(number fields, finished-run pickers, processes), with the command preview and the time estimate.
"""
from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field

import gradio as gr

from summarizer.runs import run_slot
from training import registry
from training.runner.estimate import LONG_RUN_S
from training.runner.jobs import JobRunner
from ui.access import teacher_only
from ui.train.monitor import fmt_s

RUNS_QUEUE = "train-runs"  # handlers here only read files: never behind model work
MAX_SETTINGS_CHARS = 2_000_000  # above any real settings; a 1M-character path is refused by name


def parse_settings(settings_json) -> dict:
    """The ``/start_run`` settings text as a dict (its fields are checked by the config class).

    Raises:
        ValueError: not text, too long, not JSON, nested too deeply (the message names ``settings``).
    """
    if settings_json is None or (isinstance(settings_json, str) and not settings_json.strip()):
        return {}
    if not isinstance(settings_json, str):
        raise ValueError(f"settings must be JSON text such as '{{\"max_steps\": 50}}', "
                         f"got {type(settings_json).__name__}.")
    if len(settings_json) > MAX_SETTINGS_CHARS:
        raise ValueError(f"settings is too long ({len(settings_json):,} characters; at most "
                         f"{MAX_SETTINGS_CHARS:,}).")
    try:
        return json.loads(settings_json)
    except RecursionError:
        raise ValueError("settings is nested too deeply: give one JSON object of setting: value pairs.") from None
    except ValueError as err:
        raise ValueError(f"settings is not valid JSON ({err}); give an object such as "
                         "'{\"max_steps\": 50}'.") from None


def command_preview(runner: JobRunner, method: str, values: dict, num_processes: int,
                    accelerate_config: str | None = None) -> str:
    """The argument list the runner will run (with ``accelerate launch --config_file`` when an
    accelerate config is given), and the same run as flags."""
    cmd = runner.command(method, runner.root / "<new run id>", num_processes, accelerate_config)
    spec = registry.spec(method)
    defaults = {k: f.default for k, f in spec.config.__dataclass_fields__.items()}
    flags = [f"--{k}={v}" for k, v in values.items() if v not in (None, "") and v != defaults.get(k)]
    return (f"# the job runner runs (config.json holds every field):\n{shlex.join(map(str, cmd))}\n"
            f"# equivalent with flags:\n{shlex.join(['python', '-m', spec.module, *flags])}")


def estimate_markdown(est) -> str:
    """The estimate under a form, with a warning first when the run will take long here."""
    warn = ""
    if est.seconds > LONG_RUN_S:
        warn = (f"**This run will take long on this machine (about {fmt_s(est.seconds)}).** For a lesson, "
                "lower the steps or the train size, or start it on a GPU machine. Once it runs, the time "
                "left is measured from its own steps.\n\n")
    return (f"{warn}Estimated time on this machine: about **{fmt_s(est.seconds)}** (about {fmt_s(est.fixed_s)} "
            f"for start-up, imports and loading the model and data + {fmt_s(est.variable_s)} for the "
            f"steps and validation passes); {est.basis}.")


def run_choices(runs: list[dict], picker: registry.RunPicker) -> list[tuple[str, str]]:
    """A picker's choices: "none" then the completed runs in ``runs`` (checked statuses from
    :meth:`JobRunner.list_runs`, newest first) that fill its slot and have a model folder.

    Built from the list the caller already has, so a refresh reads each status.json once (the
    runner's cache), however many pickers the forms hold.
    """
    found = [(f"{r['run_id']} ({r.get('method', '')})", r["run_dir"]) for r in runs
             if r.get("state") == "completed" and run_slot(r) == picker.slot and r.get("run_dir")
             and _has_model(r["run_dir"])]
    return [(picker.none_label, "")] + found


def _has_model(run_dir: str) -> bool:
    """True when the run's ``model/`` is a real folder (not a planted link)."""
    model = os.path.join(run_dir, "model")
    return os.path.isdir(model) and not os.path.islink(model)


@dataclass
class MethodForm:
    """One method's sub-tab: ``components`` by config field (plus ``num_processes``), the
    ``pickers`` among them, and its preview, estimate and Start button."""

    spec: registry.MethodSpec
    components: dict = field(default_factory=dict)
    pickers: dict = field(default_factory=dict)
    preview: gr.Code | None = None
    cost: gr.Markdown | None = None
    start: gr.Button | None = None

    @property
    def names(self) -> list[str]:
        """The config fields of the form, in the order of :meth:`inputs` after base and processes."""
        return [n for n in self.components if n != "num_processes"]

    def inputs(self, base, accelerate) -> list:
        return [base, self.components["num_processes"], accelerate, *[self.components[n] for n in self.names]]

    def collect(self, base_model, *vals) -> dict:
        """Form values -> settings dict (a picker's "" -> None; numbers cast to the field's kind)."""
        kinds = {f.name: f.kind for f in self.spec.fields}
        values = {"base_model": base_model}
        for n, v in zip(self.names, vals):
            if n in self.pickers:
                values[n] = v or None
            elif v is not None:
                values[n] = kinds[n](v)
        return values


def build_form(spec: registry.MethodSpec, runner: JobRunner) -> MethodForm:
    """The components of ``spec``'s sub-tab (call inside its ``gr.Tab``)."""
    form = MethodForm(spec)
    defaults = spec.config.__dataclass_fields__
    with gr.Row():
        for f in spec.fields:
            elem_id = f"train-{spec.name}-{f.name.replace('_', '-')}"
            form.components[f.name] = (
                gr.Dropdown(list(f.choices), value=defaults[f.name].default, label=f.label, elem_id=elem_id)
                if f.choices else
                gr.Number(value=defaults[f.name].default, label=f.label, precision=0 if f.kind is int else None,
                          elem_id=elem_id))
    for picker in spec.pickers:
        form.pickers[picker.name] = form.components[picker.name] = gr.Dropdown(
            # No choices in the built page, which every login receives: the teacher's page load fills them.
            choices=[], value="", label=picker.label, allow_custom_value=True,
            elem_id=f"train-{spec.name}-{picker.name.replace('_', '-')}")
    form.components["num_processes"] = gr.Number(
        value=1, precision=0, label="Processes (accelerate launch when > 1)" if spec.max_processes is None
        else f"Processes (1: {spec.title} runs in one process)", elem_id=f"train-{spec.name}-processes")
    form.preview = gr.Code(label="Command", language="shell", interactive=False)
    form.cost = gr.Markdown(elem_id=f"train-{spec.name}-estimate")
    form.start = gr.Button(f"Start {spec.title} run", variant="primary", elem_id=f"train-{spec.name}-start",
                           interactive=not runner.problem)
    return form


def wire_form(form: MethodForm, base, accelerate, handlers, picked, timer, then) -> dict:
    """Preview and estimate on every change; Start queues the run, selects it in ``picked``,
    starts ``timer`` and calls ``then(event)`` to chain the refresh. Returns the page-load hook
    (preview and estimate of the restored form) as ``demo.load`` keyword arguments."""
    runner = handlers.runner
    spec = form.spec

    @teacher_only
    def show(base_model, procs_n, accel, *vals):
        """Reads the form; updates the command preview and the cost estimate."""
        try:
            values = form.collect(base_model, *vals)
            note = f"\n\n{spec.data_note(values, runner.root)}" if spec.data_note else ""  # e.g. DPO's pair count
            return (command_preview(runner, spec.name, values, int(procs_n or 1), accel or None),
                    estimate_markdown(handlers.current_estimate(spec.name, values)) + note)
        except (ValueError, TypeError, OSError, OverflowError) as err:
            return "", f"Cannot estimate: {err}"

    @teacher_only
    def start_clicked(base_model, procs_n, accel, *vals):
        """Reads the form; writes a new run folder; selects it and starts the timer."""
        run_id = handlers.queue_run(spec.name, json.dumps(form.collect(base_model, *vals)), procs_n or 1, accel or "")
        gr.Info(f"Queued run {run_id}.")
        return gr.update(choices=[r["run_id"] for r in runner.list_runs()], value=run_id), gr.Timer(active=True)

    inputs = form.inputs(base, accelerate)
    for comp in inputs:
        comp.change(show, inputs, [form.preview, form.cost], api_visibility="private",
                    concurrency_id=RUNS_QUEUE, concurrency_limit=4)
    then(form.start.click(start_clicked, inputs, [picked, timer], api_visibility="private",
                          concurrency_id=RUNS_QUEUE, concurrency_limit=4))
    return {"fn": show, "inputs": inputs, "outputs": [form.preview, form.cost], "concurrency_id": RUNS_QUEUE}
