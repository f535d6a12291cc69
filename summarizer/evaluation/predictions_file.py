"""Summaries produced elsewhere, read from a CSV file and matched to DialogSum dialogues.

Used by ``python -m summarizer.evaluation --predictions FILE.csv`` and the Evaluate tab's upload:
the summaries are scored by :func:`summarizer.evaluation.score_summaries` (same table, intervals
and files as a normal evaluation) without loading a summarizer.

File layout (UTF-8 CSV with a header):

* a key column, ``id`` (a DialogSum id of the chosen split: ``test_0``; the hub CSV's per-reference
  ids ``test_0_1`` also match ``test_0``) or, without ``id``, ``dialogue`` (the dialogue text,
  matched after :func:`summarizer.text.clean_text`);
* one column per model holding its summary; the column name is the model name. A column named
  ``<model>_summary`` counts as model ``<model>``, so the app's own ``predictions.csv`` can be
  scored again; its score columns (``topic``, ``human_summary_<k>``, ``<model>_rouge1``,
  ``_p_hate``, ``_reward``, ``_reward_change``) are ignored.

A dialogue that appears on several rows (the hub CSV repeats each test dialogue once per
reference) must have the same summaries on each; it is scored once.

Refused, each with a message naming the column or row and what to do (nothing is scored silently
as 0 or under a made-up name): a header that names one column twice (pandas would have renamed
the second ``base.1``); a row with fewer or more fields than the header (an unquoted comma in a
summary); an empty summary cell (it would score 0); a column that holds the human reference
summaries (named ``human``/``reference``/``gold``..., or with such a word among the parts of its
name, as the labs' ``human_baseline_summaries``; or equal to a reference of the split on at least
half of the dialogues, and on two or more: it would score as a model with ROUGE 100).

The app caps an upload at its Evaluate tab's size (dialogues x models, :func:`match_rows`'
``max_summaries``), as it holds the shared model queue; the CLI scores any size.
"""
from __future__ import annotations

import csv
import io
import re
from typing import Sequence

from summarizer.text import clean_text

MAX_FILE_BYTES = 20_000_000  # 500 test dialogues x 8 models of ~100-word summaries is ~3 MB
MAX_MODELS = 8
MAX_SUMMARY_CHARS = 20_000
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_IGNORED = re.compile(r"^(topic|human_summary_\d+|references?|summary\d*|.+_(rouge1|p_hate|reward|reward_change))$")
_PER_REFERENCE_ID = re.compile(r"^(?P<base>.+)_\d+$")
# Model names that mean the human references, not a model (matched case-insensitively).
_REFERENCE_NAME = re.compile(r"^(human|humans|reference|references|ref|refs|gold|target|label|ground_truth)"
                             r"([_.-]?(summary|summaries))?([_.-]?\d+)?$", re.IGNORECASE)
# A word of a column's name (split at '_', '.', '-') that says it holds human summaries, whatever the
# other words: the course labs' own column is human_baseline_summaries.
_REFERENCE_WORDS = frozenset({"human", "humans", "reference", "references", "gold", "groundtruth"})
# A model column equal to a reference on at least this share of its dialogues, and on at least
# REFERENCE_COPY_MIN of them, holds the references (one equal summary alone proves nothing).
REFERENCE_COPY_SHARE = 0.5
REFERENCE_COPY_MIN = 2


class PredictionsFileError(ValueError):
    """The file cannot be scored; the message names the column, row or value and what to do."""


def _few(items: Sequence[str], k: int = 3) -> str:
    shown = ", ".join(repr(x[:60]) for x in items[:k])
    return shown + (f" and {len(items) - k} more" if len(items) > k else "")


def read_table(data: bytes | str):
    """The CSV as a pandas DataFrame of strings, one column per header name.

    Read with the :mod:`csv` module, not ``pandas.read_csv``, because pandas hides three mistakes:
    it renames a repeated header ``base.1``, fills a short row with "", and turns a row with one
    extra field into an index (its id then reads as the next field).

    Raises:
        PredictionsFileError: too large, not UTF-8, not a CSV with a header and rows, a header
            naming a column twice, or a row whose field count differs from the header's.
    """
    import pandas as pd

    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_FILE_BYTES:
        raise PredictionsFileError(f"The predictions file has {len(data):,} bytes, over the limit of "
                                   f"{MAX_FILE_BYTES:,}: score fewer dialogues or models per file.")
    try:
        text = data.decode("utf-8-sig")
        csv.field_size_limit(MAX_FILE_BYTES)
        records = [r for r in csv.reader(io.StringIO(text, newline="")) if any(f.strip() for f in r)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise PredictionsFileError(f"The predictions file is not a readable UTF-8 CSV with a header "
                                   f"row ({err}).") from err
    if len(records) < 2:
        raise PredictionsFileError("The predictions file has no rows: it needs a header and one row per dialogue.")
    header = [h.strip() for h in records[0]]
    _check_header(header)
    _check_field_counts(records, len(header))
    return pd.DataFrame(records[1:], columns=header, dtype=str)


def _check_header(header: Sequence[str]) -> None:
    """Refuse a header with an unnamed or a repeated column (1-based column numbers)."""
    seen: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        if not name:
            raise PredictionsFileError(f"Header: column {i} has no name; name it (the column name is the "
                                       "model name) or delete the column.")
        if name in seen:
            raise PredictionsFileError(f"Header: column {name[:60]!r} appears twice (columns {seen[name]} and {i}); "
                                       "give each model's column its own name, or delete the copy.")
        seen[name] = i


def _check_field_counts(records: Sequence[Sequence[str]], width: int) -> None:
    """Refuse rows with fewer or more fields than the header (line numbers count the header as 1)."""
    bad = [(i + 1, len(r)) for i, r in enumerate(records) if i and len(r) != width]
    if bad:
        shown = ", ".join(f"row {line} has {n}" for line, n in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise PredictionsFileError(
            f"The header has {width} fields but {shown}: a missing field, or a comma inside a summary "
            "that is not quoted. Give every row one field per header column; put a summary that "
            'contains commas in double quotes ("...").')


def model_columns(columns: Sequence[str], key: str) -> dict[str, str]:
    """``{model name: column}`` for the summary columns of a file keyed by ``key``.

    Raises:
        PredictionsFileError: no summary column, too many, a name that is not a plain identifier,
            or two columns naming one model.
    """
    out: dict[str, str] = {}
    for col in columns:
        if col in ("id", "dialogue") or _IGNORED.match(col):
            continue
        name = col[: -len("_summary")] if col.endswith("_summary") else col
        if _is_reference_name(name):
            raise PredictionsFileError(
                f"Column {col[:60]!r} looks like the human reference summaries, not a model's: it would be "
                "scored as a model (ROUGE near 100). Delete it, or name it human_summary_1 (ignored); if it "
                "really is a model, rename it.")
        if not _MODEL_NAME.match(name):
            raise PredictionsFileError(
                f"Column {col[:60]!r}: a model column's name must be 1-40 letters, digits, '_', '.' "
                "or '-' (starting with a letter or digit); rename it.")
        if name in out:
            raise PredictionsFileError(f"Columns {out[name]!r} and {col!r} both name model {name!r}; keep one.")
        out[name] = col
    if not out:
        raise PredictionsFileError(f"The predictions file has a {key!r} column but no summary column: add "
                                   "one column per model holding its summaries (the column name is the model name).")
    if len(out) > MAX_MODELS:
        raise PredictionsFileError(f"The predictions file has {len(out)} model columns; at most {MAX_MODELS} "
                                   "are scored at once.")
    return out


def _is_reference_name(name: str) -> bool:
    """True for a column name that says it holds the human references (see :data:`_REFERENCE_NAME`
    and :data:`_REFERENCE_WORDS`)."""
    words = re.split(r"[_.-]+", name.casefold())
    return bool(_REFERENCE_NAME.match(name)) or any(w in _REFERENCE_WORDS for w in words)


def match_rows(frame, rows: Sequence[dict], split: str,
               max_summaries: int | None = None) -> tuple[list[dict], dict[str, list[str]]]:
    """Match the file's rows to dialogues of ``rows`` (one split) by id, else by dialogue text.

    ``max_summaries`` caps matched dialogues x models (None: no cap). The app passes its Evaluate
    tab's own cap, so an upload holds the shared model queue no longer than an Evaluate run; the
    CLI passes none: it runs in its own process and is the tool for a whole split.

    Returns:
        (matched dialogues in file order, ``{model: [summary per matched dialogue]}``).

    Raises:
        PredictionsFileError: no ``id``/``dialogue`` column, unknown ids or dialogues (a few are
            listed), a repeated dialogue with different summaries, a summary too long, or more
            than ``max_summaries`` summaries to score.
    """
    key = "id" if "id" in frame.columns else "dialogue" if "dialogue" in frame.columns else None
    if key is None:
        raise PredictionsFileError(f"The predictions file needs an 'id' or a 'dialogue' column; its columns "
                                   f"are {_few(list(frame.columns), 8)}.")
    columns = model_columns(list(frame.columns), key)
    if key == "id":
        index = {r["id"]: r for r in rows}
        lookup = lambda v: index.get(v.strip()) or _per_reference(index, v.strip())
    else:
        index = {clean_text(r["dialogue"]): r for r in rows}
        lookup = lambda v: index.get(clean_text(v))
    found: dict[str, dict] = {}
    summaries: dict[str, dict[str, str]] = {}
    unknown = []
    for i, record in enumerate(frame.to_dict("records")):
        row = lookup(record[key])
        if row is None:
            unknown.append(record[key])
            continue
        these = {m: clean_text(record[c]) for m, c in columns.items()}
        for m, text in these.items():
            if len(text) > MAX_SUMMARY_CHARS:
                raise PredictionsFileError(f"Column {columns[m]!r}, row {i + 2}: the summary has {len(text):,} "
                                           f"characters, over the limit of {MAX_SUMMARY_CHARS:,}.")
        if row["id"] in found and summaries[row["id"]] != these:
            raise PredictionsFileError(f"Dialogue {row['id']} appears on several rows with different summaries "
                                       f"(row {i + 2}); give one summary per model per dialogue.")
        found[row["id"]], summaries[row["id"]] = row, these
    if unknown:
        what = "ids" if key == "id" else "dialogues"
        raise PredictionsFileError(
            f"{len(unknown)} {what} in the file's {key!r} column are not in the {split} split: "
            f"{_few(unknown)}. Choose the split they come from, or remove those rows.")
    matched = list(found.values())
    out = {m: [summaries[r["id"]][m] for r in matched] for m in columns}
    _check_empty(out, columns, matched)
    _check_not_references(out, columns, matched)
    _check_size(len(matched), len(columns), max_summaries)
    return matched, out


def _check_empty(summaries: dict[str, list[str]], columns: dict[str, str], matched: Sequence[dict]) -> None:
    """Refuse empty summary cells: scored, they would count as ROUGE 0 for that model."""
    for m, texts in summaries.items():
        empty = [r["id"] for r, t in zip(matched, texts) if not t]
        if empty:
            raise PredictionsFileError(
                f"Column {columns[m]!r} has no summary for {len(empty)} of {len(matched)} dialogues "
                f"({_few(empty)}); an empty cell would be scored as ROUGE 0. Fill those cells, or "
                "remove those dialogues' rows (every model is scored on the same dialogues).")


def _check_not_references(summaries: dict[str, list[str]], columns: dict[str, str],
                          matched: Sequence[dict]) -> None:
    """Refuse a column equal (ignoring case) to one of the dialogue's references on at least
    :data:`REFERENCE_COPY_SHARE` of the dialogues and at least :data:`REFERENCE_COPY_MIN` of them:
    it holds the references (ROUGE 100), not a model."""
    for m, texts in summaries.items():
        same = sum(any(clean_text(ref).casefold() == t.casefold() for ref in r.get("references") or ())
                   for r, t in zip(matched, texts))
        if same >= max(REFERENCE_COPY_MIN, REFERENCE_COPY_SHARE * len(matched)):
            raise PredictionsFileError(
                f"Column {columns[m]!r} equals a human reference summary of the split on {same} of "
                f"{len(matched)} dialogues: it holds the references, not a model's summaries, and would "
                "score ROUGE near 100. Delete it, or name it human_summary_1 (ignored).")


def _check_size(n_dialogues: int, n_models: int, max_summaries: int | None) -> None:
    """Refuse more than ``max_summaries`` summaries before any is scored."""
    if max_summaries is not None and n_dialogues * n_models > max_summaries:
        raise PredictionsFileError(
            f"The file matches {n_dialogues:,} dialogues x {n_models} model columns = "
            f"{n_dialogues * n_models:,} summaries; the app scores at most {max_summaries:,} per file, "
            "as many as an Evaluate run. Split the file, keep fewer model columns, or score it with "
            "python -m summarizer.evaluation --predictions FILE.csv (no such limit).")


def _per_reference(index: dict, rid: str):
    """The hub CSV's ``test_0_1`` (one row per reference) names dialogue ``test_0``."""
    m = _PER_REFERENCE_ID.match(rid)
    return index.get(m.group("base")) if m else None


def load_predictions(data: bytes | str, rows: Sequence[dict], split: str,
                     max_summaries: int | None = None) -> tuple[list[dict], dict[str, list[str]]]:
    """:func:`read_table` then :func:`match_rows`: the dialogues and each model's summaries.

    Raises:
        PredictionsFileError: as :func:`read_table` and :func:`match_rows`.
    """
    return match_rows(read_table(data), rows, split, max_summaries)
