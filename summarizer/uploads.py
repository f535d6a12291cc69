"""A teacher's own dialogues: a CSV or JSONL file read as untrusted input into a split of its own.

The file holds one dialogue per row (CSV) or per line (JSONL, one JSON object each):

* ``dialogue`` (required): the conversation, e.g. ``#Person1#: Hi.\\n#Person2#: Hello.``;
* ``id`` (optional, unique): defaults to ``uploaded_<row>``;
* references (optional): ``summary``, or ``summary1``, ``summary2``, ... (DialogSum's test layout),
  or in JSONL a ``references`` list of strings.

Checks, each refused by name (:class:`UploadError`): at most :data:`MAX_UPLOAD_BYTES` bytes and
:data:`MAX_UPLOAD_DIALOGUES` dialogues; UTF-8 text (a byte-order mark is allowed); a ``dialogue``
column (the message lists the columns found), each column once (counted in one pass: a header of
100,000 repeated names is refused in milliseconds); a JSONL line nested too deeply to read; every
dialogue cleaned by the app's one rule (:func:`summarizer.text.clean_dialogue`: not empty, at most
20,000 characters); ids unique. A refusal names the file line its record starts on (a quoted CSV
cell may hold line breaks, and blank lines are skipped, so records and lines differ).
Cells are kept as text: a cell such as ``=HYPERLINK(...)`` is a string here, shown as text, and
written to CSV exports with a leading ``'`` (:func:`summarizer.text.spreadsheet_safe`).

The result has DialogSum's columns (``id``, ``dialogue``, ``references``, ``topic``), so it is
usable wherever a split is: the split is named :data:`UPLOADED`.
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter

import datasets

from summarizer.text import clean_dialogue, clean_text

UPLOADED = "uploaded"  # the split name of a teacher's own dialogues
MAX_UPLOAD_BYTES = 5_000_000  # about 1,000 DialogSum dialogues with their summaries
MAX_UPLOAD_DIALOGUES = 2_000
MAX_REFERENCE_CHARS = 5_000
_NUMBERED = re.compile(r"^summary(\d+)$")


class UploadError(ValueError):
    """The uploaded file cannot be used; the message names the file, row or column and what to do."""


def read_dialogues(data: bytes, filename: str) -> datasets.Dataset:
    """The dialogues of an uploaded CSV or JSONL file, as a DialogSum-like split.

    Args:
        data: the file's bytes.
        filename: its name; ``.csv`` is read as CSV, ``.jsonl``/``.json`` as JSON lines.

    Returns:
        A ``datasets.Dataset`` with ``id``, ``dialogue``, ``references`` (list of str) and ``topic``.

    Raises:
        UploadError: too big, not UTF-8, not CSV/JSONL, no ``dialogue`` column, a bad or empty
            dialogue (naming the row), a repeated id, or too many dialogues.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"Dialogues file: {len(data):,} bytes, over the limit of {MAX_UPLOAD_BYTES:,}; "
                          f"split it or keep at most {MAX_UPLOAD_DIALOGUES:,} dialogues.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UploadError(f"Dialogues file: not UTF-8 text (byte {err.start}); save it as UTF-8 "
                          f"(in Excel: CSV UTF-8).") from None
    name = str(filename).lower()
    if name.endswith(".csv"):
        records = _csv_records(text)
    elif name.endswith((".jsonl", ".json")):
        records = _jsonl_records(text)
    else:
        raise UploadError(f"Dialogues file {filename!r}: give a .csv or .jsonl file.")
    if not records:
        raise UploadError("Dialogues file: no dialogues in it; give one row (CSV) or line (JSONL) per dialogue.")
    if len(records) > MAX_UPLOAD_DIALOGUES:
        raise UploadError(f"Dialogues file: {len(records):,} dialogues, over the limit of {MAX_UPLOAD_DIALOGUES:,}.")
    rows = [_row(record, k, line) for k, (line, record) in enumerate(records, 1)]
    _check_unique([r["id"] for r in rows])
    return datasets.Dataset.from_list(rows)


def _csv_records(text: str) -> list[tuple[int, dict]]:
    """(file line the record starts on, record) per non-blank CSV record after the header."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header:
            return []
        header = [h.strip() for h in header]
        _check_columns(header)
        records = []
        start = reader.line_num + 1  # csv counts physical lines read: the next record starts here
        for cells in reader:
            if any(c.strip() for c in cells):
                if len(cells) != len(header):
                    raise UploadError(f"Dialogues file, line {start}: {len(cells)} fields, the header has "
                                      f"{len(header)}; quote cells that hold commas or line breaks.")
                records.append((start, dict(zip(header, cells))))
            start = reader.line_num + 1
    except csv.Error as err:
        raise UploadError(f"Dialogues file: not a readable CSV ({err}).") from None
    return records


def _jsonl_records(text: str) -> list[tuple[int, dict]]:
    """(file line, record) per non-blank JSONL line. Lines end at ``\n`` only (``\r\n`` too):
    ``str.splitlines`` would also split at characters JSON strings may hold raw (U+2028)."""
    records = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UploadError(f"Dialogues file, line {number}: not JSON ({err.msg}); give one JSON object "
                              f"per line.") from None
        except RecursionError:  # json's C decoder recurses once per nesting level
            raise UploadError(f"Dialogues file, line {number}: JSON nested too deeply to read "
                              f"(RecursionError); give one flat JSON object per line.") from None
        if not isinstance(record, dict):
            raise UploadError(f"Dialogues file, line {number}: a JSON object is needed, got {type(record).__name__}.")
        if not records:
            _check_columns(list(record))
        records.append((number, record))
    return records


def _check_columns(columns: list[str]) -> None:
    counts = Counter(columns)  # one pass: list.count per column was quadratic in the header's length
    repeated = sorted(c for c, n in counts.items() if n > 1)
    if repeated:
        shown = ", ".join(repr(c[:60]) for c in repeated[:5]) + (f" and {len(repeated) - 5} more" if len(repeated) > 5 else "")
        times = "twice" if max(counts.values()) == 2 else "more than once"
        raise UploadError(f"Dialogues file: the column {shown} appears {times}; give each column once.")
    if "dialogue" not in columns:
        shown = ", ".join(repr(c) for c in columns[:10]) or "none"
        raise UploadError(f"Dialogues file: no 'dialogue' column (columns: {shown}); name the column that "
                          f"holds the conversations 'dialogue' (optional: 'id', 'summary' or 'summary1'..).")


def _row(record: dict, k: int, line: int) -> dict:
    where = f"Dialogues file, line {line} (dialogue {k})"
    raw = record.get("dialogue")
    if not isinstance(raw, str):
        raise UploadError(f"{where}: 'dialogue' must be text, got {type(raw).__name__}.")
    try:
        dialogue = clean_dialogue(raw)
    except ValueError as err:
        raise UploadError(f"{where}: {err}") from None
    ident = clean_text(str(record.get("id") or "")) or f"{UPLOADED}_{k}"
    if len(ident) > 100:
        raise UploadError(f"{where}: its id has {len(ident)} characters, at most 100.")
    return {"id": ident, "dialogue": dialogue, "references": _references(record, where), "topic": UPLOADED}


def _references(record: dict, where: str) -> list[str]:
    if isinstance(record.get("references"), list):
        values = record["references"]
    else:
        numbered = sorted((int(m.group(1)), key) for key in record if (m := _NUMBERED.match(key)))
        values = [record.get("summary")] + [record[key] for _, key in numbered]
    refs = []
    for value in values:
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if not isinstance(value, str):
            raise UploadError(f"{where}: a reference summary must be text, got {type(value).__name__}.")
        if len(value) > MAX_REFERENCE_CHARS:
            raise UploadError(f"{where}: a reference summary has {len(value):,} characters, at most "
                              f"{MAX_REFERENCE_CHARS:,}.")
        refs.append(clean_text(value))
    return refs


def _check_unique(ids: list[str]) -> None:
    seen: set[str] = set()
    for ident in ids:
        if ident in seen:
            raise UploadError(f"Dialogues file: the id {ident!r} appears twice; give each dialogue its own id "
                              f"(or leave the id column out).")
        seen.add(ident)
