"""Lessons: the teacher saves the page's set-up and opens it again, the next day or after a restart.

A lesson (:class:`summarizer.lessons.Lesson`, a JSON file in ``<runs>/lessons/``) holds the slot
sources, the engine, the uploaded dialogues, the task, the Prompting dialogue, prompt and
generation settings, and the Prompt Lab's templates. ``layout()`` draws the panel (name, Save, the
saved lessons, Open); ``wire(...)`` connects it once the tabs exist, with the endpoints
``/save_lesson`` (name, then the page's values -> a status line and the list) and ``/open_lesson``
(a lesson from the list -> a status line, then the page's values), both the teacher's. The lesson
last opened is the studio's (``Studio.lesson``): every page load, a reload or a student's first
visit, shows its values. ``python app.py --lesson FILE`` opens one at start.
"""
from __future__ import annotations

import gradio as gr

from summarizer.inference.slot_config import SLOTS, SlotError
from summarizer.lessons import (Lesson, LessonError, list_lessons, load_lesson, missing_sources, save_lesson,
                                uploaded_dataset)
from ui.access import for_students, teacher_only
from ui.common import load_dialogue, shown_where
from ui.context import Studio
from ui.prompting import SETTING_NAMES

# The page's values a lesson holds, in the order of the components wire() is given.
PAGE_FIELDS = ("dialogue", "task", "prompt_mode", "examples", "shots")
GENERATION_FIELDS = SETTING_NAMES  # the eight generation controls, in the Prompting tab's order
# Where the dialogue came from, shown as Load shows it: filled from the lesson, never saved from the page.
WHERE_FIELDS = ("split", "number", "references", "loaded")


def page_names(n_templates: int) -> list[str]:
    """The names of the page's values, in :func:`lesson_from_page`'s order: :data:`PAGE_FIELDS`, the
    generation fields, ``template_1`` .. ``template_<n>`` (also the names :mod:`ui.send_to_class` sends)."""
    return [*PAGE_FIELDS, *GENERATION_FIELDS, *(f"template_{k + 1}" for k in range(n_templates))]


def lesson_from_page(studio: Studio, name: str, values: list) -> Lesson:
    """A lesson of the server's state (slots, engine, uploaded set) and the page's ``values``:
    :data:`PAGE_FIELDS`, then the eight generation controls, then the Prompt Lab's templates.

    Raises:
        LessonError: a value out of range or of the wrong type (the message names the field).
    """
    dialogue, task, mode, examples, shots = values[:len(PAGE_FIELDS)]
    generation = dict(zip(GENERATION_FIELDS, values[len(PAGE_FIELDS):len(PAGE_FIELDS) + len(GENERATION_FIELDS)]))
    templates = list(values[len(PAGE_FIELDS) + len(GENERATION_FIELDS):])
    text = dialogue if isinstance(dialogue, str) else ""
    where = studio.locate(text) if text.strip() else None  # a loaded row is saved as its split and number
    shown = {"split": where[0], "number": where[1]} if where else {"text": text} if text.strip() else None
    return Lesson(name=name, slots={s: studio.slots.source(s) for s in SLOTS}, backend=studio.slots.backend,
                  compute_type=studio.slots.compute_type, task=task, dialogue=shown,
                  uploaded=list(studio.uploaded) if studio.uploaded is not None else None, templates=templates,
                  generation=generation, prompt_mode=mode, examples=examples or "", shots=shots)


def page_values(studio: Studio, lesson: Lesson, n_templates: int) -> list:
    """The page's values from ``lesson``, in the order of :func:`lesson_from_page`'s ``values``."""
    dialogue = ""
    if lesson.dialogue and "text" in lesson.dialogue:
        dialogue = lesson.dialogue["text"]
    elif lesson.dialogue:
        try:
            dialogue = studio.split(lesson.dialogue["split"])[lesson.dialogue["number"]]["dialogue"]
        except (ValueError, IndexError, OSError):  # a split not here (no upload) or a row beyond it
            dialogue = ""
    templates = (list(lesson.templates) + [""] * n_templates)[:n_templates]
    return [dialogue, lesson.task, lesson.prompt_mode, lesson.examples, lesson.shots,
            *[lesson.generation[k] for k in GENERATION_FIELDS], *templates]


def where_values(studio: Studio, lesson: Lesson) -> list:
    """:data:`WHERE_FIELDS` for ``lesson``'s dialogue as Load shows it under the lesson's task (the
    dialogue box's text first): from its split and number, or found by its text in the uploaded
    set or DialogSum; for a pasted text the split and number stay and the reference box is empty."""
    values = page_values(studio, lesson, 0)
    dialogue, task = values[0], values[1]
    try:
        if lesson.dialogue and "split" in lesson.dialogue:
            text, refs, info = load_dialogue(studio, lesson.dialogue["split"], lesson.dialogue["number"], task)
            return [text, lesson.dialogue["split"], lesson.dialogue["number"], refs, info]
        where = shown_where(studio, dialogue, task)
    except (gr.Error, ValueError, OSError):  # a split not here or a row beyond it: shown as pasted
        where = None
    if where is None:
        return [dialogue, gr.update(), gr.update(), "", "pasted (no reference)" if dialogue else ""]
    return [dialogue, *where]


def apply_lesson(studio: Studio, lesson: Lesson) -> list[str]:
    """Make ``lesson`` the studio's: its slot sources, engine and uploaded dialogues; returns a note
    for every source that is missing or does not load (those slots keep what they hold)."""
    notes = missing_sources(lesson)
    missing = {slot for slot in SLOTS for note in notes if note.startswith(f"The {slot} slot")}
    for slot in SLOTS:
        source = lesson.slots.get(slot)
        if slot in missing or (slot == "base" and not source):
            continue
        try:
            studio.slots.set_source(slot, source)
        except (SlotError, OSError) as err:
            notes.append(f"The {slot} slot keeps {studio.slots.source(slot)!r}: {err}")
    try:
        studio.slots.set_backend(lesson.backend, lesson.compute_type)
    except SlotError as err:
        notes.append(f"The engine stays {studio.slots.backend}: {err}")
    uploaded = uploaded_dataset(lesson)
    if uploaded is not None:
        studio.set_uploaded(uploaded)
    studio.lesson = lesson
    return notes


def layout() -> dict:
    """The Lessons accordion (the teacher's): name, Save, the saved lessons, Open, a status line."""
    with gr.Accordion("Lessons (teacher): save this set-up, open it again", open=False) as box:
        with gr.Row():
            name = gr.Textbox(label="Lesson name", max_length=100, elem_id="lesson-name", scale=2)
            save = gr.Button("Save lesson", elem_id="lesson-save", scale=1)
            chosen = gr.Dropdown([], label="Saved lessons", allow_custom_value=True, elem_id="lesson-list", scale=2)
            open_ = gr.Button("Open lesson", elem_id="lesson-open", scale=1)
        status = gr.Markdown(elem_id="lesson-status")
    return {"box": box, "name": name, "save": save, "chosen": chosen, "open": open_, "status": status}


def _choices(studio: Studio) -> gr.Dropdown:
    return gr.Dropdown(choices=[(f"{name} ({created[:16]})", path.name)
                                for name, path, created in list_lessons(studio.runs_dir)])


def wire(studio: Studio, view: dict, page: list, demo: gr.Blocks, where: list) -> None:
    """Connect the panel to the page's components ``page`` (the order of :func:`lesson_from_page`)
    and ``where`` (:data:`WHERE_FIELDS`: split, number, reference box, "Loaded" line), which
    opening and every page load fill (:func:`where_values`)."""
    n_templates = len(page) - len(PAGE_FIELDS) - len(GENERATION_FIELDS)

    @teacher_only
    def save_lesson_clicked(name, *values):
        """Reads the name and the page; saves a lesson; updates the status and the saved lessons."""
        try:
            path = save_lesson(lesson_from_page(studio, name, list(values)), studio.runs_dir)
        except (LessonError, OSError) as err:
            raise gr.Error(str(err), print_exception=False) from err
        return f"Saved **{path.name}** in `{path.parent}`.", _choices(studio)

    @teacher_only
    def open_lesson_clicked(chosen):
        """Reads a saved lesson; applies its slots, engine and uploaded set; updates the page."""
        try:
            lesson = load_lesson(chosen or "", studio.runs_dir)
        except (LessonError, OSError) as err:
            raise gr.Error(str(err), print_exception=False) from err
        notes = apply_lesson(studio, lesson)
        values, shown = page_values(studio, lesson, n_templates), where_values(studio, lesson)
        values[0] = shown[0]  # the dialogue as the lesson's task shows it
        studio.broadcast.publish({**dict(zip(page_names(n_templates), values)),  # open student pages show it too
                                  **{k: v for k, v in zip(WHERE_FIELDS, shown[1:]) if not isinstance(v, dict)}})
        status = (f"Opened **{lesson.name}**; every open student page shows it within seconds."
                  + "".join(f"\n\n- {note}" for note in notes))
        return [status, *values, *shown[1:]]

    @for_students
    def restore():
        """Every page load: the studio's lesson's values (nothing changes without one)."""
        if studio.lesson is None:
            return [gr.update() for _ in [*page, *where]] + [_choices(studio)]
        values, shown = page_values(studio, studio.lesson, n_templates), where_values(studio, studio.lesson)
        values[0] = shown[0]
        return [*values, *shown[1:], _choices(studio)]

    view["save"].click(save_lesson_clicked, [view["name"], *page], [view["status"], view["chosen"]],
                       api_name="save_lesson")
    view["open"].click(open_lesson_clicked, view["chosen"], [view["status"], *page, *where], api_name="open_lesson")
    demo.load(restore, None, [*page, *where, view["chosen"]], api_visibility="private")
