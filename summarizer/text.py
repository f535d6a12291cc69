"""Cleaning of user-typed text before it reaches a prompt or a classifier (no model needed).

Rules (also in the README, "Input rules"):

* bytes are decoded as UTF-8, undecodable bytes become U+FFFD; lone surrogates (which cannot be
  encoded as UTF-8) become U+FFFD too;
* line endings ``\\r\\n`` and ``\\r`` become ``\\n``;
* C0 control characters (U+0000..U+001F) other than ``\\n`` and ``\\t``, and DEL (U+007F), are
  removed: they are invisible, and tokenizers treat them inconsistently;
* leading and trailing whitespace is stripped;
* an empty result, or one longer than ``max_chars``, raises ``ValueError`` saying what to do.

HTML is kept as typed: the app shows user text in text boxes, never renders it.
"""
from __future__ import annotations

import re
from typing import Sequence

# A DialogSum dialogue has at most about 6,000 characters; 20,000 leaves room for pasted
# conversations while keeping prompt building (one tokenizer pass per cut) fast.
MAX_DIALOGUE_CHARS = 20_000
MAX_SCORED_CHARS = 20_000  # texts for the toxicity classifier (it reads at most 512 tokens)
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # lone surrogates: not encodable as UTF-8
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # C0 except \t (09) and \n (0a); DEL


def clean_text(text: str | bytes | None) -> str:
    """``text`` decoded, with normalised newlines and without control characters, stripped."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = _SURROGATE.sub("\ufffd", str(text))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).strip()


def clean_dialogue(text: str | bytes | None, max_chars: int = MAX_DIALOGUE_CHARS,
                   what: str = "dialogue") -> str:
    """The cleaned ``text`` (see the module docstring).

    Raises:
        ValueError: the cleaned text is empty, or longer than ``max_chars`` characters.
    """
    cleaned = clean_text(text)
    if not cleaned:
        raise ValueError(f"The {what} is empty: paste a conversation or pick one from DialogSum.")
    if len(cleaned) > max_chars:
        raise ValueError(f"The {what} has {len(cleaned):,} characters, over the limit of "
                         f"{max_chars:,}; paste a shorter one (prompts are cut to 512 tokens anyway).")
    return cleaned


def parse_indices(text: str | None, n_rows: int, what: str = "example") -> list[int]:
    """Row numbers from a comma- or space-separated list such as ``"40, 80"``.

    Raises:
        ValueError: a part is not a whole number, or is outside ``0..n_rows-1``.
    """
    parts = [p for p in re.split(r"[,\s]+", clean_text(text)) if p]
    out = []
    for part in parts:
        if not re.fullmatch(r"\d+", part):
            raise ValueError(f"{what.capitalize()} indices must be whole numbers separated by "
                             f"commas, got {part!r}.")
        index = int(part)
        if index >= n_rows:
            raise ValueError(f"{what.capitalize()} index {index} is out of range: the split has "
                             f"{n_rows} dialogues (0..{n_rows - 1}).")
        out.append(index)
    return out


def check_index(index: float | int | None, n_rows: int, split: str) -> int:
    """``index`` as a row number of a split with ``n_rows`` rows.

    Raises:
        ValueError: missing, not whole, or out of range.
    """
    if index is None or float(index) != int(float(index)):
        raise ValueError(f"Pick a whole dialogue number 0..{n_rows - 1} of the {split} split.")
    index = int(index)
    if not 0 <= index < n_rows:
        raise ValueError(f"Dialogue {index} is out of range: the {split} split has {n_rows} "
                         f"dialogues (0..{n_rows - 1}).")
    return index


def reference_index(dialogues: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, list[str]]:
    """Map each cleaned dialogue to its references, so a loaded dialogue finds its summaries."""
    return {clean_text(d): list(r) for d, r in zip(dialogues, references)}
