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

import math
import re

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


DIALOGUE_LIMIT_WHY = "paste a shorter one (prompts are cut to 512 tokens anyway)."


def clean_dialogue(text: str | bytes | None, max_chars: int = MAX_DIALOGUE_CHARS,
                   what: str = "dialogue", why_limit: str = DIALOGUE_LIMIT_WHY) -> str:
    """The cleaned ``text`` (see the module docstring).

    ``what`` names the field and ``why_limit`` ends the too-long message (what to do).

    Raises:
        ValueError: the cleaned text is empty, or longer than ``max_chars`` characters.
    """
    cleaned = clean_text(text)
    if not cleaned:
        raise ValueError(f"The {what} is empty: paste a conversation or pick one from DialogSum.")
    if len(cleaned) > max_chars:
        raise ValueError(f"The {what} has {len(cleaned):,} characters, over the limit of "
                         f"{max_chars:,}; {why_limit}")
    return cleaned


def parse_indices(text: str | None, n_rows: int, what: str = "Example dialogues") -> list[int]:
    """Row numbers from a comma- or space-separated list such as ``"40, 80"``, in order.

    Linear in the length of ``text``. ``what`` names the field in messages.

    Raises:
        ValueError: a part is not a whole number, or is outside ``0..n_rows-1``.
    """
    if text is not None and not isinstance(text, (str, bytes)):
        raise ValueError(f"{what} must be text listing train numbers such as \"40, 80\", "
                         f"got a {type(text).__name__}.")
    parts = [p for p in re.split(r"[,\s]+", clean_text(text)) if p]
    out = []
    for part in parts:
        # At most 9 digits: a row number never needs more, and int() of a huge digit string is
        # slow (and refused by Python above 4,300 digits).
        if not re.fullmatch(r"\d{1,9}", part):
            raise ValueError(f"{what} must be whole numbers 0..{n_rows - 1} separated by commas, "
                             f"got {excerpt(part)}.")
        index = int(part)
        if index >= n_rows:
            raise ValueError(f"{what}: number {index} is out of range: the split has "
                             f"{n_rows} dialogues (0..{n_rows - 1}).")
        out.append(index)
    return out


def excerpt(value, limit: int = 40) -> str:
    """``repr`` of ``value`` shortened to about ``limit`` characters, for error messages."""
    if isinstance(value, int) and value.bit_length() > 64:  # repr of a huge int is slow or refused
        return f"a {value.bit_length()}-bit integer"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


# Plain decimal text ("12", " 3 ", "-0.5", "7.0"): what a form, a query string or a JSON file
# holding numbers as text sends. ASCII digits only (``\d`` would also take "٣"), at most 30 before
# and after the point (int() of a long digit string is slow); no "_" separators, hex, exponents,
# "inf" or "nan", which int()/float() would take but nobody types as a count or a setting.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})")


def as_number(value, whole: bool) -> int | float:
    """The number ``value`` stands for: the one rule for numbers from requests and files.

    Accepts an int, a finite float, or plain decimal text (``"12"``, ``" 3 "``, ``"0.5"``); with
    ``whole``, floats must have no fractional part (``7.0`` and ``"7.0"`` give ``7``). Returns an
    int when ``whole``, else a float. Callers word the message (:func:`whole_number`,
    :func:`real_number`, ``GenerationSettings.from_dict``).

    Raises:
        ValueError: whose text says what was given ("the text '1_0'", "nan", "2.5", "a list ([3])"):
            bools, None, lists, other text ("1_0", "0x10", "1e3", "inf"), NaN, infinity, a
            fraction when ``whole``, an int too large for a float when not ``whole``.
    """
    number = value
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        text = value.strip()
        number = float(text) if "." in text else int(text)
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise ValueError(_kind(value))
    if isinstance(number, float):
        if not math.isfinite(number) or whole and not number.is_integer():
            raise ValueError(str(number))
        return int(number) if whole else number
    if not whole and abs(number) >= 2**53:  # no float holds it exactly
        raise ValueError(excerpt(number))
    return number if whole else float(number)


def whole_number(value, field: str, lo: int, hi: int) -> int:
    """``value`` as an int in ``lo..hi`` (see :func:`as_number` for what counts as a number);
    ``field`` names the setting in the message.

    Raises:
        ValueError: not a whole number (text other than plain decimals, list, bool, None, NaN,
            infinite, fractional) or out of range; the message names ``field`` and its range.
    """
    allowed = f"a whole number {lo}..{hi}"
    try:
        number = as_number(value, whole=True)
    except ValueError as err:
        raise ValueError(f"{field} must be {allowed}, got {err}.") from None
    if not lo <= number <= hi:
        raise ValueError(f"{field} must be {allowed}, got {excerpt(number)} (out of range).")
    return number


def real_number(value, field: str) -> float:
    """``value`` as a finite float (see :func:`as_number`); ``field`` names the setting in the message.

    Raises:
        ValueError: not a number (text other than plain decimals, list, bool, None), NaN,
            infinite, or an int too large for a float.
    """
    try:
        return as_number(value, whole=False)
    except ValueError as err:
        raise ValueError(f"{field} must be a finite number, got {err}.") from None


def _kind(value) -> str:
    """How a wrong-typed value is described in messages: text is quoted, others named by type."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"the text {excerpt(value)}"
    return f"a {type(value).__name__} ({excerpt(value)})"


def check_index(index, n_rows: int, split: str, field: str = "Dialogue number") -> int:
    """``index`` as a row number of a split with ``n_rows`` rows.

    Raises:
        ValueError: missing, not a whole number, or out of range; the message names ``field``.
    """
    if n_rows < 1:
        raise ValueError(f"The {split} split has no dialogues.")
    try:
        return whole_number(index, field, 0, n_rows - 1)
    except ValueError as err:
        raise ValueError(f"{err} The {split} split has {n_rows} dialogues.") from None


# Leading characters that make a spreadsheet evaluate a CSV cell (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula;
    other values unchanged."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value
