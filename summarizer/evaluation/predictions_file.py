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

The app caps an upload at its Evaluate tab's size (dialogues x models, :func:`match_rows`'
``max_summaries``), as it holds the shared model queue; the CLI scores any size.
"""
from __future__ import annotations

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


class PredictionsFileError(ValueError):
    """The file cannot be scored; the message names the column, row or value and what to do."""


def _few(items: Sequence[str], k: int = 3) -> str:
    shown = ", ".join(repr(x[:60]) for x in items[:k])
    return shown + (f" and {len(items) - k} more" if len(items) > k else "")


def read_table(data: bytes | str):
    """The CSV as a pandas DataFrame of strings (empty cells are "").

    Raises:
        PredictionsFileError: too large, not UTF-8, or not a CSV with a header and rows.
    """
    import pandas as pd

    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_FILE_BYTES:
        raise PredictionsFileError(f"The predictions file has {len(data):,} bytes, over the limit of "
                                   f"{MAX_FILE_BYTES:,}: score fewer dialogues or models per file.")
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, ValueError, pd.errors.ParserError) as err:
        raise PredictionsFileError(f"The predictions file is not a readable UTF-8 CSV with a header "
                                   f"row ({err}).") from err
    if frame.empty:
        raise PredictionsFileError("The predictions file has no rows: it needs a header and one row per dialogue.")
    return frame


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
    _check_size(len(matched), len(columns), max_summaries)
    return matched, {m: [summaries[r["id"]][m] for r in matched] for m in columns}


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
