"""Compare tab: one dialogue through the four slots (base, full, LoRA, PPO detox) in one request.

Every filled slot gets the same zero-shot prompt and greedy decoding; each summary is scored for
toxicity (reward = ``nothate`` logit, P(hate)) and ROUGE-1/L against the human references.

Endpoints: ``/compare`` (dialogue, max new tokens -> four summaries, four score lines, a JSON of
everything), ``/set_full``, ``/set_lora``, ``/set_detox`` (source -> slot description),
``/refresh_runs`` (-> run choices for the three pickers).
"""
from __future__ import annotations

import gradio as gr

from summarizer.generation import GenerationSettings
from summarizer.models import EMPTY_SLOT_HELP, SLOT_LABELS, SLOTS, SlotError
from summarizer.prompts import build_prompt
from summarizer.runs import finished_runs
from summarizer.text import clean_dialogue

from .common import dialogue_picker, progress_callback, rouge_report, user_errors
from .context import MODEL_QUEUE, Studio

PICKABLE = ("full", "lora", "detox")


def compare_slots(studio: Studio, dialogue: str, max_new_tokens: float, progress) -> dict:
    """Summaries and scores of ``dialogue`` from every filled slot; empty slots say how to fill them.

    Returns:
        ``{"prompt_notes": [...], "references": [...], "slots": [row per slot]}``; a row has
        ``slot``, ``label``, ``filled``, ``summary`` and, when filled, ``reward``, ``p_hate``,
        ``rouge1`` and ``rougeL`` (best over references, 0..1; ``None`` without references).
    """
    settings = GenerationSettings(max_new_tokens=int(max_new_tokens or 0)).validate()
    text = clean_dialogue(dialogue)
    filled = [s for s in SLOTS if studio.slots.is_filled(s)]
    progress(0, desc="loading models")
    prompt = build_prompt("zero-shot", text, tokenizer=studio.slots.tokenizer, max_tokens=studio.max_input_tokens)
    summaries = studio.slots.generate(filled, [prompt.text], settings,
                                      on_batch=progress_callback(progress, "generating"))
    progress(0.9, desc="scoring toxicity")
    scores = dict(zip(filled, studio.toxicity.score([summaries[s][0] for s in filled])))
    refs = studio.references_for(text)
    rows = []
    for slot in SLOTS:
        row = {"slot": slot, "label": SLOT_LABELS[slot], "filled": slot in filled}
        if slot in filled:
            summary = summaries[slot][0]
            rouge = rouge_report(summary, refs).get("best", {})
            row.update(summary=summary, reward=scores[slot].reward, p_hate=scores[slot].p_hate,
                       rouge1=rouge.get("rouge1"), rougeL=rouge.get("rougeL"))
        else:
            row["summary"] = EMPTY_SLOT_HELP[slot]
        rows.append(row)
    return {"prompt_notes": prompt.notes, "references": refs, "slots": rows}


def score_line(row: dict) -> str:
    """One line of a slot's numbers, e.g. ``reward 2.31 · P(hate) 0.04 · ROUGE-1 31.0 · ROUGE-L 25.0``."""
    if not row["filled"]:
        return "empty slot"
    rouge = ("ROUGE: no reference" if row["rouge1"] is None else
             f"ROUGE-1 {100 * row['rouge1']:.1f} · ROUGE-L {100 * row['rougeL']:.1f}")
    return f"reward {row['reward']:.2f} · P(hate) {row['p_hate']:.3f} · {rouge}"


def run_choices(studio: Studio, slot: str) -> list[tuple[str, str]]:
    """(label, run folder) of each finished run that fills ``slot``, newest first."""
    return [(run.label, str(run.path)) for run in finished_runs(studio.runs_dir, slot=slot)]


def apply_source(studio: Studio, slot: str, source: str | None, progress) -> str:
    """Point ``slot`` at ``source`` ("" empties it) and load it now; on failure keep the old source.

    Raises:
        gr.Error: the SlotError's message (missing folder, wrong kind of model, load failure).
    """
    previous = studio.slots.source(slot)
    with user_errors():
        studio.slots.set_source(slot, (source or "").strip() or None)
        progress(0, desc=f"loading the {slot} model")
        try:
            studio.slots.load([slot])
        except SlotError:
            studio.slots.set_source(slot, previous)
            raise
    return studio.slots.describe(slot)


def apply_handler(studio: Studio, slot: str):
    """The Apply handler of ``slot``: reads its picker, updates its status line."""
    def apply_clicked(source, progress=gr.Progress()):
        return apply_source(studio, slot, source, progress)
    return apply_clicked


def slot_panel(slot: str):
    """One slot's column: label, summary box and score line. Returns (summary, scores)."""
    with gr.Column(min_width=220):
        gr.Markdown(f"### {SLOT_LABELS[slot]}")
        summary = gr.Textbox(label="Summary", lines=4, interactive=False, elem_id=f"compare-summary-{slot}")
        scores = gr.Textbox(label="Toxicity and ROUGE", interactive=False, elem_id=f"compare-scores-{slot}")
    return summary, scores


def slot_pickers(studio: Studio) -> dict:
    """Source pickers for the full, LoRA and detox slots; returns {slot: dropdown}."""
    gr.Markdown("Pick a finished training run, or type a hub id or a local model/adapter folder, "
                "then Apply. Apply with an empty box empties the slot.")
    gr.Textbox(studio.slots.describe("base"), label="base (set with --base-model)", interactive=False,
               elem_id="compare-source-base")
    pickers = {}
    for slot in PICKABLE:
        with gr.Row():
            pickers[slot] = gr.Dropdown(run_choices(studio, slot), value=studio.slots.source(slot),
                                        allow_custom_value=True, label=f"{SLOT_LABELS[slot]} source",
                                        elem_id=f"compare-pick-{slot}", scale=4)
            apply = gr.Button("Apply", elem_id=f"compare-apply-{slot}", scale=0)
        status = gr.Textbox(studio.slots.describe(slot), label=f"{slot} slot now", interactive=False,
                            elem_id=f"compare-source-{slot}")

        apply.click(apply_handler(studio, slot), pickers[slot], status, api_name=f"set_{slot}",
                    concurrency_id=MODEL_QUEUE, concurrency_limit=1)
    return pickers


def build(studio: Studio) -> dict:
    """Build the Compare tab; returns ``results`` (the JSON), ``pickers`` and ``refresh`` for app.py."""
    gr.Markdown("The same dialogue through every filled slot, with the zero-shot prompt and greedy "
                "decoding. Reward is the hate-speech classifier's `nothate` logit (higher = less "
                "hateful); ROUGE is the best F-measure ×100 over the human references.")
    dialogue, _, _ = dialogue_picker(studio, "compare", api_name=None)
    with gr.Row():
        max_new = gr.Number(GenerationSettings().max_new_tokens, precision=0, label="Max new tokens (1..512)",
                            elem_id="compare-max-new", scale=1)
        run = gr.Button("Compare", variant="primary", elem_id="compare-run", scale=2)
    notes = gr.Textbox(label="Prompt notes", interactive=False, elem_id="compare-notes")
    with gr.Row():
        panels = [slot_panel(slot) for slot in SLOTS]
    with gr.Accordion("All results as JSON", open=False):
        results = gr.JSON(label="Results", elem_id="compare-json")
    with gr.Accordion("Models in the slots", open=False):
        pickers = slot_pickers(studio)
        refresh = gr.Button("Refresh finished runs", elem_id="compare-refresh")

    def compare_clicked(dialogue, max_new_tokens, progress=gr.Progress()):
        """Reads the dialogue box and max new tokens; updates prompt notes, the four summary and
        score boxes, and the JSON."""
        with user_errors():
            out = compare_slots(studio, dialogue, max_new_tokens, progress)
        cells = [v for row in out["slots"] for v in (row["summary"], score_line(row))]
        return ["\n".join(out["prompt_notes"]) or "none: the whole dialogue fits", *cells, out]

    def refresh_clicked():
        """Updates the three pickers' choices from the runs folder."""
        return [gr.Dropdown(choices=run_choices(studio, slot)) for slot in PICKABLE]

    outputs = [notes, *[box for panel in panels for box in panel], results]
    run.click(compare_clicked, [dialogue, max_new], outputs, api_name="compare",
              concurrency_id=MODEL_QUEUE, concurrency_limit=1)
    refresh.click(refresh_clicked, None, list(pickers.values()), api_name="refresh_runs")
    return {"results": results, "pickers": pickers, "refresh": refresh_clicked}
