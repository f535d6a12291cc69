"""Preference pairs (prompt, chosen, rejected) from the Arena's votes, for DPO (``training/dpo.py``).

    from summarizer.arena.preferences import load_preferences
    found = load_preferences("runs/arena.sqlite3", class_session="current")
    found.require()            # PreferenceError below MIN_PAIRS pairs
    export_preferences(found.pairs, "prefs.jsonl")   # datasets.load_dataset("json", data_files=...)

Three sources, told apart by their content (not their name):

* the Arena store (``<runs>/arena.sqlite3``, :class:`summarizer.arena.store.ArenaStore`);
* its votes export CSV (:data:`summarizer.arena.store.EXPORT_COLUMNS`, with ``prompt``,
  ``summary_a`` and ``summary_b``);
* a plain ``prompt,chosen,rejected`` CSV or JSONL file, the format preference datasets use (for
  example trl's DPO datasets); other columns are ignored.

Each A/B vote becomes one pair whose prompt is the exact text both models were given (recorded
when the pair was served). Ties, "both bad", pairs served before prompts were recorded and pairs
whose two summaries are the same text carry no preference and are left out, each counted.
"""
from __future__ import annotations

import csv
import json
import sqlite3
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from summarizer.text import FORMULA_START

MIN_PAIRS = 8  # fewer than this is a lesson in noise, not in preferences: refused by name
MAX_FILE_BYTES = 50_000_000  # a class's votes are a few MB at most
MAX_ROWS = 200_000
MAX_TEXT_CHARS = 20_000  # a 512-token prompt is about 2,500 characters
SQLITE_MAGIC = b"SQLite format 3\x00"
PLAIN_COLUMNS = ("prompt", "chosen", "rejected")
SESSION_CHOICES = ("current", "all")
LEFT_OUT_REASONS = {"tie": "ties", "both bad": "'both bad' votes",
                    "no prompt": "pairs served before prompts were recorded",
                    "same text": "pairs whose two summaries are the same text"}


class PreferenceError(ValueError):
    """Preference data that cannot be used; the message names the file or field and what to do."""


@dataclass(frozen=True)
class PreferencePair:
    """One preference: ``chosen`` was preferred to ``rejected`` as an answer to ``prompt``.

    ``chosen_model``/``rejected_model`` are the Arena slots that wrote them ('' for a plain file).
    """

    prompt: str
    chosen: str
    rejected: str
    pair_id: str = ""
    chosen_model: str = ""
    rejected_model: str = ""
    class_session: str = ""


@dataclass
class PreferenceSet:
    """The pairs found in ``source`` and the votes left out, by reason (:data:`LEFT_OUT_REASONS`)."""

    pairs: list[PreferencePair]
    source: str
    class_session: str = "all"
    left_out: Counter = field(default_factory=Counter)

    def describe(self) -> str:
        """One line for people: how many pairs, from where, and what was left out."""
        where = "all class sessions" if self.class_session == "all" else f"class session {self.class_session}"
        text = f"{len(self.pairs)} preference pair(s) from {self.source} ({where})"
        skipped = [f"{n} {LEFT_OUT_REASONS.get(k, k)}" for k, n in self.left_out.items() if n]
        return text + (f"; left out: {', '.join(skipped)}." if skipped else ".")

    def require(self, min_pairs: int = MIN_PAIRS) -> "PreferenceSet":
        """``self`` when it has at least ``min_pairs`` pairs.

        Raises:
            PreferenceError: too few pairs; the message gives the count and what to do.
        """
        if len(self.pairs) < min_pairs:
            raise PreferenceError(
                f"Too few preference pairs to train on: {self.describe()} DPO needs at least "
                f"{min_pairs}: collect more A/B votes in the Arena (ties and 'both bad' do not "
                "count), or choose class_session 'all'.")
        return self


def pairs_from_votes(votes, class_session: str = "all", source: str = "votes") -> PreferenceSet:
    """Preference pairs from vote records (dicts with ``vote``, ``prompt``, ``summary_a``,
    ``summary_b``, ``model_a``, ``model_b``, ``pair_id``, ``class_session``), in their order.

    An ``A`` vote makes ``summary_a`` the chosen answer, ``B`` the other way round; the rest are
    counted in ``left_out``.
    """
    found = PreferenceSet([], source, class_session)
    for v in votes:
        vote = v.get("vote")
        if vote not in ("A", "B"):
            found.left_out["both bad" if vote == "both bad" else "tie"] += 1
            continue
        if not (v.get("prompt") or "").strip():
            found.left_out["no prompt"] += 1
            continue
        if v["summary_a"] == v["summary_b"]:
            found.left_out["same text"] += 1
            continue
        win, lose = ("a", "b") if vote == "A" else ("b", "a")
        found.pairs.append(PreferencePair(v["prompt"], v[f"summary_{win}"], v[f"summary_{lose}"],
                                          str(v.get("pair_id") or ""), v.get(f"model_{win}") or "",
                                          v.get(f"model_{lose}") or "", str(v.get("class_session") or "")))
    return found


def _chosen_session(votes: list[dict], wanted: str, current: str | None, source: str) -> str:
    """The class session id that ``wanted`` names: ``all``, ``current`` (``current``), or an id
    or name found among ``votes``.

    Raises:
        PreferenceError: no session of that id or name (the message lists those found).
    """
    wanted = (wanted or "current").strip()
    if wanted == "all":
        return "all"
    if wanted == "current":
        if current is None:
            raise PreferenceError(f"{source} holds no votes, so it has no current class session.")
        return current
    for v in votes:
        if wanted in (v.get("class_session"), v.get("class_name")):
            return v["class_session"]
    known = sorted({f"{v.get('class_session')} ({v.get('class_name')})" for v in votes})
    raise PreferenceError(f"class_session {wanted[:60]!r} is not in {source}: give 'current', 'all' or one of "
                          f"{', '.join(known[:10]) or 'none (no votes yet)'}.")


def _in_session(votes: list[dict], session: str) -> list[dict]:
    return votes if session == "all" else [v for v in votes if v.get("class_session") == session]


def from_store(path: str | Path, class_session: str = "current") -> PreferenceSet:
    """Pairs from an Arena store; ``current`` = the store's newest class session.

    Raises:
        PreferenceError: not an Arena store, or an unknown class session.
    """
    from summarizer.arena.store import ArenaStore

    path = Path(path)
    _check_arena_tables(path)
    store = ArenaStore(path)  # adds the prompt column to a store made before it (as the app would)
    votes = store.votes()
    session = _chosen_session(votes, class_session, store.current_class()["id"], str(path))
    return pairs_from_votes(_in_session(votes, session), session, str(path))


def _check_arena_tables(path: Path) -> None:
    """Refuse an SQLite file that is not an Arena store (before ArenaStore would add its tables)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()
    except sqlite3.Error as err:
        raise PreferenceError(f"votes file {path} cannot be read as SQLite ({err}).") from None
    if not {"pairs", "votes", "class_sessions"} <= tables:
        raise PreferenceError(f"votes file {path} is an SQLite file but not an Arena store (no pairs/votes "
                              "tables): give <runs>/arena.sqlite3, its votes export CSV or a "
                              "prompt,chosen,rejected file.")


def unescape_cell(value: str) -> str:
    """Undo :func:`summarizer.text.spreadsheet_safe`: drop the ``'`` the export put before text
    a spreadsheet would run as a formula."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value


def from_export(rows: list[dict], class_session: str = "current", source: str = "export") -> PreferenceSet:
    """Pairs from the rows of a votes export CSV; ``current`` = the session of its newest vote.

    Raises:
        PreferenceError: an export without prompts (made before they were recorded), or an unknown session.
    """
    missing = [c for c in ("prompt", "summary_a", "summary_b", "vote") if c not in (rows[0] if rows else {})]
    if rows and missing:
        raise PreferenceError(f"{source} is a votes export without the column(s) {', '.join(missing)} (an "
                              "export made before they were recorded): export the votes again from the Arena.")
    votes = [{k: unescape_cell(v) if isinstance(v, str) else v for k, v in r.items()} for r in rows]
    newest = max(votes, key=lambda v: (v.get("voted_at_utc") or "", int(v.get("vote_id") or 0)), default=None)
    session = _chosen_session(votes, class_session, newest and newest["class_session"], source)
    return pairs_from_votes(_in_session(votes, session), session, source)


def from_plain(rows: list[dict], source: str) -> PreferenceSet:
    """Pairs from ``prompt,chosen,rejected`` rows (a row's number in messages counts from 1).

    Raises:
        PreferenceError: a missing column, or a row whose field is not non-empty text.
    """
    found = PreferenceSet([], source, "all")
    for i, r in enumerate(rows, 1):
        missing = [c for c in PLAIN_COLUMNS if c not in r]
        if missing:
            raise PreferenceError(f"{source} row {i} has no {', '.join(missing)}: each row needs "
                                  "prompt, chosen and rejected (or give the Arena's votes export).")
        for c in PLAIN_COLUMNS:
            if not isinstance(r[c], str) or not r[c].strip():
                raise PreferenceError(f"{source} row {i}: {c} must be non-empty text.")
            if len(r[c]) > MAX_TEXT_CHARS:
                raise PreferenceError(f"{source} row {i}: {c} has {len(r[c]):,} characters, over {MAX_TEXT_CHARS:,}.")
        if r["chosen"] == r["rejected"]:
            found.left_out["same text"] += 1
            continue
        found.pairs.append(PreferencePair(r["prompt"], r["chosen"], r["rejected"], str(r.get("pair_id") or ""),
                                          str(r.get("chosen_model") or ""), str(r.get("rejected_model") or ""),
                                          str(r.get("class_session") or "")))
    return found


def _read_rows(path: Path, text: str) -> list[dict]:
    """The rows of a CSV (header first) or JSONL file (one JSON object per line)."""
    if path.suffix.lower() in (".jsonl", ".json") or text.lstrip().startswith("{"):
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError as err:
                    raise PreferenceError(f"{path} line {i} is not JSON ({err}): one object per line.") from None
                if not isinstance(row, dict):
                    raise PreferenceError(f"{path} line {i} is not a JSON object with prompt, chosen, rejected.")
                rows.append(row)
        return rows
    return list(csv.DictReader(text.splitlines(keepends=True)))


def load_preferences(path: str | Path, class_session: str = "current") -> PreferenceSet:
    """Pairs from an Arena store, its votes export CSV, or a plain ``prompt,chosen,rejected``
    CSV/JSONL file (``class_session`` applies to the first two: ``current``, ``all``, an id or
    a name).

    Raises:
        PreferenceError: a missing, oversized, unreadable or unrecognised file, or rows that
            cannot be read (the message names the file, row and field).
    """
    path = Path(path)
    if not path.is_file():
        raise PreferenceError(f"votes file {path} {'is not a file' if path.exists() else 'does not exist'}: give "
                              "<runs>/arena.sqlite3, the Arena's votes export CSV or a prompt,chosen,rejected file.")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise PreferenceError(f"votes file {path} is over {MAX_FILE_BYTES:,} bytes.")
    with path.open("rb") as f:
        if f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC:
            return from_store(path, class_session)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise PreferenceError(f"votes file {path} is not UTF-8 text ({err.reason} at byte {err.start}).") from None
    try:
        rows = _read_rows(path, text)
    except csv.Error as err:
        raise PreferenceError(f"votes file {path} is not readable CSV ({err}).") from None
    if len(rows) > MAX_ROWS:
        raise PreferenceError(f"votes file {path} has {len(rows):,} rows, over {MAX_ROWS:,}.")
    if rows and "vote" in rows[0]:  # the Arena's votes export (an old one is refused by name)
        return from_export(rows, class_session, str(path))
    return from_plain(rows, str(path))


def export_preferences(pairs: list[PreferencePair], out: str | Path) -> Path:
    """Write ``pairs`` as JSONL (``prompt``, ``chosen``, ``rejected``, then where each came from;
    no logins), loadable with ``datasets.load_dataset("json", data_files=str(out))`` and read
    back by :func:`load_preferences`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(asdict(p), ensure_ascii=False) + "\n")
    tmp.replace(out)
    return out
