"""Train tab: start runs of every registered method in the background, watch, compare, resume,
export and delete them.

The UI process never trains: Start writes the run's config through ``training.runner.jobs.JobRunner``,
which starts a child process; every other handler only reads the run folders (status.json,
metrics.jsonl, train.log) and never starts a queued run (the runner's watcher thread does).
A ``gr.Timer`` refreshes the table, chart, progress and log while a run is queued or running.
The method forms come from ``training.registry`` (``ui/train/form.py``), the monitor from
``ui/train/monitor.py``, the endpoints from ``ui/train/handlers.py``. Named API endpoints:
``/start_run``, ``/list_runs``, ``/cancel_run``, ``/run_metrics``, ``/resume_run``,
``/delete_run``, ``/overlay_runs``, ``/export_run``. :func:`build` returns its page-load hooks
for ``app.py``.
"""
from __future__ import annotations

import html

import gradio as gr

from training import registry
from ui.access import teacher_only
from ui.train.form import RUNS_QUEUE, build_form, parse_settings, run_choices, wire_form
from ui.train.handlers import TrainHandlers, run_settings
from ui.train.monitor import TABLE_HEADERS, chart, overlay_chart, progress_html, runs_table

__all__ = ["build", "parse_settings", "run_settings"]
PRIVATE = dict(api_visibility="private", concurrency_id=RUNS_QUEUE)


def _layout_monitor() -> dict:
    """The run picker, its buttons, progress, live chart, table and log."""
    with gr.Row():
        picked = gr.Dropdown(label="Run", choices=[], elem_id="train-run-picked", scale=3, allow_custom_value=True)
        clone = gr.Button("Clone settings", elem_id="train-clone", scale=1)
        resume = gr.Button("Resume from checkpoint", elem_id="train-resume", scale=1)
        cancel = gr.Button("Cancel run", variant="stop", elem_id="train-cancel", scale=1)
    return {"picked": picked, "clone": clone, "resume": resume, "cancel": cancel,
            "progress": gr.HTML(elem_id="train-progress-box"),
            "plot": gr.Plot(label="Live metrics", elem_id="train-plot"),
            "table": gr.Dataframe(headers=TABLE_HEADERS, label="Queue and history", interactive=False,
                                  elem_id="train-runs"),
            "log": gr.Textbox(label="Log (latest lines)", lines=10, max_lines=20, autoscroll=True,
                              elem_id="train-log")}


def _layout_actions() -> dict:
    """Overlay of several runs; export and delete of the picked run."""
    with gr.Accordion("Compare runs: overlay their curves", open=False):
        overlay_ids = gr.Dropdown(label="Runs", choices=[], multiselect=True, elem_id="train-overlay-runs")
        overlay_plot = gr.Plot(label="Curves against step (legend: the settings that differ)",
                               elem_id="train-overlay-plot")
    with gr.Accordion("Export or delete the picked run", open=False):
        with gr.Row():
            repo = gr.Textbox(label="Hub repo id for the upload command (optional)", elem_id="train-export-repo")
            export = gr.Button("Export as zip", elem_id="train-export")
        zip_file = gr.File(label="Zip (model or adapter, card, metrics, config)", elem_id="train-export-file")
        upload = gr.Code(label="Upload with (after `huggingface-cli login`)", language="shell",
                         interactive=False, elem_id="train-upload-command")
        with gr.Row():
            confirm = gr.Textbox(label="Type the run id to confirm deletion", elem_id="train-delete-confirm")
            delete = gr.Button("Delete run", variant="stop", elem_id="train-delete")
        deleted = gr.Markdown(elem_id="train-delete-result")
    return {"overlay_ids": overlay_ids, "overlay_plot": overlay_plot, "repo": repo, "export": export,
            "zip": zip_file, "upload": upload, "confirm": confirm, "delete": delete, "deleted": deleted}


def _refresher(h: TrainHandlers, forms: dict):
    """The handler that redraws the monitor from the runs folder (and the run pickers' choices)."""
    pickers = [p for form in forms.values() for p in form.spec.pickers if p.name in form.pickers]

    @teacher_only
    def refresh(run_id: str | None):
        """Reads the runs folder; updates table, run picker, chart, progress, log, timer, the
        forms' run pickers and the overlay's run list."""
        try:
            runs = h.runner.list_runs()
        except (ValueError, OSError) as err:
            return ([], gr.update(choices=[], value=None), None, f"<p>{html.escape(str(err))}</p>", "",
                    gr.Timer(active=False), *[gr.update(choices=run_choices([], p)) for p in pickers],
                    gr.update(choices=[]))
        picker_updates = [gr.update(choices=run_choices(runs, p)) for p in pickers]  # from this one listing
        ids = [r["run_id"] for r in runs]
        if run_id not in ids:
            active = [r for r in runs if r.get("state") in ("running", "queued")]
            run_id = (active or runs or [{}])[0].get("run_id")
        busy = any(r.get("state") in ("running", "queued") for r in runs)
        try:
            info = h.reader.info(run_id) if run_id else None
        except ValueError:
            info = None
        shown = ((chart(info["status"].get("method", ""), info["metrics"]), progress_html(info["status"]), info["log"])
                 if info else (None, "", ""))
        return (runs_table(runs), gr.update(choices=ids, value=run_id if info else None), *shown,
                gr.Timer(active=busy), *picker_updates, gr.update(choices=ids))

    return refresh


def _restorer(h: TrainHandlers, forms: dict, n_outputs: int):
    """The handler that brings a run's method and settings back into its form."""
    @teacher_only
    def restore(run_id: str | None):
        """Reads the picked run's config.json; selects its method's sub-tab and fills that form."""
        try:
            found = run_settings(h.runner, run_id) if run_id else None
        except ValueError:
            found = None
        if found is None:
            return [gr.update()] * n_outputs
        method, values, procs = found
        updates = {**values, "num_processes": procs, **{n: values.get(n) or "" for n in forms[method].pickers}}
        out = [gr.Tabs(selected=f"train-{method}"), values["base_model"]]
        for m, form in forms.items():
            out += [gr.update(value=updates[n]) if m == method and n in updates else gr.update()
                    for n in form.components]
        return out

    return restore


def _wire_actions(h: TrainHandlers, mon: dict, act: dict, refresh, outs) -> None:
    """Cancel, resume, overlay, export and delete buttons."""
    @teacher_only
    def overlay(run_ids):
        """Reads the picked runs' metrics and configs; updates the overlay chart."""
        data = h.overlay_runs(run_ids or [])
        return overlay_chart(data["series"], data["legend"])

    @teacher_only
    def export(run_id, repo_id):
        """Writes the picked run's zip; updates the file and the upload command."""
        out = h.export_run(run_id, repo_id or "")
        return out["zip"], out["upload_command"]

    mon["cancel"].click(teacher_only(lambda r: h.cancel_run(r) and None), mon["picked"], None, **PRIVATE).then(
        refresh, mon["picked"], outs, **PRIVATE)
    mon["resume"].click(teacher_only(lambda r: h.resume_run(r) and None), mon["picked"], None, **PRIVATE).then(
        refresh, mon["picked"], outs, **PRIVATE)
    act["overlay_ids"].change(overlay, act["overlay_ids"], act["overlay_plot"], **PRIVATE)
    act["export"].click(export, [mon["picked"], act["repo"]], [act["zip"], act["upload"]], **PRIVATE)
    @teacher_only
    def delete_clicked(run_id, confirm):
        """Reads the picked run and the confirmation; deletes the run folder; updates the note."""
        return h.delete_run(run_id, confirm or "")

    act["delete"].click(delete_clicked, [mon["picked"], act["confirm"]], act["deleted"], **PRIVATE).then(
        refresh, mon["picked"], outs, **PRIVATE)


def build(studio) -> dict:
    """The Train tab. Reads ``studio.runs_dir``, ``studio.dataset``, ``studio.slots.config.base``,
    ``studio.toxicity.model_name`` (and ``studio.accelerate_configs`` if set); starts runs through
    a ``JobRunner``. A runs folder that cannot be written shows its message and disables Start.

    Returns ``{"load": [...]}``: keyword arguments for ``demo.load`` (the monitor and the
    restored settings, then each form's preview and estimate), wired by ``app.py``.
    """
    h = TrainHandlers(studio)
    gr.Markdown("Train in the background: the app starts each run as a separate process (one at a "
                "time; others wait in a queue) and keeps everything in the runs folder "
                f"`{h.runner.root}`. Finished runs appear in the Compare tab's model pickers.")
    if h.runner.problem:
        gr.Markdown(f"**Training is disabled:** {h.runner.problem}", elem_id="train-unavailable")
    base = gr.Textbox(value=studio.slots.config.base, label="Base model (hub id or folder)", elem_id="train-base")
    accelerate = gr.Textbox(label="Accelerate config file (optional, from `accelerate config`; under the runs "
                            "folder)", elem_id="train-accelerate-config")
    timer = gr.Timer(2.0, active=False)
    forms = {}
    with gr.Tabs(elem_id="train-methods") as method_tabs:
        for name, spec in registry.methods().items():
            with gr.Tab(spec.title, id=f"train-{name}"):
                forms[name] = build_form(spec, h.runner)
    mon, act = _layout_monitor(), _layout_actions()
    outs = [mon["table"], mon["picked"], mon["plot"], mon["progress"], mon["log"], timer,
            *[f.components[n] for f in forms.values() for n in f.pickers], act["overlay_ids"]]
    refresh = _refresher(h, forms)
    form_outputs = [method_tabs, base] + [c for f in forms.values() for c in f.components.values()]
    restore = _restorer(h, forms, len(form_outputs))
    then = lambda event: event.then(refresh, mon["picked"], outs, **PRIVATE)  # noqa: E731
    hooks = [wire_form(f, base, accelerate, h, mon["picked"], timer, then) for f in forms.values()]
    _wire_actions(h, mon, act, refresh, outs)
    mon["clone"].click(restore, mon["picked"], form_outputs, **PRIVATE)
    timer.tick(refresh, mon["picked"], outs, concurrency_limit=4, show_progress="hidden", **PRIVATE)
    mon["picked"].select(refresh, mon["picked"], outs, **PRIVATE)
    h.register_api()

    extra = [c for c in form_outputs if all(c is not o for o in outs)]

    @teacher_only
    def load_page(run_id):
        """Page load: the history from the folders, then the selected run's method and settings
        (a reload must not show defaults while a LoRA run is selected)."""
        shown = list(refresh(run_id))
        picked_value = shown[1].get("value") if isinstance(shown[1], dict) else None
        restored = dict(zip(map(id, form_outputs), restore(picked_value)))
        for i, comp in enumerate(outs):  # a form's run picker: choices from refresh, value from restore
            if id(comp) in restored and isinstance(restored[id(comp)], dict):
                shown[i] = {**shown[i], **{k: v for k, v in restored[id(comp)].items() if k != "__type__"}}
        return [*shown, *[restored[id(c)] for c in extra]]

    return {"load": [dict(fn=load_page, inputs=mon["picked"], outputs=outs + extra,
                          concurrency_id=RUNS_QUEUE), *hooks]}
