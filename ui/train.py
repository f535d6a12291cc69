"""Train tab: start full / LoRA / PPO runs in the background and watch them.

The UI process never trains: Start writes the run's config through ``training.jobs.JobRunner``,
which starts a child process; every other handler only reads the run folders (status.json,
metrics.jsonl, train.log) and never starts a queued run (the runner's watcher thread does).
A ``gr.Timer`` refreshes the table, chart, progress and log while a run is queued or running.
Named API endpoints: ``/start_run``, ``/list_runs``, ``/cancel_run``, ``/run_metrics``.
"""
from __future__ import annotations

import json
import shlex
import time
from collections import OrderedDict

import gradio as gr

from summarizer.runs import finished_runs
from training.estimate import estimate, finished_for_calibration
from training.full import FullConfig
from training.jobs import JobRunner, RunsFolderError, config_class
from training.lora import LoraConfig
from training.ppo import PPOConfig
from training.run_files import MetricsTail, collapse_progress, downsample
from training.settings import read_small_json

# Handlers here only read files: their own queue, so they never wait behind model work.
RUNS_QUEUE = "train-runs"
METHODS = {"full": ("Full fine-tune", FullConfig), "lora": ("LoRA", LoraConfig), "ppo": ("PPO detox", PPOConfig)}
_TUNING = [("train_size", "Training dialogues", int), ("val_size", "Validation dialogues", int),
           ("eval_steps", "Validate every N steps", int), ("max_steps", "Max steps", int),
           ("batch_size", "Batch size", int), ("learning_rate", "Learning rate", float)]
# Form fields per method: (config field, label, component kind). Defaults come from the config class.
FIELDS = {
    "full": _TUNING,
    "lora": _TUNING + [("lora_r", "LoRA r", int), ("lora_alpha", "LoRA alpha", float)],
    "ppo": [("train_size", "Training dialogues", int), ("max_steps", "PPO steps", int),
            ("batch_size", "Batch size", int), ("mini_batch_size", "Mini-batch size", int),
            ("learning_rate", "Learning rate", float), ("init_kl_coef", "Initial KL coefficient", float),
            ("output_min_length", "Min output tokens", int), ("output_max_length", "Max output tokens", int)],
}
TABLE_HEADERS = ["run", "method", "state", "step", "queue", "created", "error"]
MAX_SETTINGS_CHARS = 2_000_000  # above any real settings; a 1M-character path is refused by name
CHART_POINTS = 500  # per series: a 30,000-step run draws as fast as a short one
LOG_LINES = 60


def _default(cls, name):
    return cls.__dataclass_fields__[name].default


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


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


def command_preview(runner: JobRunner, method: str, values: dict, num_processes: int) -> str:
    """The argument list the runner will run, and the same run as flags."""
    cmd = runner.command(method, runner.root / "<new run id>", num_processes)
    defaults = {k: f.default for k, f in config_class(method).__dataclass_fields__.items()}
    flags = [f"--{k}={v}" for k, v in values.items() if v not in (None, "") and v != defaults.get(k)]
    return (f"# the job runner runs (config.json holds every field):\n{shlex.join(map(str, cmd))}\n"
            f"# equivalent with flags:\n{shlex.join(['python', '-m', f'training.{method}', *flags])}")


def estimate_markdown(est) -> str:
    return (f"Estimated time on this machine: about **{_fmt_s(est.seconds)}** (about {_fmt_s(est.fixed_s)} "
            f"for start-up, imports and loading the model and data + {_fmt_s(est.variable_s)} for the "
            f"steps and validation passes); {est.basis}.")


def runs_table(runs: list[dict]) -> list[list]:
    return [[r["run_id"], r.get("method", ""), r.get("state", ""),
             f"{r.get('step', 0)}/{r.get('total_steps', '?')}", r.get("queue_position", ""),
             time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.get("created") or 0)),
             (r.get("error") or "").splitlines()[0][:120] if r.get("error") else ""] for r in runs]


def chart(method: str, rows: list[dict]):
    """Plotly figure: training and validation loss (fine-tuning) or mean reward and KL (PPO);
    each series downsampled to :data:`CHART_POINTS` points."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    def series(key):
        picked = downsample([r for r in rows if key in r], CHART_POINTS)
        return [r["step"] for r in picked], [r[key] for r in picked]

    if method == "ppo":
        fig = make_subplots(rows=1, cols=2, subplot_titles=("mean reward (nothate logit)", "KL to reference"))
        for col, (key, name) in enumerate((("reward_mean", "mean reward"), ("kl", "KL")), 1):
            x, y = series(key)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name), row=1, col=col)
    else:
        fig = go.Figure()
        for key, name in (("loss", "training loss"), ("eval_loss", "validation loss")):
            x, y = series(key)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name))
        fig.update_layout(xaxis_title="step", yaxis_title="loss")
    fig.update_layout(height=320, margin=dict(l=40, r=20, t=40, b=40))
    return fig


def progress_html(status: dict) -> str:
    step, total = status.get("step") or 0, status.get("total_steps") or 1
    start = status.get("started") or status.get("launched")
    end = status.get("finished") or time.time()
    elapsed = end - start if start else None
    pct = min(100, 100 * step / max(1, total))
    return (f"<div id='train-progress'><div style='background:#eee;border-radius:4px;height:14px'>"
            f"<div style='width:{pct:.0f}%;background:#f97316;height:14px;border-radius:4px'></div></div>"
            f"<span>{status.get('state', '')}: step {step}/{total} · elapsed {_fmt_s(elapsed)} / "
            f"estimated {_fmt_s(status.get('estimate_s'))}</span></div>")


class RunReader:
    """A run's status, metrics (read incrementally, the latest 32 runs kept) and log tail."""

    def __init__(self, runner: JobRunner, keep: int = 32):
        self.runner = runner
        self.keep = keep
        self._metrics: OrderedDict[str, MetricsTail] = OrderedDict()

    def info(self, run_id: str) -> dict:
        """{"status", "metrics", "log"} of ``run_id``. Raises ValueError for a bad or unknown id."""
        status = self.runner.status(run_id)
        run = self.runner.run(run_id)
        tail = self._metrics.pop(run_id, None) or MetricsTail(run.metrics_file)
        self._metrics[run_id] = tail
        while len(self._metrics) > self.keep:
            self._metrics.popitem(last=False)
        return {"status": status, "metrics": tail.read(), "log": collapse_progress(run.log_tail(20_000), LOG_LINES)}


def run_settings(runner: JobRunner, run_id: str) -> tuple[str, dict, int] | None:
    """(method, settings, processes) of a run from its config.json, validated by the method's
    config class; None when missing or invalid."""
    status = runner.status(run_id)
    method = status.get("method")
    if method not in METHODS:
        return None
    values = read_small_json(runner.run(run_id).config_file)
    try:
        config = METHODS[method][1](**values)
    except (TypeError, ValueError):
        return None
    return method, config.to_dict(), status.get("num_processes") or 1


def build(studio) -> None:
    """The Train tab. Reads ``studio.runs_dir``, ``studio.dataset``, ``studio.slots.config.base``
    and ``studio.toxicity.model_name``; starts runs through a :class:`JobRunner`. A runs folder
    that cannot be written shows its message and disables Start (the rest of the app runs)."""
    runner = JobRunner(studio.runs_dir)
    runner.start_watcher()
    reader = RunReader(runner)
    config_cache: dict = {}

    def lora_choices():
        return [("fresh adapter", "")] + [(r.label, str(r.path)) for r in finished_runs(runner.root, "lora")]

    def current_estimate(method: str, values: dict):
        try:
            runs = runner.list_runs()
        except RunsFolderError:
            runs = []
        return estimate(method, values, finished_for_calibration(runs, config_cache))

    # ---- handlers (each reads or writes run folders only) ----------------------------------------
    def start_run(method: str, settings_json: str, num_processes: float = 1) -> str:
        """Queue a run. Reads: the settings. Writes: a new run folder. Returns the run id."""
        try:
            config_class(method)
            values = parse_settings(settings_json)
            if isinstance(values, dict):
                if values.get("base_model") is None or (isinstance(values["base_model"], str)
                                                        and not values["base_model"].strip()):
                    values["base_model"] = studio.slots.config.base  # the app's base, not the hub id
                values.setdefault("dataset", str(studio.dataset))
                if method == "ppo":
                    values.setdefault("toxicity_model", studio.toxicity.model_name)
            try:
                est = current_estimate(method, values).seconds
            except (ValueError, TypeError, OSError, OverflowError, AttributeError):
                est = None  # the settings are bad: submit says which
            return runner.submit(method, values, num_processes, estimate_s=est)
        except (ValueError, TypeError) as err:
            raise gr.Error(str(err), print_exception=False) from None

    def list_runs() -> list[dict]:
        """Every run (queued, running and finished), newest first. Reads: the runs folder."""
        try:
            return runner.list_runs()
        except RunsFolderError as err:
            raise gr.Error(str(err), print_exception=False) from None

    def cancel_run(run_id: str) -> dict:
        """Ask the run to stop (graceful, then killed after a grace period). Writes: cancel file."""
        try:
            return runner.cancel(run_id)
        except ValueError as err:
            raise gr.Error(str(err), print_exception=False) from None

    def run_metrics(run_id: str) -> dict:
        """A run's status, metric rows and log tail (latest lines, progress bars collapsed).
        Reads: status.json, metrics.jsonl, train.log."""
        try:
            return reader.info(run_id)
        except ValueError as err:
            raise gr.Error(str(err), print_exception=False) from None

    def refresh(run_id: str | None):
        """Reads the runs folder; updates table, run picker, chart, progress, log, timer."""
        try:
            runs = runner.list_runs()
        except RunsFolderError as err:
            return ([], gr.update(choices=[], value=None), None, f"<p>{_escape(str(err))}</p>", "",
                    gr.Timer(active=False), gr.update(choices=[("fresh adapter", "")]))
        ids = [r["run_id"] for r in runs]
        if run_id not in ids:
            active = [r for r in runs if r.get("state") in ("running", "queued")]
            run_id = (active or runs or [{}])[0].get("run_id")
        busy = any(r.get("state") in ("running", "queued") for r in runs)
        try:
            info = reader.info(run_id) if run_id else None
        except ValueError:
            info = None
        if info is None:
            return (runs_table(runs), gr.update(choices=ids, value=None), None, "", "", gr.Timer(active=busy),
                    gr.update(choices=lora_choices()))
        return (runs_table(runs), gr.update(choices=ids, value=run_id),
                chart(info["status"].get("method", ""), info["metrics"]), progress_html(info["status"]),
                info["log"], gr.Timer(active=busy), gr.update(choices=lora_choices()))

    # ---- layout ----------------------------------------------------------------------------------
    gr.Markdown("Train in the background: the app starts each run as a separate process (one at a "
                "time; others wait in a queue) and keeps everything in the runs folder "
                f"`{runner.root}`. Finished runs appear in the Compare tab's model pickers.")
    if runner.problem:
        gr.Markdown(f"**Training is disabled:** {runner.problem}", elem_id="train-unavailable")
    base = gr.Textbox(value=studio.slots.config.base, label="Base model (hub id or folder)", elem_id="train-base")
    timer = gr.Timer(2.0, active=False)
    start_outputs, form_by_method = [], {}
    with gr.Tabs(elem_id="train-methods") as method_tabs:
        for method, (title, cls) in METHODS.items():
            with gr.Tab(title, id=f"train-{method}"):
                start_outputs.append(_method_form(method, title, cls, base, runner, lora_choices,
                                                  current_estimate, start_run, form_by_method))
    start_adapter_picker = form_by_method["ppo"]["start_adapter"]

    with gr.Row():
        picked = gr.Dropdown(label="Run", choices=[], elem_id="train-run-picked", scale=3,
                             allow_custom_value=True)
        clone = gr.Button("Clone settings", elem_id="train-clone", scale=1)
        cancel = gr.Button("Cancel run", variant="stop", elem_id="train-cancel", scale=1)
    progress = gr.HTML(elem_id="train-progress-box")
    plot = gr.Plot(label="Live metrics", elem_id="train-plot")
    table = gr.Dataframe(headers=TABLE_HEADERS, label="Queue and history", interactive=False, elem_id="train-runs")
    log_tail = gr.Textbox(label="Log (latest lines)", lines=10, max_lines=20, autoscroll=True, elem_id="train-log")

    form_outputs = [method_tabs, base] + [c for m in METHODS for c in form_by_method[m].values()]

    def restore(run_id: str | None):
        """Reads the picked run's config.json; selects its method's sub-tab and fills that form."""
        no_change = [gr.update()] * len(form_outputs)
        try:
            found = run_settings(runner, run_id) if run_id else None
        except ValueError:
            found = None
        if found is None:
            return no_change
        method, values, procs = found
        updates = {**values, "num_processes": procs, "start_adapter": values.get("start_adapter") or ""}
        out = [gr.Tabs(selected=f"train-{method}"), values["base_model"]]
        for m in METHODS:
            out += [gr.update(value=updates[name]) if m == method and name in updates else gr.update()
                    for name in form_by_method[m]]
        return out

    outs = [table, picked, plot, progress, log_tail, timer, start_adapter_picker]
    for start, on_start, form in start_outputs:
        start.click(on_start, form, [picked, timer], api_visibility="private",
                    concurrency_id=RUNS_QUEUE, concurrency_limit=4).then(
            refresh, picked, outs, api_visibility="private", concurrency_id=RUNS_QUEUE)
    cancel.click(lambda r: cancel_run(r) and None, picked, None, api_visibility="private",
                 concurrency_id=RUNS_QUEUE).then(refresh, picked, outs, api_visibility="private",
                                                 concurrency_id=RUNS_QUEUE)
    clone.click(restore, picked, form_outputs, api_visibility="private", concurrency_id=RUNS_QUEUE)
    timer.tick(refresh, picked, outs, api_visibility="private", concurrency_id=RUNS_QUEUE,
               concurrency_limit=4, show_progress="hidden")
    picked.select(refresh, picked, outs, api_visibility="private", concurrency_id=RUNS_QUEUE)

    # Page load: rebuild the history from the folders, then bring back the selected run's method
    # and settings (a reload must not show defaults while a LoRA run is selected).
    demo = gr.context.Context.root_block
    demo.load(refresh, picked, outs, api_visibility="private", concurrency_id=RUNS_QUEUE).then(
        restore, picked, form_outputs, api_visibility="private", concurrency_id=RUNS_QUEUE)

    gr.api(start_run, api_name="start_run", concurrency_id=RUNS_QUEUE, concurrency_limit=4)
    gr.api(list_runs, api_name="list_runs", concurrency_id=RUNS_QUEUE, concurrency_limit=4)
    gr.api(cancel_run, api_name="cancel_run", concurrency_id=RUNS_QUEUE, concurrency_limit=4)
    gr.api(run_metrics, api_name="run_metrics", concurrency_id=RUNS_QUEUE, concurrency_limit=4)


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def _method_form(method, title, cls, base, runner, lora_choices, current_estimate, start_run, form_by_method):
    """One method's sub-tab: number fields, processes, command preview, estimate, Start button.
    Registers its components (by setting name) in ``form_by_method[method]``."""
    components = {}
    with gr.Row():
        for name, label, kind in FIELDS[method]:
            components[name] = gr.Number(value=_default(cls, name), label=label,
                                         precision=0 if kind is int else None,
                                         elem_id=f"train-{method}-{name.replace('_', '-')}")
    if method == "ppo":
        components["start_adapter"] = gr.Dropdown(choices=lora_choices(), value="", label="Starting adapter",
                                                  allow_custom_value=True, elem_id="train-ppo-start-adapter")
    procs = gr.Number(value=1, precision=0, label="Processes (accelerate launch when > 1)",
                      elem_id=f"train-{method}-processes")
    components["num_processes"] = procs
    preview = gr.Code(label="Command", language="shell", interactive=False)
    cost = gr.Markdown(elem_id=f"train-{method}-estimate")
    start = gr.Button(f"Start {title} run", variant="primary", elem_id=f"train-{method}-start",
                      interactive=not runner.problem)
    form_by_method[method] = components
    names = [n for n in components if n != "num_processes"]
    kinds = {n: k for n, _, k in FIELDS[method]}

    def collect(base_model, *vals):
        values = {"base_model": base_model}
        for n, v in zip(names, vals):
            if n == "start_adapter":
                values[n] = v or None
            elif v is not None:
                values[n] = kinds[n](v)
        return values

    def show(base_model, procs_n, *vals):
        """Reads the form; updates the command preview and the cost estimate."""
        try:
            values = collect(base_model, *vals)
            return (command_preview(runner, method, values, int(procs_n or 1)),
                    estimate_markdown(current_estimate(method, values)))
        except (ValueError, TypeError, OSError, OverflowError) as err:
            return "", f"Cannot estimate: {err}"

    def on_start(base_model, procs_n, *vals):
        """Reads the form; writes a new run folder; selects it and starts the timer."""
        run_id = start_run(method, json.dumps(collect(base_model, *vals)), procs_n or 1)
        gr.Info(f"Queued run {run_id}.")
        return gr.update(choices=[r["run_id"] for r in runner.list_runs()], value=run_id), gr.Timer(active=True)

    form = [base, procs, *[components[n] for n in names]]
    for comp in form:
        comp.change(show, form, [preview, cost], api_visibility="private",
                    concurrency_id=RUNS_QUEUE, concurrency_limit=4)
    gr.context.Context.root_block.load(show, form, [preview, cost], api_visibility="private",
                                       concurrency_id=RUNS_QUEUE)
    return start, on_start, form
