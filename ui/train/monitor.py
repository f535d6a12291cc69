"""Train tab, run monitor: the runs table, one run's chart, progress and log, and the overlay of
several runs' curves. Pure functions of the run folders' checked contents (no gradio import), so
the tests call them directly; the chart series come from each method's ``MethodSpec.chart``.
"""
from __future__ import annotations

import html
import time
from collections import OrderedDict

from training import registry
from training.runner.jobs import JobRunner
from training.runner.estimate import measured_remaining
from training.runner.run_files import MetricsTail, collapse_progress, downsample
from training.runner.settings import read_small_json

TABLE_HEADERS = ["run", "method", "state", "step", "queue", "created", "error"]
CHART_POINTS = 500  # per series: a 30,000-step run draws as fast as a short one
LOG_LINES = 60
# Settings never shown in an overlay legend (they differ for every run and say nothing).
LEGEND_SKIP = {"run_dir", "runs_dir"}
MAX_OVERLAY_RUNS = 8


def fmt_s(seconds: float | None) -> str:
    """``1h02m`` or ``3m05s``; ``?`` for None."""
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def runs_table(runs: list[dict]) -> list[list]:
    """Rows of the queue-and-history table (:data:`TABLE_HEADERS`)."""
    return [[r["run_id"], r.get("method", ""), r.get("state", ""),
             f"{r.get('step', 0)}/{r.get('total_steps', '?')}", r.get("queue_position", ""),
             time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.get("created") or 0)),
             (r.get("error") or "").splitlines()[0][:120] if r.get("error") else ""] for r in runs]


def _series(rows: list[dict], key: str) -> tuple[list, list]:
    """(steps, values) of ``key``; a step logged again by a resumed attempt shows its latest value."""
    latest = {r["step"]: r for r in rows if key in r}
    picked = downsample([latest[s] for s in sorted(latest)], CHART_POINTS)
    return [r["step"] for r in picked], [r[key] for r in picked]


def chart(method: str, rows: list[dict]):
    """Plotly figure of one run: a panel per ``ChartPanel`` of its method (loss and validation
    loss for fine-tuning, mean reward and KL for PPO); each series at most :data:`CHART_POINTS`."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    try:
        panels = registry.spec(method).chart
    except ValueError:
        panels = ()
    fig = make_subplots(rows=1, cols=max(1, len(panels)), subplot_titles=[p.title for p in panels] or None)
    for col, panel in enumerate(panels, 1):
        for key, name in panel.series:
            x, y = _series(rows, key)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name), row=1, col=col)
        fig.update_xaxes(title_text="step", row=1, col=col)
    fig.update_layout(height=320, margin=dict(l=40, r=20, t=40, b=40))
    return fig


def differing_settings(configs: dict[str, dict]) -> dict[str, str]:
    """run id -> "name=value, ..." of the settings whose values differ between the runs (the
    method counts as a setting); "" when nothing differs."""
    keys = sorted({k for c in configs.values() for k in c} - LEGEND_SKIP)
    differ = [k for k in keys if len({repr(c.get(k)) for c in configs.values()}) > 1]
    # Escaped: config.json is untrusted and plotly renders some HTML tags in legend text.
    return {rid: html.escape(", ".join(f"{k}={c.get(k)}" for k in differ)[:200]) for rid, c in configs.items()}


def overlay_series(runs: dict[str, tuple[str, list[dict]]]) -> dict[str, list[dict]]:
    """metric key -> [{"run_id", "steps", "values"}] for every chart series of the runs' methods
    (``runs``: run id -> (method, metric rows)); keys in the registry's order."""
    out: dict[str, list[dict]] = {}
    for run_id, (method, rows) in runs.items():
        try:
            panels = registry.spec(method).chart
        except ValueError:
            continue
        for key, _ in (s for p in panels for s in p.series):
            x, y = _series(rows, key)
            if x:
                out.setdefault(key, []).append({"run_id": run_id, "steps": x, "values": y})
    return out


def overlay_chart(series: dict[str, list[dict]], legend: dict[str, str]):
    """Plotly figure: one panel per metric, one line per run, legend "run id (differing settings)"."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = {k: n for spec in registry.methods().values() for p in spec.chart for k, n in p.series}
    keys = list(series)
    fig = make_subplots(rows=1, cols=max(1, len(keys)), subplot_titles=[names.get(k, k) for k in keys] or None)
    colours: dict[str, str] = {}  # one colour and one legend entry per run across the panels
    for col, key in enumerate(keys, 1):
        for line in series[key]:
            rid = line["run_id"]
            first = rid not in colours
            colour = colours.setdefault(rid, f"hsl({(len(colours) * 67) % 360},70%,45%)")
            label = f"{rid} ({legend[rid]})" if legend.get(rid) else rid
            fig.add_trace(go.Scatter(x=line["steps"], y=line["values"], mode="lines+markers", name=label,
                                     legendgroup=rid, showlegend=first, line=dict(color=colour)), row=1, col=col)
        fig.update_xaxes(title_text="step", row=1, col=col)
    fig.update_layout(height=360, margin=dict(l=40, r=20, t=40, b=40), legend=dict(orientation="h"))
    return fig


def progress_html(status: dict) -> str:
    """A progress bar with state, step, elapsed and estimated time (and the attempt, if resumed)."""
    step, total = status.get("step") or 0, status.get("total_steps") or 1
    start = status.get("started") or status.get("launched")
    end = status.get("finished") or time.time()
    elapsed = end - start if start else None
    pct = min(100, 100 * step / max(1, total))
    attempts = status.get("attempts") or []
    attempt = f" · attempt {len(attempts) + 1}" if attempts else ""
    measured = measured_remaining(status) if status.get("state") == "running" else None
    if measured:  # this run's own step time replaces the estimate made before it started
        guess = f"about {fmt_s(measured[1])} left (measured {measured[0]:.1f} s/step)"
    else:
        guess = f"estimated {fmt_s(status.get('estimate_s'))}"
    return (f"<div id='train-progress'><div style='background:#eee;border-radius:4px;height:14px'>"
            f"<div style='width:{pct:.0f}%;background:#f97316;height:14px;border-radius:4px'></div></div>"
            f"<span>{html.escape(str(status.get('state', '')))}: step {step}/{total} · elapsed {fmt_s(elapsed)} / "
            f"{guess}{attempt}</span></div>")


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
        return {"status": status, "metrics": self.metrics(run_id),
                "log": collapse_progress(run.log_tail(20_000), LOG_LINES)}

    def metrics(self, run_id: str) -> list[dict]:
        """The metric rows of ``run_id`` (read since the last call). Raises ValueError like ``info``."""
        run = self.runner.run(run_id)
        tail = self._metrics.pop(run_id, None) or MetricsTail(run.metrics_file)
        self._metrics[run_id] = tail
        while len(self._metrics) > self.keep:
            self._metrics.popitem(last=False)
        return tail.read()

    def overlay(self, run_ids) -> dict:
        """{"series": metric -> lines, "legend": run id -> differing settings} of up to
        :data:`MAX_OVERLAY_RUNS` runs.

        Raises:
            ValueError: not a list of run ids, too many, or a bad or unknown id (named).
        """
        if isinstance(run_ids, str) or not isinstance(run_ids, (list, tuple)):
            raise ValueError(f"run_ids must be a list of run ids, got {type(run_ids).__name__}.")
        if len(run_ids) > MAX_OVERLAY_RUNS:
            raise ValueError(f"run_ids: at most {MAX_OVERLAY_RUNS} runs in one chart, got {len(run_ids)}.")
        runs, configs = {}, {}
        for run_id in dict.fromkeys(run_ids):
            status = self.runner.status(run_id)
            runs[run_id] = (status.get("method", ""), self.metrics(run_id))
            config = read_small_json(self.runner.run(run_id).config_file)
            configs[run_id] = {"method": status.get("method"), **(config if isinstance(config, dict) else {})}
        return {"series": overlay_series(runs), "legend": differing_settings(configs)}
