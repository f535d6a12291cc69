"""DialogSum loading from the hub or a local folder, with all references of a dialogue together.

Layouts understood (see ``../shared/data/dialogsum/SOURCE.md``):

* the hub id ``knkarthick/dialogsum`` (default) or any hub dataset with the same columns;
* a local folder with ``dialogsum_{train,validation,test}.csv`` (id, dialogue, summary, topic;
  the test split repeats each dialogue once per reference, ids ``test_<i>_<k>``);
* a local folder with the official JSONL ``dialogsum.{train,dev,test}.jsonl`` (test has
  ``summary1..3``), directly or in an ``official/`` subfolder.

Every split comes back as a ``datasets.Dataset`` with columns ``id`` (str), ``dialogue`` (str,
stripped), ``references`` (list[str], one or more human summaries) and ``topic`` (str).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import datasets

DEFAULT_DATASET = "knkarthick/dialogsum"
SPLITS = ("train", "validation", "test")
# Official file names use "dev" for the validation split.
_OFFICIAL_NAMES = {"train": "train", "validation": "dev", "test": "test"}
_MULTI_REF_ID = re.compile(r"^(?P<base>.+)_(?P<k>\d+)$")


@dataclass(frozen=True)
class LengthFilter:
    """Keep dialogues with ``min_chars < len(dialogue) <= max_chars`` (characters).

    The course labs keep ``200 < len <= 1000``; ``None`` on either side means unbounded.
    """

    min_chars: int | None = None
    max_chars: int | None = None

    def keep(self, dialogue: str) -> bool:
        n = len(dialogue)
        if self.min_chars is not None and n <= self.min_chars:
            return False
        return self.max_chars is None or n <= self.max_chars


def _local_files(folder: Path, split: str) -> tuple[str, list[Path]] | None:
    """Return (layout, files) for ``split`` in ``folder``, or None if no file is there."""
    csv = folder / f"dialogsum_{split}.csv"
    if csv.is_file():
        return "csv", [csv]
    name = _OFFICIAL_NAMES[split]
    for sub in (folder, folder / "official"):
        jsonl = sub / f"dialogsum.{name}.jsonl"
        if jsonl.is_file():
            return "json", [jsonl]
    return None


def _group_references(rows: datasets.Dataset) -> datasets.Dataset:
    """Merge rows of the same dialogue (hub test layout ``test_<i>_<k>``) into one row.

    Rows are merged when their dialogue text is identical *and* their ids share the
    ``<base>_<k>`` pattern, so train's two genuine duplicate dialogues stay separate.
    """
    out: dict[str, dict] = {}
    for row in rows:
        rid = row["id"]
        m = _MULTI_REF_ID.match(rid) if rid.count("_") >= 2 else None
        key = m.group("base") if m else rid
        if key in out and out[key]["dialogue"] == row["dialogue"]:
            out[key]["references"].append(row["summary"].strip())
            continue
        if key in out:  # same base id but a different dialogue: keep both, unmerged
            key = rid
        out[key] = {"id": key, "dialogue": row["dialogue"], "references": [row["summary"].strip()],
                    "topic": row.get("topic", "") or ""}
    return datasets.Dataset.from_list(list(out.values()))


def _normalise_official(rows: datasets.Dataset) -> datasets.Dataset:
    """Official JSONL rows (fname, summary or summary1..3) to the common columns."""
    def convert(row):
        refs = [row[k].strip() for k in ("summary", "summary1", "summary2", "summary3")
                if row.get(k)]
        topic = row.get("topic") or row.get("topic1") or ""
        return {"id": row["fname"], "dialogue": row["dialogue"], "references": refs, "topic": topic}
    return rows.map(convert, remove_columns=rows.column_names)


def load_split(source: str | os.PathLike = DEFAULT_DATASET, split: str = "test",
               length: LengthFilter | None = None, limit: int | None = None) -> datasets.Dataset:
    """Load one DialogSum split as rows of (id, dialogue, references, topic).

    Args:
        source: hub id (default ``knkarthick/dialogsum``) or a local folder in the CSV or
            official JSONL layout.
        split: ``train``, ``validation`` or ``test``.
        length: optional character-length filter on the dialogue.
        limit: keep at most this many dialogues (after filtering), in file order.

    Returns:
        ``datasets.Dataset`` with one row per *dialogue*; multi-reference test dialogues have
        all their references (3 for DialogSum test) in ``references``.

    Raises:
        ValueError: unknown split, or a local folder with no file for that split.
        FileNotFoundError: ``source`` looks like a path but does not exist.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    path = Path(source).expanduser()
    if path.is_dir():
        found = _local_files(path, split)
        if found is None:
            raise ValueError(
                f"No {split} file in {path}: expected dialogsum_{split}.csv or "
                f"dialogsum.{_OFFICIAL_NAMES[split]}.jsonl (also under official/).")
        layout, files = found
        raw = datasets.load_dataset(layout, data_files=[str(f) for f in files], split="train")
    elif path.exists():
        raise ValueError(f"Dataset {source} is a file; give a folder holding dialogsum_{split}.csv "
                         f"(or the official JSONL files), or the hub id {DEFAULT_DATASET}.")
    elif not is_hub_id(str(source)):
        raise FileNotFoundError(f"Dataset folder {source} does not exist (and it is not a hub id "
                                f"such as {DEFAULT_DATASET}).")
    else:
        raw = _load_hub(str(source), split)
    rows = _normalise_official(raw) if "fname" in raw.column_names else _group_references(raw)
    rows = rows.map(lambda r: {"dialogue": r["dialogue"].strip()})
    if length is not None:
        rows = rows.filter(lambda r: length.keep(r["dialogue"]))
    if limit is not None:
        rows = rows.select(range(min(limit, len(rows))))
    return rows


def is_hub_id(source: str) -> bool:
    """True when ``source`` is a valid hub repo id (``name`` or ``namespace/name``), checked by
    ``huggingface_hub.utils.validate_repo_id``; local-looking strings (``./x``, ``~/x``, ``/x``,
    ``a/b/c``) are not."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if source.startswith((".", "~", "/")) or source.count("/") > 1 or os.sep != "/" and os.sep in source:
        return False
    try:
        validate_repo_id(source)
    except HFValidationError:
        return False
    return True


def _load_hub(repo_id: str, split: str) -> datasets.Dataset:
    """``datasets.load_dataset(repo_id, split=split)`` (from the HF cache when it is there).

    Raises:
        ConnectionError: the dataset is neither cached nor downloadable; the message says which
            flag or variable gives a local copy instead.
    """
    try:
        return datasets.load_dataset(repo_id, split=split)
    except (ConnectionError, OSError, ValueError) as err:
        if isinstance(err, FileNotFoundError) or "offline" in str(err).lower() or \
                type(err).__name__ in ("ConnectionError", "DatasetNotFoundError", "LocalEntryNotFoundError"):
            raise ConnectionError(
                f"Could not load the DialogSum dataset {repo_id!r} ({split} split) from the Hugging "
                f"Face hub or its cache ({type(err).__name__}: {err}). Either connect to the internet "
                "once (it is then cached in $HF_HOME), or download the CSV files and give their "
                "folder with --dataset FOLDER or DIALOGSUM_DIR=FOLDER (dialogsum_train.csv, "
                "dialogsum_validation.csv, dialogsum_test.csv).") from err
        raise


def default_dataset() -> str:
    """The dataset a user gets by default: ``$DIALOGSUM_DIR`` if set, else the hub id
    ``knkarthick/dialogsum`` (app, training runs and the Evaluate CLI all use this)."""
    return os.environ.get("DIALOGSUM_DIR") or DEFAULT_DATASET


def default_local_dataset() -> Path | None:
    """For tests, benchmarks and scripts only: the DialogSum folder named by ``DIALOGSUM_DIR``,
    else ``../shared/data/dialogsum`` beside the project if present. The app never looks there."""
    env = os.environ.get("DIALOGSUM_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dialogsum")
    for c in candidates:
        if c.is_dir():
            return c
    return None
