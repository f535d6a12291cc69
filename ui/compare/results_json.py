"""The one check of a ``/compare`` JSON sent back to the app (the handout export, the Toxicity tab).

:func:`read_results` accepts only the shape ``/compare`` returns (:func:`ui.compare.compare_slots`),
given as the object or as its JSON text:

* ``slots``: at most one row per slot (so at most ``len(SLOTS)`` rows); a row is an object with
  ``slot`` (one of :data:`summarizer.inference.slots.SLOTS`, each at most once), ``filled`` (true/false,
  false when missing), ``summary`` (text), optionally ``label`` (text; the shown label is always
  the slot's own, so a hand-made JSON cannot put words in the model column) and ``reward``,
  ``p_hate``, ``rouge1``, ``rougeL`` (finite numbers or null);
* ``dialogue`` and ``prompt`` (text), ``prompt_notes`` and ``references`` (lists of text).

Every text is capped and cleaned (:func:`summarizer.text.clean_text`). Each refusal starts with
"Compare results", names the field (``slots[0].summary``) and says what to pass instead.
"""
from __future__ import annotations

import json
import math

from summarizer.inference.slot_config import SLOT_LABELS
from summarizer.inference.slot_config import SLOTS
from summarizer.text import MAX_DIALOGUE_CHARS, clean_text, excerpt

MAX_TEXT_CHARS = MAX_DIALOGUE_CHARS  # per text field; a prompt is at most 512 tokens anyway
MAX_LIST_ITEMS = 20  # references or prompt notes
NUMBER_FIELDS = ("reward", "p_hate", "rouge1", "rougeL")
WHAT_TO_DO = "pass the JSON that /compare returned (its last output)"
SHAPE = 'the /compare JSON: an object {"slots": [{"slot": …, "filled": true/false, "summary": text}, …], …}'


def _text(value, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"Compare results: {field} must be text, got {type(value).__name__}; {WHAT_TO_DO}.")
    if len(value) > MAX_TEXT_CHARS:
        raise ValueError(f"Compare results: {field} has {len(value):,} characters, over the limit of "
                         f"{MAX_TEXT_CHARS:,}; {WHAT_TO_DO}.")
    return clean_text(value)


def _number(value, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"Compare results: {field} must be a finite number or null, got {excerpt(value)}; "
                         f"{WHAT_TO_DO}.")
    return float(value)


def _texts(value, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_LIST_ITEMS:
        raise ValueError(f"Compare results: {field} must be a list of at most {MAX_LIST_ITEMS} texts; {WHAT_TO_DO}.")
    return [_text(v, f"{field}[{k}]") for k, v in enumerate(value)]


def _row(row, k: int, seen: set) -> dict:
    """Slot row ``k``, cleaned; ``seen`` collects the slots met so far (each may come once)."""
    if not isinstance(row, dict):
        raise ValueError(f"Compare results: slots[{k}] must be an object with \"slot\", \"filled\" and "
                         f"\"summary\", got {type(row).__name__} {excerpt(row)}; {WHAT_TO_DO}.")
    slot = row.get("slot")
    if not isinstance(slot, str) or slot not in SLOTS:
        raise ValueError(f"Compare results: slots[{k}].slot must be one of {', '.join(SLOTS)}, got "
                         f"{excerpt(slot)}; {WHAT_TO_DO}.")
    if slot in seen:
        raise ValueError(f"Compare results: slots[{k}].slot {slot!r} appears twice (/compare gives one row "
                         f"per slot); {WHAT_TO_DO}.")
    seen.add(slot)
    filled = row.get("filled", False)
    if not isinstance(filled, bool):
        raise ValueError(f"Compare results: slots[{k}].filled must be true or false, got {excerpt(filled)}; "
                         f"{WHAT_TO_DO}.")
    _text(row.get("label"), f"slots[{k}].label")  # checked, not used: the label is the slot's own
    clean = {"slot": slot, "label": SLOT_LABELS[slot], "filled": filled,
             "summary": _text(row.get("summary"), f"slots[{k}].summary")}
    clean.update({f: _number(row.get(f), f"slots[{k}].{f}") for f in NUMBER_FIELDS})
    return clean


def _parsed(results):
    """``results`` as an object: JSON text is parsed, blank text is ``None``."""
    if not isinstance(results, str):
        return results
    if not results.strip():
        return None
    try:
        return json.loads(results)
    except (ValueError, RecursionError) as err:  # RecursionError: "[[[[…" nested too deep
        raise ValueError(f"Compare results must be {SHAPE}; the text given is not JSON "
                         f"({str(err)[:80]}); {WHAT_TO_DO}.") from None


def read_results(results) -> dict | None:
    """A cleaned copy of a ``/compare`` JSON (object or JSON text), or ``None`` when it holds no
    results yet (``None``, blank text, ``{}``, no or empty ``slots``).

    Returns:
        ``{"dialogue", "prompt", "prompt_notes", "references", "slots"}``; each slot row has
        ``slot``, ``label`` (the slot's own), ``filled``, ``summary`` and the four scores (float
        or ``None``).

    Raises:
        ValueError: not JSON, not an object, or a field missing, of the wrong type, too long, not
            finite, a slot unknown or repeated; the message starts "Compare results" and names
            the field.
    """
    results = _parsed(results)
    if results is None:
        return None
    if not isinstance(results, dict):
        raise ValueError(f"Compare results must be {SHAPE}, got a {type(results).__name__}; {WHAT_TO_DO}.")
    slots = results.get("slots")
    if slots is None or slots == []:
        return None
    if not isinstance(slots, list):
        raise ValueError(f"Compare results: slots must be a list of at most {len(SLOTS)} rows (one per "
                         f"slot), got {excerpt(slots)}; {WHAT_TO_DO}.")
    if len(slots) > len(SLOTS):
        raise ValueError(f"Compare results: slots must hold at most {len(SLOTS)} rows (one per slot), "
                         f"got {len(slots)}; {WHAT_TO_DO}.")
    seen: set = set()
    rows = [_row(row, k, seen) for k, row in enumerate(slots)]
    return {"dialogue": _text(results.get("dialogue"), "dialogue"),
            "prompt": _text(results.get("prompt"), "prompt"),
            "prompt_notes": _texts(results.get("prompt_notes"), "prompt_notes"),
            "references": _texts(results.get("references"), "references"), "slots": rows}
