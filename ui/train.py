"""Train tab: start full / LoRA / PPO runs in the background and watch them.

The UI process never trains: Start writes the run's config through ``training.jobs.JobRunner``,
which starts a child process; every other handler only reads the run folders (status.json,
metrics.jsonl, train.log). A ``gr.Timer`` refreshes the table, chart, progress and log while a
run is queued or running. Named API endpoints: ``/start_run``, ``/list_runs``, ``/cancel_run``,
``/run_metrics``.
"""
from __future__ import annotations

import json
import shlex
import time

import gradio as gr

from summarizer.runs import finished_runs
from training import common
from training.jobs import JobRunner, config_class
from training.full import FullConfig
from training.lora import LoraConfig
from training.ppo import PPOConfig

# Handlers here only read files: their own queue, so they never wait behind model work.
RUNS_QUEUE = "train-runs"
METHODS = {"full": ("Full fine-tune", FullConfig), "lora": ("LoRA", LoraConfig), "ppo": ("PPO detox", PPOConfig)}
# Form fields per method: (config field, label, component kind). Defaults come from the config class.
FIELDS = {
    "full": [("train_size", "Training dialogues", int), ("max_steps", "Max steps", int),
             ("batch_size", "Batch size", int), ("learning_rate", "Learning rate", float)],
    "lora": [("train_size", "Training dialogues", int), ("max_steps", "Max steps", int),
             ("batch_size", "Batch size", int), ("learning_rate", "Learning rate", float),
             ("lora_r", "LoRA r", int), ("lora_alpha", "LoRA alpha", float)],
    "ppo": [("train_size", "Training dialogues", int), ("max_steps", "PPO steps", int),
            ("batch_size", "Batch size", int), ("mini_batch_size", "Mini-batch size", int),
            ("learning_rate", "Learning rate", float), ("init_kl_coef", "Initial KL coefficient", float),
            ("output_min_length", "Min output tokens", int), ("output_max_length", "Max output tokens", int)],
}
TABLE_HEADERS = ["run", "method", "state", "step", "queue", "created", "error"]


def _default(cls, name):
    return cls.__dataclass_fields__[name].default


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def estimate(method: str, values: dict) -> float:
    cls = METHODS[method][1]
    get = lambda k: values.get(k, _default(cls, k))
    target = get("output_max_length") if method == "ppo" else get("max_target_tokens")
    return common.estimate_seconds(method, get("base_model"), int(get("max_steps")), int(get("batch_size")),
                                   int(get("max_source_tokens")), int(target),
                                   ppo_epochs=int(values.get("ppo_epochs", 1)))


def command_preview(runner: JobRunner, method: str, values: dict, num_processes: int) -> str:
    """The argument list the runner will run, and the same run as flags."""
    cmd = runner.command(method, runner.root / "<new run id>", int(num_processes))
    defaults = {k: f.default for k, f in config_class(method).__dataclass_fields__.items()}
    flags = [f"--{k}={v}" for k, v in values.items() if v not in (None, "") and v != defaults.get(k)]
    return (f"# the job runner runs (config.json holds every field):\n{shlex.join(map(str, cmd))}\n"
            f"# equivalent with flags:\n{shlex.join(['python', '-m', f'training.{method}', *flags])}")


def runs_table(runs: list[dict]) -> list[list]:
    return [[r["run_id"], r.get("method", ""), r.get("state", ""),
             f"{r.get('step', 0)}/{r.get('total_steps', '?')}", r.get("queue_position", ""),
             time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.get("created") or 0)),
             (r.get("error") or "").splitlines()[0][:120] if r.get("error") else ""] for r in runs]


def chart(method: str, rows: list[dict]):
    """Plotly figure: training and validation loss (fine-tuning) or mean reward and KL (PPO)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if method == "ppo":
        fig = make_subplots(rows=1, cols=2, subplot_titles=("mean reward (nothate logit)", "KL to reference"))
        steps = [r for r in rows if "reward_mean" in r]
        fig.add_trace(go.Scatter(x=[r["step"] for r in steps], y=[r["reward_mean"] for r in steps],
                                 mode="lines+markers", name="mean reward"), row=1, col=1)
        fig.add_trace(go.Scatter(x=[r["step"] for r in steps], y=[r["kl"] for r in steps],
                                 mode="lines+markers", name="KL"), row=1, col=2)
    else:
        fig = go.Figure()
        train = [r for r in rows if "loss" in r]
        val = [r for r in rows if "eval_loss" in r]
        fig.add_trace(go.Scatter(x=[r["step"] for r in train], y=[r["loss"] for r in train],
                                 mode="lines+markers", name="training loss"))
        fig.add_trace(go.Scatter(x=[r["step"] for r in val], y=[r["eval_loss"] for r in val],
                                 mode="lines+markers", name="validation loss"))
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


def build(studio) -> None:
    """The Train tab. Reads ``studio.runs_dir``, ``studio.dataset``, ``studio.slots.config.base``
    and ``studio.toxicity.model_name``; starts runs through a :class:`JobRunner`."""
    runner = JobRunner(studio.runs_dir)
    runner.start_watcher()

    def lora_choices():
        return [("fresh adapter", "")] + [(r.label, str(r.path)) for r in finished_runs(runner.root, "lora")]

    # ---- handlers (each reads or writes run folders only) ----------------------------------------
    def start_run(method: str, settings_json: str, num_processes: float = 1) -> str:
        """Queue a run. Reads: the settings. Writes: a new run folder. Returns the run id."""
        try:
            values = json.loads(settings_json or "{}")
            values = {"dataset": str(studio.dataset), **values}
            if method == "ppo":
                values.setdefault("toxicity_model", studio.toxicity.model_name)
            est = estimate(method, values) if method in METHODS else None
            return runner.submit(method, values, int(num_processes or 1), estimate_s=est)
        except (ValueError, TypeError) as err:
            raise gr.Error(str(err))

    def list_runs() -> list[dict]:
        """Every run (queued, running and finished), newest first. Reads: the runs folder."""
        runner.tick()
        return runner.list_runs()

    def cancel_run(run_id: str) -> dict:
        """Ask the run to stop (graceful, then killed after a grace period). Writes: cancel file."""
        if not run_id:
            raise gr.Error("Pick a run to cancel.")
        try:
            return runner.cancel(run_id)
        except ValueError as err:
            raise gr.Error(str(err))

    def run_metrics(run_id: str) -> dict:
        """A run's status, metric rows and log tail. Reads: status.json, metrics.jsonl, train.log."""
        try:
            run = runner.run(run_id)
        except ValueError as err:
            raise gr.Error(str(err))
        return {"status": run.status(), "metrics": run.metrics(), "log": run.log_tail(20_000)}

    def refresh(run_id: str | None):
        """Reads the runs folder; updates table, run picker, chart, progress, log, timer."""
        runs = list_runs()
        ids = [r["run_id"] for r in runs]
        if run_id not in ids:
            active = [r for r in runs if r.get("state") in ("running", "queued")]
            run_id = (active or runs or [{}])[0].get("run_id")
        busy = any(r.get("state") in ("running", "queued") for r in runs)
        if not run_id:
            return (runs_table(runs), gr.update(choices=ids, value=None), None, "", "", gr.Timer(active=busy),
                    gr.update(choices=lora_choices()))
        info = run_metrics(run_id)
        return (runs_table(runs), gr.update(choices=ids, value=run_id),
                chart(info["status"].get("method", ""), info["metrics"]), progress_html(info["status"]),
                info["log"][-5000:], gr.Timer(active=busy), gr.update(choices=lora_choices()))

    # ---- layout ----------------------------------------------------------------------------------
    gr.Markdown("Train in the background: the app starts each run as a separate process (one at a "
                "time; others wait in a queue) and keeps everything in the runs folder "
                f"`{runner.root}`. Finished runs appear in the Compare tab's model pickers.")
    base = gr.Textbox(value=studio.slots.config.base, label="Base model (hub id or folder)", elem_id="train-base")
    timer = gr.Timer(2.0, active=False)
    start_outputs = []
    with gr.Tabs():
        for method, (title, cls) in METHODS.items():
            with gr.Tab(title, id=f"train-{method}"):
                inputs = []
                with gr.Row():
                    for name, label, kind in FIELDS[method]:
                        inputs.append(gr.Number(value=_default(cls, name), label=label, precision=0 if kind is int else None,
                                                elem_id=f"train-{method}-{name.replace('_', '-')}"))
                extra = []
                if method == "ppo":
                    extra.append(gr.Dropdown(choices=lora_choices(), value="", label="Starting adapter",
                                             allow_custom_value=True, elem_id="train-ppo-start-adapter"))
                    start_adapter_picker = extra[0]
                procs = gr.Number(value=1, precision=0, label="Processes (accelerate launch when > 1)",
                                  elem_id=f"train-{method}-processes")
                preview = gr.Code(label="Command", language="shell", interactive=False)
                cost = gr.Markdown(elem_id=f"train-{method}-estimate")
                start = gr.Button(f"Start {title} run", variant="primary", elem_id=f"train-{method}-start")
                names = [n for n, _, _ in FIELDS[method]] + (["start_adapter"] if method == "ppo" else [])

                def collect(base_model, *vals, _method=method, _names=names, _fields=FIELDS[method]):
                    kinds = {n: k for n, _, k in _fields}
                    values = {"base_model": base_model}
                    for n, v in zip(_names, vals):
                        if n == "start_adapter":
                            values[n] = v or None
                        elif v is not None:
                            values[n] = kinds[n](v)
                    return values

                def show(base_model, procs_n, *vals, _method=method, _collect=collect):
                    """Reads the form; updates the command preview and the cost estimate."""
                    values = _collect(base_model, *vals)
                    try:
                        est = f"Estimated time on this machine: about **{_fmt_s(estimate(_method, values))}** " \
                              "(rough, from a calibrated CPU figure)."
                    except (ValueError, TypeError) as err:
                        est = f"Cannot estimate: {err}"
                    return command_preview(runner, _method, values, int(procs_n or 1)), est

                def on_start(base_model, procs_n, *vals, _method=method, _collect=collect):
                    """Reads the form; writes a new run folder; selects it and starts the timer."""
                    run_id = start_run(_method, json.dumps(_collect(base_model, *vals)), procs_n or 1)
                    gr.Info(f"Queued run {run_id}.")
                    ids = [r["run_id"] for r in runner.list_runs()]
                    return gr.update(choices=ids, value=run_id), gr.Timer(active=True)

                form = [base, procs, *inputs, *extra]
                for comp in form:
                    comp.change(show, form, [preview, cost], api_visibility="private",
                                concurrency_id=RUNS_QUEUE, concurrency_limit=4)
                start_outputs.append((start, on_start, form, preview, cost, show))

    with gr.Row():
        picked = gr.Dropdown(label="Run", choices=[], elem_id="train-run-picked", scale=3,
                             allow_custom_value=True)
        cancel = gr.Button("Cancel run", variant="stop", elem_id="train-cancel", scale=1)
    progress = gr.HTML(elem_id="train-progress-box")
    plot = gr.Plot(label="Live metrics", elem_id="train-plot")
    table = gr.Dataframe(headers=TABLE_HEADERS, label="Queue and history", interactive=False, elem_id="train-runs")
    log_tail = gr.Textbox(label="Log (tail)", lines=10, max_lines=20, autoscroll=True, elem_id="train-log")

    outs = [table, picked, plot, progress, log_tail, timer, start_adapter_picker]
    for start, on_start, form, preview, cost, show in start_outputs:
        start.click(on_start, form, [picked, timer], api_visibility="private",
                    concurrency_id=RUNS_QUEUE, concurrency_limit=4).then(
            refresh, picked, outs, api_visibility="private", concurrency_id=RUNS_QUEUE)
    cancel.click(lambda r: cancel_run(r) and None, picked, None, api_visibility="private",
                 concurrency_id=RUNS_QUEUE).then(refresh, picked, outs, api_visibility="private",
                                                 concurrency_id=RUNS_QUEUE)
    timer.tick(refresh, picked, outs, api_visibility="private", concurrency_id=RUNS_QUEUE,
               concurrency_limit=4, show_progress="hidden")
    picked.select(refresh, picked, outs, api_visibility="private", concurrency_id=RUNS_QUEUE)

    # Page load: rebuild the history from the folders, re-attach to running runs, fill previews.
    demo = gr.context.Context.root_block
    demo.load(refresh, picked, outs, api_visibility="private", concurrency_id=RUNS_QUEUE)
    for start, on_start, form, preview, cost, show in start_outputs:
        demo.load(show, form, [preview, cost], api_visibility="private", concurrency_id=RUNS_QUEUE)

    gr.api(start_run, api_name="start_run", concurrency_id=RUNS_QUEUE, concurrency_limit=4)
    gr.api(list_runs, api_name="list_runs", concurrency_id=RUNS_QUEUE, concurrency_limit=4)
    gr.api(cancel_run, api_name="cancel_run", concurrency_id=RUNS_QUEUE, concurrency_limit=4)
    gr.api(run_metrics, api_name="run_metrics", concurrency_id=RUNS_QUEUE, concurrency_limit=4)
