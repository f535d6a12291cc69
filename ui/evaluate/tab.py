"""The Evaluate tab: the labs' results table (ROUGE, BLEU, toxicity, CIs, speed) for chosen models.

Every handler is a few lines over :func:`summarizer.evaluation.evaluate`, the same function the
CLI (``python -m summarizer.evaluation``) calls. The run button is also the named API endpoint
``/evaluate``; model work goes through the shared ``MODEL_QUEUE`` so one CPU/GPU is never
oversubscribed, and a Cancel button stops a run between batches.

Layout for a 1400 px projector: the results table has one row per metric and one column per
model (at most five columns, so headers never break mid-word and nothing scrolls sideways;
``results.csv`` keeps one row per model); the per-dialogue table's title says what it is sorted
by; the before/after detox chart shows only when Base and PPO detox were both evaluated.
"""
from __future__ import annotations

import math
import os
from datetime import datetime
from pathlib import Path

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from summarizer.data import SPLITS
from summarizer.tasks import TASKS, examples
from summarizer.uploads import UPLOADED
from summarizer.evaluation.evaluate import evaluate
from summarizer.evaluation.results import HATE_THRESHOLD, TOXICITY_PROTOCOL, trainable_text
from summarizer.evaluation.evaluate import EvaluationCancelled, generation_groups
from summarizer.inference.generation import GenerationSettings
from summarizer.inference.slot_config import EMPTY_SLOT_HELP, SLOT_LABELS, SlotError
from summarizer.inference.slot_config import SLOTS
from summarizer.evaluation.rouge import PROTOCOLS_NOTE, ROUGE_KEYS, ROUGE_NAMES

from ui.access import teacher_only
from ui.common import FreeCheckboxGroup, FreeDropdown, FreeSlider, chosen_values, one_of, user_errors
from summarizer.text import whole_number
from ui.context import MODEL_QUEUE, Studio

# Chart label -> (mean column, CI low column, CI high column); "{rule}" is the CI rule.
CHART_METRICS = {
    "ROUGE-1": ("rouge1_{rule}", "rouge1_ci_low", "rouge1_ci_high"),
    "ROUGE-2": ("rouge2_{rule}", "rouge2_ci_low", "rouge2_ci_high"),
    "ROUGE-L": ("rougeL_{rule}", "rougeL_ci_low", "rougeL_ci_high"),
    "ROUGE-Lsum": ("rougeLsum_{rule}", "rougeLsum_ci_low", "rougeLsum_ci_high"),
    "P(hate) of the summary": ("p_hate_mean", "p_hate_ci_low", "p_hate_ci_high"),
    "Reward (nothate logit)": ("reward_mean", "reward_ci_low", "reward_ci_high"),
    "ΔROUGE-1 vs base (paired)": ("rouge1_diff_vs_base", "rouge1_diff_ci_low", "rouge1_diff_ci_high"),
    "ΔP(hate) vs base (paired)": ("p_hate_diff_vs_base", "p_hate_diff_ci_low", "p_hate_diff_ci_high"),
    "BLEU (no interval)": ("bleu", None, None),
    "ROUGE-1 best ref. (no interval)": ("rouge1_best", None, None),
}
# Per-dialogue columns shown in the table, in this order when present.
_PREDICTION_COLUMN_ORDER = ("id", "detox_reward_change", "lora_reward_change", "full_reward_change")
# Per-dialogue table columns: Dialogue, Model, Summary, ROUGE-1, P(hate), Reward, Δ reward vs base.
# Fixed shares keep the summary from pushing the numbers off a 1400 px screen.
PER_DIALOGUE_WIDTHS = ["9%", "12%", "36%", "9%", "9%", "9%", "16%"]
MAX_DIALOGUES = 500  # the test split's size
MAX_NEW_TOKENS = (8, 512)  # the slider's range
# The multi-reference rule of the tab's intervals, differences and chart: the course labs' protocol,
# so the numbers a teacher compares with the labs' figures are the ones with intervals.
TAB_RULE = "lab"
PROTOCOL_LABELS = {"lab": "lab-comparable", "best": "(best ref.)", "mean": "(mean over refs)"}


def results_dir() -> Path:
    """Where the tab writes results: ``$STUDIO_RESULTS_DIR``, else ``./results``."""
    return Path(os.environ.get("STUDIO_RESULTS_DIR") or "results")


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def metric_figure(results: list[dict], metric: str) -> go.Figure:
    """Bar per model of ``metric`` with its bootstrap 95% interval as error bars."""
    fig = go.Figure()
    if not results:
        return fig.update_layout(title="Run an evaluation to see the chart", height=360)
    mean_col, low_col, high_col = CHART_METRICS[metric]
    mean_col = mean_col.format(rule=results[0]["ci_rule"])
    rows = [r for r in results if not _nan(r[mean_col])]
    means = [r[mean_col] for r in rows]
    error = None
    if low_col:
        error = dict(type="data", symmetric=False, array=[r[high_col] - r[mean_col] for r in rows],
                     arrayminus=[r[mean_col] - r[low_col] for r in rows])
    fig.add_bar(x=[SLOT_LABELS.get(r["model"], r["model"]) for r in rows], y=means, error_y=error,
                text=[f"{m:.3g}" for m in means], textposition="outside")
    suffix = " (error bars: bootstrap 95% CI)" if low_col else ""
    if mean_col.startswith("rouge") and "{rule}" in CHART_METRICS[metric][0]:
        suffix = f" {PROTOCOL_LABELS.get(results[0]['ci_rule'], '')}{suffix}"
    return fig.update_layout(title=f"{metric}{suffix}", yaxis_title=metric, height=360,
                             margin=dict(t=50, b=40, l=50, r=20))


def toxicity_figure(predictions: pd.DataFrame) -> go.Figure:
    """Per-dialogue reward before (base) and after (detox), with the no-change diagonal."""
    fig = go.Figure()
    if not {"base_reward", "detox_reward"} <= set(predictions.columns):
        return fig.update_layout(title="Evaluate both Base and PPO detox to compare their toxicity",
                                 height=360)
    x, y = predictions["base_reward"], predictions["detox_reward"]
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="no change",
                    line=dict(dash="dash", color="gray"))
    fig.add_scatter(x=x, y=y, mode="markers", name="dialogue", text=predictions["id"],
                    hovertemplate="%{text}<br>base %{x:.3f} → detox %{y:.3f}<extra></extra>")
    change = (y - x).mean()
    return fig.update_layout(
        title=f"Reward of each summary, before (base) vs after (detox): mean change {change:+.3f}",
        xaxis_title="base reward (before)", yaxis_title="detox reward (after)", height=380,
        margin=dict(t=50, b=40, l=50, r=20))


def sorted_predictions(predictions: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """(table, its title): largest reward change vs base first (detox, else LoRA, else full), as
    in the labs; dataset order when no change was computed (base not evaluated, or base alone)."""
    changes = [c for c in _PREDICTION_COLUMN_ORDER[1:] if c in predictions.columns]
    if changes:
        predictions = predictions.sort_values(changes[0], ascending=False)
        model = SLOT_LABELS[changes[0].removesuffix("_reward_change")]
        title = f"Per-dialogue predictions: largest {model} reward change vs base first"
    else:
        title = "Per-dialogue predictions, in dataset order"
    first = [c for c in _PREDICTION_COLUMN_ORDER if c in predictions.columns]
    return (predictions[first + [c for c in predictions.columns if c not in first]].round(4),
            title + " (click a header to sort)")


def per_dialogue_table(predictions: pd.DataFrame, models: list[str]) -> tuple[pd.DataFrame, str]:
    """(table, title) for the page: one row per (dialogue, model), dialogues in the order of
    :func:`sorted_predictions`; seven columns, so it fits a 1400 px screen without sideways
    scrolling. The dialogue text and the human summaries stay in ``predictions.csv``."""
    frame, title = sorted_predictions(predictions)
    rows = []
    for _, r in frame.iterrows():
        for m in models:
            change = r.get(f"{m}_reward_change")
            rows.append({"Dialogue": r["id"], "Model": SLOT_LABELS.get(m, m), "Summary": r[f"{m}_summary"],
                         "ROUGE-1": round(float(r[f"{m}_rouge1"]), 1), "P(hate)": round(float(r[f"{m}_p_hate"]), 3),
                         "Reward": round(float(r[f"{m}_reward"]), 3),
                         "Δ reward vs base": "" if _nan(change) else round(float(change), 3)})
    return pd.DataFrame(rows), title.replace(" (click", "; dialogue and human summaries in predictions.csv (click")


def _ci(mean, low, high, digits: int = 1) -> str:
    """``mean [low, high]`` or "" when not computed (NaN)."""
    return "" if _nan(mean) else f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _num(value, digits: int) -> str:
    return "" if _nan(value) else f"{value:.{digits}f}"


def rouge_rows(r: dict) -> dict[str, str]:
    """ROUGE rows of one model: lab-comparable for every ROUGE type first (the labs' protocol),
    then best over the references, then ROUGE-1 mean over the references; the rows of the model's
    ``ci_rule`` carry its bootstrap 95% interval."""
    rule, out = r["ci_rule"], {}
    for protocol in ("lab", "best"):
        for k in ROUGE_KEYS:
            label = f"{ROUGE_NAMES[k]} {PROTOCOL_LABELS[protocol]}"
            value = r.get(f"{k}_{protocol}")
            if protocol == rule:
                out[f"{label} [95% CI]"] = _ci(value, r[f"{k}_ci_low"], r[f"{k}_ci_high"])
            else:
                out[label] = _num(value, 1)
    label = f"ROUGE-1 {PROTOCOL_LABELS['mean']}"
    out[label + (" [95% CI]" if rule == "mean" else "")] = (
        _ci(r["rouge1_mean"], r["rouge1_ci_low"], r["rouge1_ci_high"]) if rule == "mean" else _num(r["rouge1_mean"], 1))
    return out


def seconds_text(r: dict, shared_with: list[str] = ()) -> str:
    """The "seconds per summary" cell: the number and, when the model was generated in one mixed
    pass with others (:func:`summarizer.evaluation.evaluate.generation_groups`), which ones share it."""
    value = _num(r["seconds_per_summary"], 4)
    if not value or not shared_with:
        return value
    return f"{value} (one pass with {', '.join(SLOT_LABELS.get(m, m) for m in shared_with)})"


def metric_rows(r: dict, shared_with: list[str] = ()) -> dict[str, str]:
    """One model's displayed metrics (label -> text), from one row of ``EvaluationResult.results``;
    ``shared_with``: the models generated in the same pass (they share its seconds per summary)."""
    rule = r["ci_rule"]
    return {
        **rouge_rows(r),
        f"ΔROUGE-1 vs base ({PROTOCOL_LABELS[rule].strip('()')}) [95% CI]": _ci(
            r["rouge1_diff_vs_base"], r["rouge1_diff_ci_low"], r["rouge1_diff_ci_high"]),
        "BLEU": _num(r["bleu"], 1),
        "P(hate) [95% CI]": _ci(r["p_hate_mean"], r["p_hate_ci_low"], r["p_hate_ci_high"], 3),
        "P(hate) std": _num(r["p_hate_std"], 3), "P(hate) max": _num(r["p_hate_max"], 3),
        f"Share with P(hate) ≥ {HATE_THRESHOLD}": _num(r["hate_share"], 3),
        "Reward (nothate logit) [95% CI]": _ci(r["reward_mean"], r["reward_ci_low"], r["reward_ci_high"], 3),
        "ΔP(hate) vs base [95% CI]": _ci(r["p_hate_diff_vs_base"], r["p_hate_diff_ci_low"], r["p_hate_diff_ci_high"], 3),
        "Summary length (tokens)": _num(r["gen_tokens_mean"], 1),
        "Summary length (words)": _num(r["gen_words_mean"], 1),
        "Trainable parameters": trainable_text(r),  # "" for summaries from a file; base: not trained
        "Seconds per summary": seconds_text(r, shared_with),
    }


def shared_passes(results: list[dict], per_model_timing: bool = False) -> dict[str, list[str]]:
    """Each model -> the other models generated in the same pass (base and adapters share one
    mixed pass on the shared base unless ``per_model_timing``), so they show the same time."""
    groups = generation_groups([r["model"] for r in results], per_model_timing)
    return {m: [o for o in group if o != m] for group in groups for m in group}


def metrics_by_model(results: list[dict], per_model_timing: bool = False) -> pd.DataFrame:
    """The display table: one row per metric, one column per model (``Metric`` first).

    ``results`` are the rows of ``EvaluationResult.results`` (one per model); the files keep that
    layout. At most five columns fit a 1400 px screen with whole words in the headers.
    """
    shared = shared_passes(results, per_model_timing)
    columns = {SLOT_LABELS.get(r["model"], r["model"]): metric_rows(r, shared.get(r["model"], []))
               for r in results}
    labels = list(next(iter(columns.values()))) if columns else []
    return pd.DataFrame({"Metric": labels, **{m: [v[k] for k in labels] for m, v in columns.items()}})


def _status(result, out: Path) -> str:
    m = result.meta
    g = m["generation"]
    return (f"**{m['n_dialogues']} dialogues** of {m.get('dataset', '')} ({m.get('split', '')}), "
            f"{m['prompt_mode']} prompt, {g['strategy']} decoding, max {g['max_new_tokens']} new tokens; "
            f"{m['prompts_cut_to_fit']} prompt(s) cut to fit {m['max_input_tokens']} tokens. "
            f"Files in `{out}`.\n\n{PROTOCOLS_NOTE} Intervals, differences and the chart use "
            f"{PROTOCOL_LABELS.get(m['ci_rule'], m['ci_rule']).strip('()')}. {TOXICITY_PROTOCOL} "
            f"Hate share: P(hate) ≥ {HATE_THRESHOLD}. {m['bootstrap']['method']}{timing_sentence(result)}")


def timing_sentence(result) -> str:
    """Why models show the same seconds per summary ("" when none shared a pass)."""
    shared = shared_passes(result.results, result.meta.get("per_model_timing", False))
    together = sorted({m for m, others in shared.items() if others}, key=SLOTS.index)
    if not together:
        return ""
    names = ", ".join(SLOT_LABELS[m] for m in together)
    return (f"\n\nSeconds per summary: {names} were generated in one mixed pass on the shared base model "
            "(faster than one pass each), so they share that pass's time divided by all its summaries; "
            "`python -m summarizer.evaluation --per-model-timing` times each model on its own.")


def check_request(chosen, n_dialogues, split_name, max_new_tokens) -> tuple[list[str], int, str, int]:
    """The Evaluate form's values, checked: (models, N, split, max new tokens).

    Raises:
        ValueError: naming the field and its allowed values or range.
    """
    models = chosen_values(chosen, "Models", SLOTS)
    if not models:
        raise ValueError(f"Models: choose at least one model to evaluate ({', '.join(SLOTS)}).")
    n = whole_number(n_dialogues, "Dialogues (N)", 1, MAX_DIALOGUES)
    split_name = split_name if split_name == UPLOADED else one_of(split_name, "Split", SPLITS)
    max_new = whole_number(max_new_tokens, "Max new tokens", *MAX_NEW_TOKENS)
    return models, n, split_name, max_new


def models_now(studio: Studio):
    """The Models checkboxes for a page load: the slots filled on the server now."""
    return gr.CheckboxGroup(value=[s for s in SLOTS if studio.slots.is_filled(s)])


def _layout(studio: Studio) -> dict:
    """The form (models, N, split, max new tokens), Evaluate and Cancel, then the results: status,
    table, chart metric, both charts, per-dialogue table, files and the stored results."""
    gr.Markdown("Score models on DialogSum with one generation setting: ROUGE against the human "
                "summaries, BLEU, toxicity of each summary, 95% bootstrap intervals, length and speed.\n\n"
                + PROTOCOLS_NOTE)
    with gr.Row():
        view = {"models": FreeCheckboxGroup([(SLOT_LABELS[s], s) for s in SLOTS], label="Models",
                                            value=[s for s in SLOTS if studio.slots.is_filled(s)],
                                            elem_id="evaluate-models"),
                "n": FreeSlider(1, MAX_DIALOGUES, value=20, step=1, label="Dialogues (the first N of the split)",
                                elem_id="evaluate-n"),
                "split": FreeDropdown(["test", "validation", "train", UPLOADED], value="test", label="Split",
                                      info="test: 500 dialogues, three human summaries each"),
                "max_new": FreeSlider(*MAX_NEW_TOKENS, value=200, step=1, label="Max new tokens",
                                      info="greedy decoding, zero-shot prompt, same for every model",
                                      elem_id="evaluate-max-new")}
    with gr.Row():
        view["run"] = gr.Button("Evaluate", variant="primary", elem_id="evaluate-run")
        view["cancel"] = gr.Button("Cancel", variant="stop")
    view["status"] = gr.Markdown()
    view["table"] = gr.Dataframe(label="Results: one row per metric, one column per model (results.csv has one "
                                       "row per model)", interactive=False, wrap=True, max_height=800,
                                 elem_id="evaluate-results")
    with gr.Row():
        view["metric"] = gr.Dropdown(list(CHART_METRICS), value="ROUGE-1", label="Chart metric")
    with gr.Row():
        view["chart"] = gr.Plot(label="Metric by model", elem_id="evaluate-chart")
        view["tox_chart"] = gr.Plot(label="Toxicity before/after detox", elem_id="evaluate-toxicity", visible=False)
    view["predictions"] = gr.Dataframe(label="Per-dialogue predictions (click a header to sort)", interactive=False,
                                       wrap=True, max_height=500, elem_id="evaluate-predictions",
                                       column_widths=PER_DIALOGUE_WIDTHS)
    view["files"] = gr.File(label="Download results (CSV, JSON)", file_count="multiple", interactive=False)
    view["results_state"] = gr.State([])
    return view


def _shown(result, out: Path, paths: dict, chosen: list[str]) -> tuple:
    """The seven outputs of a finished run: status, table, chart, toxicity chart (shown only when
    Base and PPO detox were both evaluated), per-dialogue table with its title, files, results."""
    frame = result.predictions_frame()
    preds, title = per_dialogue_table(frame, chosen)
    both = {"base", "detox"} <= set(chosen)
    return (_status(result, out), metrics_by_model(result.results, result.meta.get("per_model_timing", False)),
            metric_figure(result.results, "ROUGE-1"),
            gr.Plot(toxicity_figure(frame) if both else None, visible=both),
            gr.Dataframe(preds, label=title), [str(p) for p in paths.values()], result.results)


def _runner(studio: Studio):
    """The Evaluate button's handler over :func:`evaluate` (its parameters name the API's inputs)."""
    @teacher_only
    def run_evaluation(chosen, n_dialogues, split_name, max_new_tokens, request: gr.Request, task="summary",
                       progress=gr.Progress()):
        """Reads models, N, split, max new tokens and the task (after the request Gradio puts in);
        updates status, table, charts, predictions, files. With the response task the first N dialogues that make a next-turn
        example are evaluated on their next turn."""
        with user_errors():
            chosen, n_rows, split_name, max_new = check_request(chosen, n_dialogues, split_name, max_new_tokens)
            task = one_of(task, "Task", TASKS)
        empty = [c for c in chosen if not studio.slots.is_filled(c)]
        if empty:
            raise gr.Error(" ".join(f"{SLOT_LABELS[c]}: {EMPTY_SLOT_HELP[c]}." for c in empty))
        try:
            with studio.running(getattr(request, "session_hash", None)) as flag:
                settings = GenerationSettings(max_new_tokens=max_new).validate()
                rows = examples(studio.split(split_name), task, limit=n_rows)
                result = evaluate(studio.slots, studio.toxicity, list(rows), settings, chosen, task=task,
                                  max_input_tokens=studio.max_input_tokens, rule=TAB_RULE,
                                  on_progress=lambda f, msg: progress(f, desc=msg), should_stop=flag.is_set)
        except EvaluationCancelled:
            return ("Evaluation cancelled.", gr.update(), gr.update(), gr.update(), gr.update(),
                    gr.update(), gr.update())
        except (ValueError, SlotError, OSError) as err:
            raise gr.Error(str(err)) from err
        result.meta.update(dataset=str(studio.dataset), split=split_name)
        out = results_dir() / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        return _shown(result, out, result.write(out), chosen)
    return run_evaluation


def _canceller(studio: Studio):
    """The Cancel button's handler (``/cancel_evaluation``)."""
    @teacher_only
    def request_cancel(request: gr.Request):
        """Sets the flag of this session's running evaluation, which stops after its current batch."""
        if studio.request_cancel(getattr(request, "session_hash", None)):
            return "Cancelling: the evaluation stops after the current batch."
        return "Nothing to cancel: no evaluation is running in this session."
    return request_cancel


@teacher_only
def show_metric(results, name):
    """Reads the stored results and the chosen metric; updates the chart."""
    return metric_figure(results, name)


def build(studio: Studio, task: gr.State | None = None) -> dict:
    """Build the Evaluate tab's components and events inside the current ``gr.Blocks``.

    Returns:
        ``load`` and ``load_outputs``: app.py runs ``load`` on every page load so the Models
        checkboxes show the slots filled now.
    """
    task = task if task is not None else gr.State("summary")  # the page's task (ui.common.task_selector)
    v = _layout(studio)
    outputs = [v[k] for k in ("status", "table", "chart", "tox_chart", "predictions", "files", "results_state")]
    run_event = v["run"].click(_runner(studio), [v["models"], v["n"], v["split"], v["max_new"], task], outputs,
                               api_name="evaluate", concurrency_id=MODEL_QUEUE)
    v["cancel"].click(_canceller(studio), None, v["status"], cancels=[run_event], api_name="cancel_evaluation")
    v["metric"].change(show_metric, [v["results_state"], v["metric"]], v["chart"], queue=False, api_name=False)
    return {"load": teacher_only(lambda: models_now(studio)), "load_outputs": [v["models"]]}
