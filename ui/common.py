"""Pieces the Prompting, Compare and Toxicity tabs share: the dialogue picker, errors, ROUGE text.

Handlers turn ``ValueError`` (bad input, including :class:`summarizer.inference.slots.SlotError`) into
``gr.Error`` so the user sees the message and the app stays up.
"""
from __future__ import annotations

import contextlib
import random

import gradio as gr

from summarizer.data import SPLITS
from summarizer.tasks import DEFAULT_TASK, TASKS, label, response_example, split_turns
from summarizer.uploads import UPLOADED
from summarizer.evaluation.rouge import MULTI_REFERENCE_RULE, ROUGE_KEYS, ROUGE_NAMES, score_one
from summarizer.text import check_index, excerpt

from ui.access import for_students
from ui.context import Studio

NO_REFERENCE = "no reference"


@contextlib.contextmanager
def user_errors(kinds: tuple[type[Exception], ...] = (ValueError, OSError)):
    """Re-raise ``kinds`` as ``gr.Error`` (a message for the user, no traceback).

    The default covers ``ValueError`` (and ``SlotError``) and ``OSError`` from loading; the Train
    tab passes ``(ValueError, TypeError)``, the runner's refusals, which name the field.
    """
    try:
        yield
    except kinds as err:
        raise gr.Error(str(err), print_exception=False) from err


def task_view(row: dict, task: str = DEFAULT_TASK) -> tuple[str, str]:
    """(the dialogue box's text, the reference box) of a DialogSum or uploaded ``row`` shown as
    ``task`` judges it.

    ``summary``: the whole dialogue and its human summaries, one per line. ``response``: the
    context, turns 1..k (:func:`summarizer.tasks.response_example`), and turn k+1, the one
    reference, said to be the next turn; a dialogue too short for it stays whole and the box says so.
    The reference box's label follows the task (:func:`retarget`, on every change of task).
    """
    if task != "response":
        return row["dialogue"], "\n".join(f"{k + 1}. {r}" for k, r in enumerate(row["references"]))
    example = response_example(row)
    if example is None:
        return row["dialogue"], ("No next turn: this dialogue has fewer than three turns (or an empty next "
                                 "turn). Pick another dialogue or the summary task.")
    k, n = example["context_turns"], len(split_turns(row["dialogue"]))
    return example["dialogue"], (f"Next turn, turn {k + 1} of {n} ({example['speaker']}), the one reference; "
                                 f"the dialogue box shows turns 1-{k}:\n{example['references'][0]}")


def load_dialogue(studio: Studio, split: str, index: float, task: str = DEFAULT_TASK) -> tuple[str, str, str]:
    """(dialogue, references, a line saying which row it is) for ``split[index]`` under ``task``
    (:func:`task_view`: for ``response`` the context up to turn k and the next turn).

    Raises:
        gr.Error: ``split`` is not a DialogSum split, or ``index`` is not a row number of it
            (the message names the field, "Split" or "Dialogue number", and its allowed values),
            or ``task`` is not a task.
    """
    with user_errors():
        split = split if split == UPLOADED else one_of(split, "Split", SPLITS)  # split() says when none is
        task = one_of(task, "Task", TASKS)
        rows = studio.split(split)
        index = check_index(index, len(rows), split)
        row = rows[index]
    text, refs = task_view(row, task)
    return text, refs, f"{split} #{index} of {len(rows)}, id {row['id']}, topic: {row['topic']}"


def retarget(studio: Studio, dialogue: str | None, task: str) -> tuple:
    """(dialogue box, reference box) after the page's task changed: a loaded dialogue (whole or
    cut) is shown again as ``task`` judges it; a pasted one stays, with no reference. The
    reference box's label says what the task judges against (``summarizer.tasks.LABELS``)."""
    row = (studio.row_for(dialogue) or studio.row_for_context(dialogue)) if dialogue else None
    if row is None:
        return gr.update(), gr.Textbox(value="", label=label(task, "reference"))
    text, refs = task_view(row, task)
    return text, gr.Textbox(value=refs, label=label(task, "reference"))


def random_index(studio: Studio, split: str) -> int:
    """A random row number of ``split``."""
    with user_errors():
        return random.randrange(len(studio.split(split)))


def shown_where(studio: Studio, dialogue: str, task: str) -> tuple | None:
    """(split, number, reference box, "Loaded" line) for a ``dialogue`` box that holds a DialogSum or
    uploaded row (whole, or cut as ``task`` shows it), as Load would fill them; None for a pasted
    text. What a lesson restores and Send to the class sends besides the dialogue."""
    where = studio.locate(dialogue) if isinstance(dialogue, str) and dialogue.strip() else None
    if where is None:
        return None
    _, refs, info = load_dialogue(studio, *where, task if task in TASKS else DEFAULT_TASK)
    return (*where, refs, info)


def dialogue_picker(studio: Studio, prefix: str, api_name: str | None, task: gr.State | None = None,
                    parts: dict | None = None):
    """Split, number, Load and Random controls over an editable dialogue box.

    Returns ``(dialogue, references, info)`` components. Load reads split, number and the page's
    ``task`` (:func:`task_selector`; none: summary) and updates the three; Random sets the number
    then loads; a change of task shows the loaded dialogue again as that task judges it
    (:func:`retarget`). ``api_name`` names the load endpoint. ``parts``, if given, receives the
    ``split`` and ``index`` components (for lessons and Send to the class).
    """
    task = task if task is not None else gr.State(DEFAULT_TASK)
    with gr.Row():
        split = ChoiceField([*SPLITS, UPLOADED], value="test", label="Split", elem_id=f"{prefix}-split", scale=1)
        index = RawNumber(0, precision=0, minimum=0, label="Dialogue number", elem_id=f"{prefix}-index", scale=1)
        load = gr.Button("Load", elem_id=f"{prefix}-load", scale=0)
        rand = gr.Button("Random", elem_id=f"{prefix}-random", scale=0)
    with gr.Row():
        dialogue = TextField(label="Dialogue (edit it, or paste your own: a pasted dialogue has no reference)",
                              lines=8, max_lines=12, elem_id=f"{prefix}-dialogue", scale=3)
        with gr.Column(scale=2):
            info = gr.Textbox(label="Loaded", interactive=False, elem_id=f"{prefix}-info")
            refs = gr.Textbox(label="Human reference summaries", lines=4, max_lines=8, interactive=False,
                              elem_id=f"{prefix}-references")
    visibility = "public" if api_name else "private"
    if parts is not None:
        parts.update(split=split, index=index)

    @for_students
    def load_fn(split: str, index: float, task_now: str):
        """Reads split, number and the page's task; updates dialogue, references and the "Loaded" line."""
        return load_dialogue(studio, split, index, task_now)

    @for_students
    def task_changed(dialogue_now: str, task_now: str):
        """Reads the dialogue box and the new task; updates the dialogue and reference boxes."""
        with user_errors():
            return retarget(studio, dialogue_now, one_of(task_now, "Task", TASKS))

    load.click(load_fn, [split, index, task], [dialogue, refs, info], api_name=api_name, api_visibility=visibility)
    rand.click(for_students(lambda split_name: random_index(studio, split_name)), split, index, api_visibility="private").then(
        load_fn, [split, index, task], [dialogue, refs, info], api_visibility="private")
    task.change(task_changed, [dialogue, task], [dialogue, refs], api_visibility="private")
    return dialogue, refs, info


def rouge_report(prediction: str, references: list[str], against: str | None = None) -> dict:
    """ROUGE of ``prediction`` (``best`` and ``mean`` F-measures, 0..1) or a "no reference" note;
    ``against`` says which reference it is judged on (``summarizer.tasks.label(task, "against")``),
    kept as the report's ``against``."""
    if not references:
        return {"references": [], "note": NO_REFERENCE}
    extra = {"against": against} if against else {}
    return {"references": references, **score_one(prediction, references), "rule": MULTI_REFERENCE_RULE, **extra}


def judged_against(example: dict | None, task: str) -> str | None:
    """Which reference ROUGE is computed against for a :meth:`Studio.task_row` ``example`` (None
    for a pasted text): the human summaries, or the next turn with its number and speaker."""
    if example is None:
        return None
    if task == "response":
        return label(task, "against", turn=example["context_turns"] + 1, speaker=example["speaker"] or "no tag")
    return f"the {len(example['references'])} human summaries in the reference box"


def rouge_markdown(report: dict) -> str:
    """A Markdown table of a :func:`rouge_report` (numbers and the app's own words only: no user
    text is rendered)."""
    if not report.get("references"):
        return f"**ROUGE:** {NO_REFERENCE} (a pasted or edited dialogue has no reference to compare with)."
    n = len(report["references"])
    head = "| | " + " | ".join(ROUGE_NAMES[k] for k in ROUGE_KEYS) + " |\n|---|" + "---|" * len(ROUGE_KEYS)
    rows = [f"| {rule} of {n} | " + " | ".join(f"{100 * report[rule][k]:.1f}" for k in ROUGE_KEYS) + " |"
            for rule in ("best", "mean")]
    against = report.get("against") or f"{n} reference(s)"
    return "\n".join([f"**ROUGE F-measure ×100 against {against}**", "", head, *rows, "",
                      f"_{MULTI_REFERENCE_RULE}_"])


def tiny_model_line(studio: Studio) -> str:
    """One Markdown line for every tab when a slot's model or the toxicity classifier is far
    smaller than FLAN-T5-small (under :data:`~summarizer.inference.meta_model.TINY_PARAMETERS`,
    e.g. the tests' tiny models): its outputs, ROUGE and P(hate) are meaningless. "" when none is.
    Names slots and counts only (no path is rendered)."""
    from summarizer.inference.meta_model import FLAN_T5_SMALL_PARAMETERS, tiny_models
    from summarizer.inference.model_sources import resolve_source

    sources = {"base": studio.slots.source("base"), "toxicity classifier": studio.toxicity.model_name}
    if studio.slots.is_filled("full"):
        with contextlib.suppress(ValueError, OSError):  # SlotError is a ValueError
            sources["full"] = resolve_source(studio.slots.source("full"))
    tiny = tiny_models(sources, classifiers=("toxicity classifier",))
    if not tiny:
        return ""
    named = ", ".join(f"the {name} model ({n:,} parameters)" if name != "toxicity classifier"
                      else f"the toxicity classifier ({n:,} parameters)" for name, n in tiny.items())
    return (f"**Test-size models: the outputs are meaningless.** {named[0].upper()}{named[1:]} "
            f"{'is' if len(tiny) == 1 else 'are'} far smaller than FLAN-T5-small "
            f"({FLAN_T5_SMALL_PARAMETERS:,} parameters), so every summary, next turn, ROUGE score, P(hate) and "
            "reward on this page only shows that the app works. Start the app with `--base-model "
            "google/flan-t5-base` (and the default toxicity model) for real outputs.")


def progress_callback(progress: gr.Progress, what: str):
    """An ``on_batch(done, total)`` callback that moves ``progress``."""
    return lambda done, total: progress(done / max(total, 1), desc=f"{what}: {done}/{total}")


# --- Request values the handlers check themselves (issue 8, findings 5-6) ---
# Gradio's own preprocessing of numbers, sliders and choices fails on NaN, text or lists with
# messages that do not name the field ("cannot convert float NaN to integer", "Value: 'x' is not
# in the list of choices"), and rounds or bounds numbers before the handler sees them. These
# components pass the request's value through unchanged (the page still gets precision, bounds
# and choices for its controls); the handler checks it with one of the checks below
# (:func:`whole_number`, :func:`one_of`, :func:`chosen_values`) or ``GenerationSettings.from_dict``,
# naming the field and its allowed values. One mechanism for every kind of control.

def _pass_through(self, payload):
    """The request's value, unchanged: the handler checks it."""
    return payload


# Class statements, not a factory: gradio reads each component class's source, and renders an
# ``is_template`` class with its first base's front end.
class RawNumber(gr.Number):
    """``gr.Number`` whose handler receives the raw value; check it with :func:`whole_number` or
    ``GenerationSettings.from_dict``."""

    is_template = True
    preprocess = _pass_through


class ChoiceField(gr.Dropdown):
    """``gr.Dropdown`` whose handler receives the raw value; check it with :func:`one_of`."""

    is_template = True
    preprocess = _pass_through


class ChoiceRadio(gr.Radio):
    """``gr.Radio`` whose handler receives the raw value; check it with :func:`one_of` (the
    generation strategy: ``GenerationSettings.from_dict``)."""

    is_template = True
    preprocess = _pass_through


class FreeSlider(gr.Slider):
    """``gr.Slider`` whose handler receives the raw value; check it with :func:`whole_number`."""

    is_template = True
    preprocess = _pass_through


class FreeCheckboxGroup(gr.CheckboxGroup):
    """``gr.CheckboxGroup`` whose handler receives the raw value; check it with :func:`chosen_values`."""

    is_template = True
    preprocess = _pass_through


FreeNumber = RawNumber  # the names Compare and Evaluate import
FreeDropdown = ChoiceField


class TextField(gr.Textbox):
    """A ``gr.Textbox`` that refuses a non-text API value (a list, a number) with a message
    naming the field, instead of passing on its ``str()`` (``"[1, 2]"``) as if it were typed."""

    is_template = True

    def preprocess(self, payload):
        if payload is not None and not isinstance(payload, str):
            raise gr.Error(f"{field_name(self)} must be text, got a {type(payload).__name__} "
                           f"({excerpt(payload)}).", print_exception=False)
        return payload


def field_name(component) -> str:
    """The field's name for messages: its label up to the first " (" or ":" ("Dialogue")."""
    return str(component.label).split(" (")[0].split(":")[0]


def one_of(value, field: str, allowed) -> str:
    """``value`` if it is one of ``allowed``.

    Raises:
        ValueError: naming ``field`` and the allowed values.
    """
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(allowed)}, got {excerpt(value)}.")
    return value


def chosen_values(value, field: str, allowed) -> list[str]:
    """A list of distinct ``allowed`` values in ``allowed``'s order (``None`` = none chosen).

    Raises:
        ValueError: naming ``field`` for a non-list, or a value not allowed.
    """
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{field} must be a list of {', '.join(allowed)}, got {type(value).__name__} "
                         f"{excerpt(value)}.")
    unknown = [v for v in value if not isinstance(v, str) or v not in allowed]
    if unknown:
        raise ValueError(f"{field} must be chosen from {', '.join(allowed)}, got {excerpt(unknown[0])}.")
    return [a for a in allowed if a in value]



def task_selector() -> tuple[gr.Radio, gr.State]:
    """The page's task (``summary`` or ``response``) for Prompting, Compare, Evaluate and the Prompt
    Lab: a radio and the session's :class:`gr.State` the tabs read. API clients set it with
    ``/set_task`` (task; the session keeps it) before ``/summarize``, ``/compare``, ``/evaluate`` or
    ``/prompt_lab``, whose inputs stay as they were (a State is no API input)."""
    radio = ChoiceRadio(list(TASKS), value=DEFAULT_TASK, label="Task (response: the model writes the next turn "
                        "of a dialogue cut after turn k, judged on turn k+1)", elem_id="task")
    state = gr.State(DEFAULT_TASK)

    @for_students
    def set_task(task):
        """Reads the task radio; updates this session's task."""
        with user_errors():
            return one_of(task, "Task", TASKS)

    radio.change(set_task, radio, state, api_name="set_task")
    return radio, state
