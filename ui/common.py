"""Pieces the Prompting, Compare and Toxicity tabs share: the dialogue picker, errors, ROUGE text.

Handlers turn ``ValueError`` (bad input, including :class:`summarizer.models.SlotError`) into
``gr.Error`` so the user sees the message and the app stays up.
"""
from __future__ import annotations

import contextlib
import random

import gradio as gr

from summarizer.data import SPLITS
from summarizer.rouge import MULTI_REFERENCE_RULE, ROUGE_KEYS, ROUGE_NAMES, score_one
from summarizer.text import check_index

from .context import Studio

NO_REFERENCE = "no reference"


@contextlib.contextmanager
def user_errors():
    """Re-raise ``ValueError`` (and ``SlotError``, ``OSError`` from loading) as ``gr.Error``."""
    try:
        yield
    except (ValueError, OSError) as err:
        raise gr.Error(str(err), print_exception=False) from err


def load_dialogue(studio: Studio, split: str, index: float) -> tuple[str, str, str]:
    """(dialogue, references one per line, a line saying which row it is) for ``split[index]``."""
    with user_errors():
        rows = studio.split(split)
        row = rows[check_index(index, len(rows), split)]
    refs = "\n".join(f"{k + 1}. {r}" for k, r in enumerate(row["references"]))
    return row["dialogue"], refs, f"{split} #{int(index)} of {len(rows)}, id {row['id']}, topic: {row['topic']}"


def random_index(studio: Studio, split: str) -> int:
    """A random row number of ``split``."""
    with user_errors():
        return random.randrange(len(studio.split(split)))


def dialogue_picker(studio: Studio, prefix: str, api_name: str | None):
    """Split, number, Load and Random controls over an editable dialogue box.

    Returns ``(dialogue, references, info)`` components. Load reads split and number and updates
    the three; Random sets the number then loads. ``api_name`` names the load endpoint.
    """
    with gr.Row():
        split = gr.Dropdown(list(SPLITS), value="test", label="Split", elem_id=f"{prefix}-split", scale=1)
        index = gr.Number(0, precision=0, minimum=0, label="Dialogue number", elem_id=f"{prefix}-index", scale=1)
        load = gr.Button("Load", elem_id=f"{prefix}-load", scale=0)
        rand = gr.Button("Random", elem_id=f"{prefix}-random", scale=0)
    with gr.Row():
        dialogue = gr.Textbox(label="Dialogue (edit it, or paste your own: a pasted dialogue has no reference)",
                              lines=8, max_lines=12, elem_id=f"{prefix}-dialogue", scale=3)
        with gr.Column(scale=2):
            info = gr.Textbox(label="Loaded", interactive=False, elem_id=f"{prefix}-info")
            refs = gr.Textbox(label="Human reference summaries", lines=4, max_lines=8, interactive=False,
                              elem_id=f"{prefix}-references")
    visibility = "public" if api_name else "private"

    def load_fn(split: str, index: float):
        """Reads split and number; updates dialogue, references and the "Loaded" line."""
        return load_dialogue(studio, split, index)

    load.click(load_fn, [split, index], [dialogue, refs, info], api_name=api_name, api_visibility=visibility)
    rand.click(lambda split_name: random_index(studio, split_name), split, index, api_visibility="private").then(
        load_fn, [split, index], [dialogue, refs, info], api_visibility="private")
    return dialogue, refs, info


def rouge_report(prediction: str, references: list[str]) -> dict:
    """ROUGE of ``prediction`` (``best`` and ``mean`` F-measures, 0..1) or a "no reference" note."""
    if not references:
        return {"references": [], "note": NO_REFERENCE}
    return {"references": references, **score_one(prediction, references), "rule": MULTI_REFERENCE_RULE}


def rouge_markdown(report: dict) -> str:
    """A Markdown table of a :func:`rouge_report` (numbers only: no user text is rendered)."""
    if not report.get("references"):
        return f"**ROUGE:** {NO_REFERENCE} (a pasted or edited dialogue has no human summary to compare with)."
    n = len(report["references"])
    head = "| | " + " | ".join(ROUGE_NAMES[k] for k in ROUGE_KEYS) + " |\n|---|" + "---|" * len(ROUGE_KEYS)
    rows = [f"| {rule} of {n} | " + " | ".join(f"{100 * report[rule][k]:.1f}" for k in ROUGE_KEYS) + " |"
            for rule in ("best", "mean")]
    return "\n".join([f"**ROUGE F-measure ×100 against {n} reference(s)**", "", head, *rows, "",
                      f"_{MULTI_REFERENCE_RULE}_"])


def progress_callback(progress: gr.Progress, what: str):
    """An ``on_batch(done, total)`` callback that moves ``progress``."""
    return lambda done, total: progress(done / max(total, 1), desc=f"{what}: {done}/{total}")


# ---- request values the handlers check themselves (added for Compare/Evaluate hardening) ----
import math  # noqa: E402  (kept here so this block merges as one addition at the end)

# Gradio's own preprocessing of numbers, sliders and choices fails on NaN, strings or lists with
# messages that do not name the field ("cannot convert float NaN to integer", "Value: 'x' is not
# in the list of choices"). These variants pass the request's value through unchanged (the page
# still restricts what a user can enter); the handler checks it and names the field.
class FreeNumber(gr.Number):
    """``gr.Number`` whose handler receives the raw value; check it with :func:`whole_number`."""

    is_template = True  # same front-end component as gr.Number

    def preprocess(self, payload):
        return payload


class FreeSlider(gr.Slider):
    """``gr.Slider`` whose handler receives the raw value; check it with :func:`whole_number`."""

    is_template = True

    def preprocess(self, payload):
        return payload


class FreeCheckboxGroup(gr.CheckboxGroup):
    """``gr.CheckboxGroup`` whose handler receives the raw value; check it with :func:`chosen_values`."""

    is_template = True

    def preprocess(self, payload):
        return payload


class FreeDropdown(gr.Dropdown):
    """``gr.Dropdown`` whose handler receives the raw value; check it with :func:`one_of`."""

    is_template = True

    def preprocess(self, payload):
        return payload


def _shown(value, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages that echo a bad request value."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def whole_number(value, field: str, low: int, high: int) -> int:
    """``value`` (a number or a numeric string) as an int in ``low..high``.

    Raises:
        ValueError: naming ``field`` and the range, for NaN, inf, text, lists, fractions or values
        outside the range.
    """
    rule = f"{field} must be a whole number {low}..{high}"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{rule}, got {type(value).__name__} {_shown(value)}.")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise ValueError(f"{rule}, got {_shown(value)}.") from None
    if not math.isfinite(number) or number != int(number) or not low <= number <= high:
        raise ValueError(f"{rule}, got {_shown(value)}.")
    return int(number)


def one_of(value, field: str, allowed) -> str:
    """``value`` if it is one of ``allowed``.

    Raises:
        ValueError: naming ``field`` and the allowed values.
    """
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(allowed)}, got {_shown(value)}.")
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
                         f"{_shown(value)}.")
    unknown = [v for v in value if not isinstance(v, str) or v not in allowed]
    if unknown:
        raise ValueError(f"{field} must be chosen from {', '.join(allowed)}, got {_shown(unknown[0])}.")
    return [a for a in allowed if a in value]
