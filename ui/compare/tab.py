"""Compare tab: one dialogue through the four slots (base, full, LoRA, PPO detox) in one request.

Every filled slot gets the same zero-shot prompt and greedy decoding; each summary is scored for
toxicity (reward = ``nothate`` logit, P(hate)) and ROUGE-1/L against the human references.

Endpoints: ``/compare`` (dialogue, max new tokens -> four summaries, four score lines, a JSON of
everything), ``/set_full``, ``/set_lora``, ``/set_detox`` (source -> slot description; a refused
source raises the message), ``/refresh_runs`` (-> run choices for the three pickers),
``/export_compare`` (the ``/compare`` JSON -> Markdown and CSV handout files).

The page shows the server's slots, not the ones it was built with: :func:`page_state` runs on
every page load (app.py wires it), and a refused Apply warns and puts the slot's current source
back in the picker instead of turning the status box into an error badge.
"""
from __future__ import annotations

import functools
from pathlib import Path

import gradio as gr

from summarizer.inference.generation import GenerationSettings
from summarizer.inference.slot_config import EMPTY_SLOT_HELP, SLOT_LABELS, SLOTS, SlotError
from summarizer.prompts import build_prompt
from summarizer.runs import finished_runs, read_status
from summarizer.tasks import TASKS, label, template
from summarizer.text import clean_dialogue

from ui.access import for_students, teacher_only
from ui.common import FreeNumber, dialogue_picker, judged_against, one_of, rouge_report, user_errors
from summarizer.text import whole_number
from ui.context import GENERATION_CONCURRENCY, GENERATION_QUEUE, MODEL_QUEUE, Studio
from ui.compare.handout import write_handout

PICKABLE = ("full", "lora", "detox")
MAX_SOURCE_CHARS = 1000  # a hub id or folder path; longer is not a path this machine can open


def compare_slots(studio: Studio, dialogue: str, max_new_tokens: float, progress, task: str = "summary") -> dict:
    """Summaries (or, for the ``response`` task, next turns) and scores of ``dialogue`` from every
    filled slot; empty slots say how to fill them; a slot trained on another task is said.

    Returns:
        ``{"prompt_notes": [...], "references": [...], "slots": [row per slot], "task": ...}``; a row
        has ``slot``, ``label``, ``filled``, ``summary`` and, when filled, ``reward``, ``p_hate``,
        ``rouge1`` and ``rougeL`` (best over references, 0..1; ``None`` without references) and
        ``trained_task`` (the task of the slot's training run, None when it is no run).
    """
    settings, text = check_compare_input(dialogue, max_new_tokens)
    task = one_of(task, "Task", TASKS)
    refs = against = None  # a summary's references come after generating
    if task == "response":
        example = studio.task_row(task, text)
        if example is not None:
            text, refs, against = example["dialogue"], list(example["references"]), judged_against(example, task)
        else:
            refs = []  # a pasted conversation: read whole, no next turn to judge against
    filled = [s for s in SLOTS if studio.slots.is_filled(s)]
    progress(0, desc=studio.slots.loading_note(filled))
    prompt = build_prompt("zero-shot", text, tokenizer=studio.slots.tokenizer, max_tokens=studio.max_input_tokens,
                          zero_shot_template=template(task))
    summaries = studio.slots.answer(filled, [prompt.text], settings)  # batched with other sessions' requests
    progress(0.9, desc="scoring toxicity")
    scores = dict(zip(filled, studio.toxicity.score([summaries[s][0] for s in filled])))
    trained = {slot: run_task(studio.slots.source(slot)) for slot in filled}
    if refs is None:
        row = studio.task_row("summary", text)
        refs, against = (list(row["references"]) if row else []), judged_against(row, "summary")
    notes = [f"The {slot} slot's run was trained for the {was} task, not {task}: its output shows that."
             for slot, was in trained.items() if was and was != task]
    if against:
        notes.append(f"ROUGE is computed against {against}.")
    rows = []
    for slot in SLOTS:
        row = {"slot": slot, "label": SLOT_LABELS[slot], "filled": slot in filled}
        if slot in filled:
            summary = summaries[slot][0]
            rouge = rouge_report(summary, refs).get("best", {})
            row.update(summary=summary, reward=scores[slot].reward, p_hate=scores[slot].p_hate,
                       rouge1=rouge.get("rouge1"), rougeL=rouge.get("rougeL"), trained_task=trained[slot])
        else:
            row["summary"] = EMPTY_SLOT_HELP[slot]
        rows.append(row)
    return {"dialogue": text, "prompt": prompt.text, "prompt_notes": [*notes, *prompt.notes], "references": refs,
            "against": against, "slots": rows, "task": task}


def check_compare_input(dialogue, max_new_tokens) -> tuple[GenerationSettings, str]:
    """(settings, cleaned dialogue) of a Compare request, checked before any model work.

    Raises:
        ValueError: an empty or over-long dialogue, or max new tokens not a whole number 1..512
            (the message names the field).
    """
    settings = GenerationSettings(max_new_tokens=whole_number(max_new_tokens, "Max new tokens", 1, 512))
    return settings, clean_dialogue(dialogue)


def slot_line(studio: Studio, slot: str) -> str:
    """The slot's one-line description, with the task its training run was trained for."""
    task = run_task(studio.slots.source(slot))
    return studio.slots.describe(slot) + (f"; trained for the {task} task" if task else "")


def run_task(source: str | None) -> str | None:
    """The task a slot's training run was trained for (its ``status.json``), or None when the
    source is no run's ``model`` folder (a hub model, a folder of one's own) or says none."""
    if not source or Path(source).name != "model":
        return None
    status = read_status(Path(source).parent) or {}
    task = status.get("task")
    return task if task in TASKS else None


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


def choices_by_slot(studio: Studio) -> dict[str, list[tuple[str, str]]]:
    """:func:`run_choices` of every pickable slot from one listing of the runs folder (the page
    load and Refresh would otherwise read every run's status once per slot)."""
    grouped: dict[str, list[tuple[str, str]]] = {slot: [] for slot in PICKABLE}
    for run in finished_runs(studio.runs_dir):
        if run.slot in grouped:
            grouped[run.slot].append((run.label, str(run.path)))
    return grouped


def check_source(slot: str, source) -> str | None:
    """The stripped ``source`` typed for ``slot`` (``None`` empties it).

    Raises:
        SlotError: naming the slot's source field, for non-text, over-long text, or control
        characters / lone surrogates (no folder or hub id holds them).
    """
    field = f"The {slot} slot's source"
    if source is None:
        return None
    if not isinstance(source, str):
        raise SlotError(f"{field} must be text (a hub id or a folder path), got {type(source).__name__}.")
    if len(source) > MAX_SOURCE_CHARS:
        raise SlotError(f"{field} has {len(source):,} characters, over the limit of {MAX_SOURCE_CHARS:,}: "
                        f"give a hub id or a folder path.")
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in source.strip()):
        raise SlotError(f"{field} contains control characters or invalid Unicode: give a hub id or a "
                        f"folder path as plain text.")
    return source.strip() or None


def apply_source(studio: Studio, slot: str, source: str | None, progress=lambda *a, **k: None) -> str:
    """Point ``slot`` at ``source`` ("" empties it) and load it now; on failure keep the old source.

    Returns:
        The slot's one-line description (:meth:`ModelSlots.describe`).

    Raises:
        SlotError: naming the source (missing folder, a file, wrong kind of model, load failure).
    """
    source = check_source(slot, source)
    previous = studio.slots.source(slot)
    try:
        studio.slots.set_source(slot, source)
    except SlotError as err:
        if f"{slot} slot" in str(err):
            raise
        raise SlotError(f"The {slot} slot's source: {err}") from err
    except (OSError, ValueError) as err:  # e.g. a name too long for the file system
        raise SlotError(f"The {slot} slot's source cannot be opened as a folder ({getattr(err, 'strerror', None) or err}): "
                        f"give a hub id or an existing folder.") from err
    progress(0, desc=f"loading the {slot} model")
    try:
        studio.slots.load([slot])
    except SlotError as err:
        studio.slots.set_source(slot, previous)
        if f"{slot} " in str(err):
            raise
        raise SlotError(f"The {slot} slot's source: {err}") from err
    return slot_line(studio, slot)


def picker_value(studio: Studio, slot: str, choices: list[tuple[str, str]] | None = None) -> str | None:
    """The picker value that shows ``slot``'s source: its run folder when it came from a run.

    ``choices`` are the slot's :func:`run_choices` when the caller has them; the runs folder is
    listed only when the source could be a run's ``model`` folder and none were given.
    """
    source = studio.slots.source(slot)
    if not source or Path(source).name != "model":
        return source
    runs = {value for _, value in (run_choices(studio, slot) if choices is None else choices)}
    return str(Path(source).parent) if str(Path(source).parent) in runs else source


def apply_in_page(studio: Studio, slot: str, source, progress=lambda *a, **k: None):
    """Apply from the page: (status text, picker update).

    A refused source shows as a warning toast; the status keeps describing the unchanged slot and
    the picker goes back to the slot's current source.
    """
    try:
        status = apply_source(studio, slot, source, progress)
    except SlotError as err:
        gr.Warning(str(err))
        return slot_line(studio, slot), gr.Dropdown(value=picker_value(studio, slot))
    return status, gr.Dropdown()


def apply_handler(studio: Studio, slot: str):
    """The Apply button's handler for ``slot`` (see :func:`apply_in_page`)."""
    @teacher_only
    def apply_clicked(source, progress=gr.Progress()):
        """Reads the picker; updates the status box and, after a refusal, resets the picker."""
        return apply_in_page(studio, slot, source, progress)
    return apply_clicked


def api_setter(studio: Studio, slot: str):
    """The ``/set_<slot>`` endpoint: a refused source raises ``gr.Error`` (``AppError`` in clients)."""
    @teacher_only
    def set_slot(source: str | None) -> str:
        """Fill this slot with a run folder, model or adapter folder or hub id ("" empties it)."""
        with user_errors():
            return apply_source(studio, slot, source)
    return set_slot


def page_state(studio: Studio) -> list:
    """Values for every page load: the base box, the three status boxes and the three pickers
    (choices from the runs folder, value = the slot's current source)."""
    return [*slot_statuses(studio), *picker_updates(studio)]


def slot_statuses(studio: Studio) -> list[str]:
    """The base box and the three slots' status lines (what every page shows)."""
    return [slot_line(studio, slot) for slot in ("base", *PICKABLE)]


def picker_updates(studio: Studio) -> list:
    """The three pickers: the runs folder's finished runs (the teacher's), value = the slot's source."""
    grouped = choices_by_slot(studio)
    return [gr.Dropdown(choices=grouped[slot], value=picker_value(studio, slot, grouped[slot]))
            for slot in PICKABLE]


def slot_panel(slot: str):
    """One slot's column: label, summary box and score line. Returns (summary, scores)."""
    with gr.Column(min_width=220):
        gr.Markdown(f"### {SLOT_LABELS[slot]}")
        summary = gr.Textbox(label=label("summary", "output"), lines=4, interactive=False,
                             elem_id=f"compare-summary-{slot}")
        scores = gr.Textbox(label="Toxicity and ROUGE", interactive=False, elem_id=f"compare-scores-{slot}")
    return summary, scores


def slot_pickers(studio: Studio) -> tuple[dict, list]:
    """Source pickers for the full, LoRA and detox slots.

    Returns:
        ``({slot: dropdown}, [base box, full, lora, detox status boxes])``.
    """
    gr.Markdown("Pick a finished training run, or type a hub id or a local model/adapter folder, "
                "then Apply. Apply with an empty box empties the slot.")
    statuses = [gr.Textbox(studio.slots.describe("base"), label="base (set with --base-model)", interactive=False,
                           elem_id="compare-source-base")]
    pickers = {}
    for slot in PICKABLE:
        with gr.Row():
            # No choices in the built page, which every login receives: the teacher's page load fills them.
            pickers[slot] = gr.Dropdown([], value=studio.slots.source(slot),
                                        allow_custom_value=True, label=f"{SLOT_LABELS[slot]} source",
                                        elem_id=f"compare-pick-{slot}", scale=4)
            apply = gr.Button("Apply", elem_id=f"compare-apply-{slot}", scale=0)
        statuses.append(gr.Textbox(slot_line(studio, slot), label=f"{slot} slot now", interactive=False,
                                   elem_id=f"compare-source-{slot}"))

        apply.click(apply_handler(studio, slot), pickers[slot], [statuses[-1], pickers[slot]], api_visibility="private",
                    concurrency_id=MODEL_QUEUE, concurrency_limit=1)
        gr.api(api_setter(studio, slot), api_name=f"set_{slot}", concurrency_id=MODEL_QUEUE, concurrency_limit=1)
    return pickers, statuses


def build(studio: Studio, task: gr.State | None = None) -> dict:
    """Build the Compare tab.

    Returns:
        ``results`` (the JSON component), ``pickers``, ``refresh`` (the pickers' choices) and
        ``load`` with ``load_outputs``: app.py runs ``load`` on every page load so the boxes show
        the server's slots.
    """
    task = task if task is not None else gr.State("summary")  # the page's task (ui.common.task_selector)
    gr.Markdown("The same dialogue through every filled slot, with the zero-shot prompt (of the summary or "
                "the next-turn task) and greedy decoding. Reward is the hate-speech classifier's `nothate` logit (higher = less "
                "hateful); ROUGE is the best F-measure ×100 over the human references.")
    dialogue, _, _ = dialogue_picker(studio, "compare", api_name=None, task=task)
    with gr.Row():
        max_new = FreeNumber(GenerationSettings().max_new_tokens, precision=0, label="Max new tokens (1..512)",
                             elem_id="compare-max-new", scale=1)
        run = gr.Button("Compare", variant="primary", elem_id="compare-run", scale=2)
    notes = gr.Textbox(label="Prompt notes", interactive=False, elem_id="compare-notes")
    with gr.Row():
        panels = [slot_panel(slot) for slot in SLOTS]
    with gr.Row():
        export = gr.Button("Download handout (Markdown, CSV)", elem_id="compare-export", scale=1, min_width=260)
        handout = gr.File(label="Handout: dialogue, prompt, summaries and scores", file_count="multiple",
                          interactive=False, elem_id="compare-handout", scale=3, height=170)
    with gr.Accordion("All results as JSON", open=False):
        results = gr.JSON(label="Results", elem_id="compare-json")
    with gr.Accordion("Models in the slots", open=False) as slots_box:
        pickers, statuses = slot_pickers(studio)
        refresh = gr.Button("Refresh finished runs", elem_id="compare-refresh")

    @for_students
    def compare_clicked(dialogue, max_new_tokens, task, request: gr.Request, progress=gr.Progress()):
        """Reads the dialogue box, max new tokens and the task; updates prompt notes, the four
        summary and score boxes, and the JSON."""
        studio.activity.asked(request, "compare", dialogue)  # the teacher's Class view
        with studio.limit.admit(request), user_errors():
            out = compare_slots(studio, dialogue, max_new_tokens, progress, task)
        cells = [v for row in out["slots"] for v in (row["summary"], score_line(row))]
        return ["\n".join(out["prompt_notes"]) or "none: the whole dialogue fits", *cells, out]

    @teacher_only
    def refresh_clicked():
        """Updates the three pickers' choices from the runs folder."""
        grouped = choices_by_slot(studio)
        return [gr.Dropdown(choices=grouped[slot]) for slot in PICKABLE]

    @for_students
    def check_clicked(dialogue, max_new_tokens):
        """Reads the dialogue box and max new tokens; updates nothing: a bad value is one message
        (a toast), not an error badge on each of the ten outputs Compare fills."""
        with user_errors():
            check_compare_input(dialogue, max_new_tokens)

    @for_students
    def show_task_labels(task_now):
        """Reads the page's task; updates the four output boxes' labels ("Summary" or "Next turn")."""
        name = label(task_now if task_now in TASKS else "summary", "output")
        return [gr.Textbox(label=name) for _ in panels]

    outputs = [notes, *[box for panel in panels for box in panel], results]
    run.click(check_clicked, [dialogue, max_new], None, api_visibility="private", queue=False).success(
        compare_clicked, [dialogue, max_new, task], outputs, api_name="compare",
        concurrency_id=GENERATION_QUEUE, concurrency_limit=GENERATION_CONCURRENCY)
    task.change(show_task_labels, task, [summary for summary, _ in panels], api_visibility="private")
    @for_students
    def export_clicked(results):
        """Reads the results JSON; updates the handout files (Markdown and CSV)."""
        with user_errors():
            return [str(p) for p in write_handout(results)]

    refresh.click(refresh_clicked, None, list(pickers.values()), api_name="refresh_runs")
    export.click(export_clicked, results, handout, api_name="export_compare")
    return {"results": results, "pickers": pickers, "refresh": refresh_clicked, "teacher_only": [slots_box],
            "load": for_students(functools.partial(slot_statuses, studio)), "load_outputs": statuses,
            "teacher_load": teacher_only(functools.partial(picker_updates, studio)), "teacher_load_outputs": list(pickers.values())}
