"""The Prompt Lab tab: up to six prompt templates x N dialogues, one table with CIs, a chart, outputs.

Every handler is a few lines over :func:`summarizer.prompt_lab.run_lab`, which the CLI
(``python -m summarizer.prompt_lab``) also calls and which generates and scores with the Evaluate
tab's code. The run is the named endpoint ``/prompt_lab``. It has its own queue, ``LAB_QUEUE`` (one
Prompt Lab run at a time), and generates one batch per ``slots.generate`` call (``take_turns``), so
requests in the shared ``MODEL_QUEUE`` (Prompting, Compare, Evaluate) get the model between its
batches instead of waiting for the whole run; the model itself still does one job at a time (the
slots' lock). Cancel stops a run after the current batch.
"""
from __future__ import annotations

from datetime import datetime

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from summarizer.evaluation.evaluate import EvaluationCancelled
from summarizer.inference.generation import GenerationSettings, STRATEGIES
from summarizer.inference.slot_config import SLOT_LABELS
from summarizer.inference.slot_config import SLOTS
from summarizer.prompt_lab.lab import (LabResult, MAX_DIALOGUES, MIN_VERDICT_N, display_table, pick_dialogues,
                                      run_lab)
from summarizer.prompt_lab.templates import (MAX_TEMPLATES, MAX_TEMPLATE_CHARS, PLACEHOLDER, PRESET_LABELS,
                                             preset)
from summarizer.evaluation.rouge import ROUGE_KEYS, ROUGE_NAMES

from summarizer.tasks import TASKS, examples
from summarizer.uploads import UPLOADED
from ui.access import for_students, teacher_only
from ui.common import one_of, user_errors
from summarizer.text import whole_number
from ui.context import Studio
from ui.evaluate.tab import results_dir

SETTING_NAMES = ("max_new_tokens", "min_new_tokens", "strategy", "temperature", "top_k", "top_p",
                 "num_beams", "seed")
DEFAULT_TEMPLATES = ("zero-shot", "what-was-going-on")  # T1, T2 on first load; the rest empty
LAB_QUEUE = "prompt-lab"


def lab_figure(table: list[dict], metric: str = "rouge1") -> go.Figure:
    """Bar per template of ``metric`` (x100) with its bootstrap 95% CI as error bars; best in green."""
    fig = go.Figure()
    if not table:
        return fig.update_layout(title="Run the Prompt Lab to see the chart", height=360)
    means = [r[metric] for r in table]
    fig.add_bar(x=[r["template"] for r in table], y=means,
                error_y=dict(type="data", symmetric=False,
                             array=[r[f"{metric}_ci_high"] - r[metric] for r in table],
                             arrayminus=[r[metric] - r[f"{metric}_ci_low"] for r in table]),
                marker_color=["#2ca02c" if r["best"] else "#1f77b4" for r in table],
                text=[f"{m:.1f}" for m in means], textposition="outside")
    return fig.update_layout(title=f"{ROUGE_NAMES[metric]} by template (error bars: bootstrap 95% CI)",
                             yaxis_title=f"{ROUGE_NAMES[metric]} x100", height=360,
                             margin=dict(t=50, b=40, l=50, r=20))


def by_template(result: LabResult):
    """:func:`display_table` turned so templates are columns (at most six) and measures rows:
    whole-word headers that fit a 1400 px projector without sideways scrolling."""
    table = display_table(result).set_index("Template").T
    return table.rename_axis("Measure").reset_index()


NO_BEST = {
    "not separated": "**No template is marked best**: the exact paired test does not separate the leader "
                     "from every other (p ≥ 0.05).",
    "no verdict": "**No verdict on the best template**: with {n} dialogues the exact paired test cannot reach "
                  "p < 0.05 (it needs N ≥ {min_n}); the bootstrap intervals are also too narrow at this N. "
                  "Raise N.",
    "one template": "One template: nothing to compare.",
}
DIFFERENCES_NOTE = ("ΔROUGE-1 intervals vs T1 are unadjusted (with six equal templates one of the five "
                    "excludes 0 in 27% of runs at N = 20); read the Holm-adjusted p-value beside them: below "
                    "0.05 means that template differs from T1, with at most a 5% chance of any false claim.")


def _status(result: LabResult, out) -> str:
    m = result.meta
    g = m["generation"]
    best = (f"**Best: {m['best']}**." if m["best"] else NO_BEST.get(m.get("verdict"), NO_BEST["not separated"])
            .format(n=m["n_dialogues"], min_n=m.get("min_verdict_n", MIN_VERDICT_N)))
    return (f"**{m['n_dialogues']} dialogues** of {m.get('dataset', '')} ({m.get('split', '')}, "
            f"picked by seed {m.get('dialogue_seed')}) × {len(result.table)} templates with the "
            f"{SLOT_LABELS.get(m['model'], m['model'])} model, {g['strategy']} decoding, max "
            f"{g['max_new_tokens']} new tokens. {best} {m['best_rule']} {DIFFERENCES_NOTE} ROUGE rule: "
            f"{m['rule']} over the references. Files in `{out}`.")


def templates_from_boxes(texts) -> tuple[list[str], list[str]]:
    """(templates, names) from the six boxes: empty boxes are skipped, names keep the box number."""
    chosen = [(f"T{i + 1}", t) for i, t in enumerate(texts) if t and t.strip()]
    return [t for _, t in chosen], [n for n, _ in chosen]


def _layout_form() -> dict:
    """The model, split, N and dialogue-seed row, the six template boxes with their preset pickers,
    and the generation settings; returns them by name."""
    gr.Markdown(
        f"Compare prompt templates on the same dialogues. Write up to {MAX_TEMPLATES} templates with a "
        f"`{PLACEHOLDER}` placeholder (at most {MAX_TEMPLATE_CHARS:,} characters each; write a literal "
        "brace as `{{` or `}}`), or pick a preset. Empty boxes are skipped. T1 is the baseline of the "
        f"differences. A template is marked ★ best only when the exact paired test against every other gives "
        f"p < 0.05, which needs at least {MIN_VERDICT_N} dialogues; with fewer, no verdict is given.")
    with gr.Row():
        view = {"model": gr.Dropdown([(SLOT_LABELS[s], s) for s in SLOTS], value="base", label="Model",
                                     elem_id="lab-model"),
                "split": gr.Dropdown(["test", "validation", "train", UPLOADED], value="test", label="Split"),
                "n": gr.Slider(1, MAX_DIALOGUES, value=20, step=1,
                                label=f"Dialogues (N; a best template needs N ≥ {MIN_VERDICT_N})", elem_id="lab-n"),
                "dialogue_seed": gr.Number(0, precision=0, minimum=0, label="Dialogue seed (picks the N)",
                                           elem_id="lab-dialogue-seed")}
    view["boxes"], view["pickers"] = [], []
    presets = [("(choose a preset)", "")] + [(label, key) for key, label in PRESET_LABELS.items()]
    for i in range(MAX_TEMPLATES):
        with gr.Row():
            value = preset(DEFAULT_TEMPLATES[i]) if i < len(DEFAULT_TEMPLATES) else ""
            view["boxes"].append(gr.Textbox(value, label=f"Template T{i + 1}", lines=3, max_lines=10, scale=4,
                                            elem_id=f"lab-template-{i + 1}"))
            view["pickers"].append(gr.Dropdown(presets, value="", label=f"Preset for T{i + 1}", scale=1,
                                               elem_id=f"lab-preset-{i + 1}"))
    view["controls"] = _layout_settings()
    return view


def _layout_settings() -> list:
    """The eight generation settings, in :data:`SETTING_NAMES` order, in a closed accordion."""
    with gr.Accordion("Generation settings (as in Prompting)", open=False):
        d = GenerationSettings()
        with gr.Row():
            controls = [gr.Number(d.max_new_tokens, precision=0, label="Max new tokens (1..512)", elem_id="lab-max-new"),
                        gr.Number(d.min_new_tokens, precision=0, label="Min new tokens"),
                        gr.Radio(list(STRATEGIES), value=d.strategy, label="Strategy")]
        with gr.Row():
            controls += [gr.Number(d.temperature, label="Temperature (sampling)"),
                         gr.Number(d.top_k, precision=0, label="Top-k (sampling, 0 = off)"),
                         gr.Number(d.top_p, label="Top-p (sampling)"),
                         gr.Number(d.num_beams, precision=0, label="Beams (beam)"),
                         gr.Number(d.seed, precision=0, label="Seed")]
    return controls


def _layout_results() -> dict:
    """Run and Cancel, the status line, the templates table, the chart and its metric, the
    per-dialogue outputs, the files and the stored table (for re-drawing the chart)."""
    with gr.Row():
        run_btn = gr.Button("Run the Prompt Lab", variant="primary", elem_id="lab-run")
        cancel_btn = gr.Button("Cancel", variant="stop")
    return {
        "run": run_btn, "cancel": cancel_btn, "status": gr.Markdown(elem_id="lab-status"),
        "table": gr.Dataframe(label="Templates: one column per template, one row per measure (ROUGE x100 with "
                                    "bootstrap 95% CIs)", interactive=False, wrap=True, elem_id="lab-table"),
        "metric": gr.Dropdown([(ROUGE_NAMES[k], k) for k in ROUGE_KEYS], value="rouge1", label="Chart metric"),
        "chart": gr.Plot(label="Metric by template", elem_id="lab-chart"),
        "outputs": gr.Dataframe(label="Per-dialogue outputs beside the references (click a header to sort)",
                                interactive=False, wrap=True, max_height=500, elem_id="lab-outputs"),
        "files": gr.File(label="Download (CSV, JSON)", file_count="multiple", interactive=False),
        "table_state": gr.State([])}


def _session_key(request) -> str:
    """This session's key for its Prompt Lab cancel flag (apart from Evaluate's on the same Studio)."""
    return f"prompt-lab:{getattr(request, 'session_hash', None) or 'api'}"


def _preset_applier(studio: Studio):
    """The preset pickers' handler (one-shot and few-shot draw their examples from the train split)."""
    @for_students
    def apply_preset(name):
        """Reads a preset name; updates its template box (unchanged when no preset is chosen)."""
        if not name:
            return gr.update()
        with user_errors():
            return preset(name, studio.split("train") if name in ("one-shot", "few-shot") else None)
    return apply_preset


def _runner(studio: Studio):
    """The Run button's handler over :func:`run_lab` (its parameters name the API's inputs)."""
    @teacher_only
    def run(model_name, split_name, n_dialogues, seed, t1, t2, t3, t4, t5, t6, max_new, min_new, strategy,
            temperature, top_k, top_p, beams, gen_seed, request: gr.Request, task="summary", progress=gr.Progress()):
        """Reads model, split, N, dialogue seed, the six templates, eight generation settings and
        the task (response: each dialogue cut after turn k, judged on turn k+1);
        updates status, table, chart, per-dialogue outputs, files and the stored table."""
        texts = (t1, t2, t3, t4, t5, t6)  # MAX_TEMPLATES boxes
        settings_values = (max_new, min_new, strategy, temperature, top_k, top_p, beams, gen_seed)
        with studio.running(_session_key(request)) as flag, user_errors():
            if model_name not in SLOTS:
                raise ValueError(f"Model must be one of {', '.join(SLOTS)}, got {model_name!r}.")
            # Checked once, before any work; the checked value (not the raw "7.0") goes in the files.
            dialogue_seed = whole_number(seed, "Dialogue seed", 0, 2**32 - 1)
            n = whole_number(n_dialogues, "Dialogues (N)", 1, MAX_DIALOGUES)
            templates, names = templates_from_boxes(texts)
            settings = GenerationSettings.from_dict(dict(zip(SETTING_NAMES, settings_values)))
            task = one_of(task, "Task", TASKS)
            rows_all = examples(studio.split(split_name), task)
            idx = pick_dialogues(len(rows_all), n, dialogue_seed)
            try:
                result = run_lab(studio.slots, model_name, templates, [rows_all[i] for i in idx], settings,
                                 names=names, max_input_tokens=studio.max_input_tokens,
                                 on_progress=lambda f, msg: progress(f, desc=msg), should_stop=flag.is_set)
            except EvaluationCancelled:
                return ("Prompt Lab run cancelled.",) + (gr.update(),) * 5
        result.meta.update(dataset=str(studio.dataset), split=split_name, dialogue_seed=dialogue_seed, task=task)
        out = results_dir() / f"prompt-lab-{datetime.now():%Y%m%d-%H%M%S-%f}"
        paths = result.write(out)
        return (_status(result, out), by_template(result), lab_figure(result.table, "rouge1"),
                pd.DataFrame(result.outputs).round(2), [str(p) for p in paths.values()], result.table)
    return run


def _canceller(studio: Studio):
    """The Cancel button's handler (``/cancel_prompt_lab``)."""
    @teacher_only
    def request_cancel(request: gr.Request):
        """Sets this session's cancel flag; the run stops after its current batch."""
        if studio.request_cancel(_session_key(request)):
            return "Cancelling: the Prompt Lab stops after the current batch."
        return "Nothing to cancel: no Prompt Lab run is going in this session."
    return request_cancel


def _wire(studio: Studio, form: dict, res: dict, task: gr.State) -> None:
    """Connect the presets, Run (``/prompt_lab`` on ``LAB_QUEUE``), Cancel and the chart metric."""
    apply_preset = _preset_applier(studio)
    for box, picker in zip(form["boxes"], form["pickers"]):
        picker.change(apply_preset, picker, box, api_visibility="private")
    inputs = [form["model"], form["split"], form["n"], form["dialogue_seed"], *form["boxes"], *form["controls"], task]
    run_event = res["run"].click(_runner(studio), inputs,
                                 [res[k] for k in ("status", "table", "chart", "outputs", "files", "table_state")],
                                 api_name="prompt_lab", concurrency_id=LAB_QUEUE)
    res["cancel"].click(_canceller(studio), None, res["status"], cancels=[run_event], api_name="cancel_prompt_lab")
    res["metric"].change(for_students(lambda t, m: lab_figure(t, m)), [res["table_state"], res["metric"]], res["chart"],
                         queue=False, api_visibility="private")


# A run scores every template on N dialogues: minutes of the one model the class shares, so it is the teacher's.
STUDENT_NOTE = ("**The teacher runs the Prompt Lab** (each run keeps the class's model busy for minutes): "
                "you can read and edit the templates here, and try one on a dialogue in the Prompting tab "
                "(Prompt: raw, with the template's words typed around the dialogue).")


def build(studio: Studio, task: gr.State | None = None) -> dict:
    """Build the Prompt Lab tab inside the current ``gr.Blocks``; returns its main components:
    ``{"run": the Run button, "table": the templates table, "templates": the six template boxes,
    "teacher_only": Run and Cancel, "student_note": the line a student's page shows instead}``."""
    task = task if task is not None else gr.State("summary")  # the page's task (ui.common.task_selector)
    student_note = gr.Markdown(STUDENT_NOTE, visible=False, elem_id="lab-student-note")
    form, res = _layout_form(), _layout_results()
    _wire(studio, form, res, task)
    return {"run": res["run"], "table": res["table"], "templates": form["boxes"],
            "teacher_only": [res["run"], res["cancel"]], "student_note": student_note}
