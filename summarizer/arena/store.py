"""Class Arena: blind pairwise votes between two model slots, stored in SQLite, and a leaderboard.

How it works: :func:`serve_pair` picks a random dialogue and two different filled slots in a
random order ("A" and "B"), generates both summaries and records the *served pair* under an
unguessable id. :meth:`ArenaStore.vote` accepts one vote (A, B, tie, both bad) per served pair,
only from the login it was served to (from the browser session, when the app has no logins).
:meth:`ArenaStore.rate` accepts one 1–5 rating of each served summary (A and B) on the four
:data:`CRITERIA`, from the same login, under the same guarantees. :func:`leaderboard` turns the votes into win rates and Bradley–Terry ratings,
:func:`~summarizer.arena.leaderboard.rating_table` the ratings into means with t-intervals.

Storage: one SQLite file (``<runs>/arena.sqlite3``) in WAL mode, a new connection per call
(safe from any thread), ``busy_timeout`` so 30 concurrent voters wait instead of failing, and
``synchronous=FULL`` so a committed vote survives the app being killed mid-class. Votes are
never deleted: a *class session* (the teacher's "new session") only changes which votes the
leaderboard counts.

Statistics (win rates with Wilson intervals, Bradley–Terry ratings with bootstrap intervals)
live in :mod:`summarizer.arena.leaderboard`.
"""
from __future__ import annotations

import contextlib
import csv
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from summarizer.limits import DEFAULT_MAX_INPUT_TOKENS
from summarizer.text import spreadsheet_safe

DB_NAME = "arena.sqlite3"
VOTES = ("A", "B", "tie", "both bad")
MAX_PAIR_ID_CHARS = 64
MAX_SESSION_CHARS = 128
MAX_CLASS_NAME_CHARS = 100
_PAIR_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
BUSY_TIMEOUT_MS = 30_000  # 30 voters each waiting for a few-millisecond write never reach this

_SCHEMA = """
CREATE TABLE IF NOT EXISTS class_sessions (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, started_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
    pair_id TEXT PRIMARY KEY, browser_session TEXT NOT NULL, class_session TEXT NOT NULL,
    dialogue_id TEXT NOT NULL, model_a TEXT NOT NULL, source_a TEXT NOT NULL,
    model_b TEXT NOT NULL, source_b TEXT NOT NULL, summary_a TEXT NOT NULL,
    summary_b TEXT NOT NULL, served_at REAL NOT NULL, login TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, pair_id TEXT NOT NULL UNIQUE REFERENCES pairs(pair_id),
    class_session TEXT NOT NULL, browser_session TEXT NOT NULL, dialogue_id TEXT NOT NULL,
    model_a TEXT NOT NULL, source_a TEXT NOT NULL, model_b TEXT NOT NULL, source_b TEXT NOT NULL,
    vote TEXT NOT NULL, voted_at REAL NOT NULL, login TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS votes_by_class ON votes(class_session);
CREATE TABLE IF NOT EXISTS ratings (
    id INTEGER PRIMARY KEY AUTOINCREMENT, pair_id TEXT NOT NULL REFERENCES pairs(pair_id),
    side TEXT NOT NULL CHECK (side IN ('A', 'B')), class_session TEXT NOT NULL,
    browser_session TEXT NOT NULL, dialogue_id TEXT NOT NULL, model TEXT NOT NULL, source TEXT NOT NULL,
    relevance INTEGER NOT NULL CHECK (relevance BETWEEN 1 AND 5),
    coherence INTEGER NOT NULL CHECK (coherence BETWEEN 1 AND 5),
    fluency INTEGER NOT NULL CHECK (fluency BETWEEN 1 AND 5),
    consistency INTEGER NOT NULL CHECK (consistency BETWEEN 1 AND 5),
    blind INTEGER NOT NULL, rated_at REAL NOT NULL, login TEXT NOT NULL DEFAULT '', UNIQUE (pair_id, side));
CREATE INDEX IF NOT EXISTS ratings_by_class ON ratings(class_session);
"""
LOGIN_TABLES = ("pairs", "votes", "ratings")  # each row names its student's login ('' without logins)
EXPORT_COLUMNS = ("vote_id", "class_session", "class_name", "login", "browser_session", "dialogue_id",
                  "model_a", "source_a", "model_b", "source_b", "vote", "winner", "voted_at_utc",
                  "pair_id", "prompt", "summary_a", "summary_b")  # the last four: preference pairs (DPO)
# The four criteria of SummEval (Fabbri et al. 2021, "SummEval: Re-evaluating Summarization
# Evaluation"), each 1 (worst) to 5 (best). "consistency" is the course's "states something the
# dialogue does not say", turned so that higher is better: 5 = adds nothing the dialogue does not say.
CRITERIA = ("relevance", "coherence", "fluency", "consistency")
CRITERION_HELP = {
    "relevance": "keeps the dialogue's important points, and only those (5 = all of them)",
    "coherence": "reads as one well-organised whole (5 = fully)",
    "fluency": "well-formed, grammatical sentences (5 = no errors)",
    "consistency": "states nothing the dialogue does not say (5 = adds nothing, 1 = mostly made up)",
}
SIDES = ("A", "B")
SCORES = (1, 2, 3, 4, 5)
RATING_EXPORT_COLUMNS = ("rating_id", "class_session", "class_name", "login", "browser_session", "pair_id", "side",
                         "dialogue_id", "model", "source", *CRITERIA, "blind", "rated_at_utc")


class ArenaError(ValueError):
    """A refused arena request; the message names the field and says what to do."""


@dataclass(frozen=True)
class ServedPair:
    """A pair shown to a student: ``summary_a`` came from ``model_a`` (a slot name), etc."""

    pair_id: str
    dialogue_id: str
    dialogue: str
    model_a: str
    source_a: str
    model_b: str
    source_b: str
    summary_a: str
    summary_b: str
    prompt: str = ""  # the exact text both models were given (recorded for preference training)

    def public(self) -> dict:
        """What the student may see before voting: no model names."""
        return {"pair_id": self.pair_id, "dialogue_id": self.dialogue_id, "dialogue": self.dialogue,
                "summary_a": self.summary_a, "summary_b": self.summary_b}


def check_text(value, field: str, max_chars: int, pattern: re.Pattern | None = None) -> str:
    """``value`` as a stripped string, or :class:`ArenaError` naming ``field``."""
    if not isinstance(value, str):
        raise ArenaError(f"{field} must be a string, got {type(value).__name__}.")
    value = value.strip()
    if len(value) > max_chars:
        raise ArenaError(f"{field} has {len(value):,} characters, over the limit of {max_chars}.")
    if pattern is not None and not pattern.fullmatch(value):
        raise ArenaError(f"{field} {value[:20]!r} is not one the arena served: use the pair_id "
                         "that /arena_next returned.")
    return value


def check_vote(vote) -> str:
    """The vote as one of :data:`VOTES`; accepts any case and ``both_bad``."""
    if not isinstance(vote, str):
        raise ArenaError(f"vote must be a string, one of {', '.join(VOTES)}; got {type(vote).__name__}.")
    key = vote.strip().replace("_", " ")
    for allowed in VOTES:
        if key.lower() == allowed.lower():
            return allowed
    raise ArenaError(f"vote must be one of {', '.join(repr(v) for v in VOTES)}; got {vote[:20]!r}.")


def check_side(side) -> str:
    """``"A"`` or ``"B"`` (any case); else :class:`ArenaError` naming ``side``."""
    if not isinstance(side, str) or side.strip().upper() not in SIDES:
        shown = side[:20] if isinstance(side, str) else type(side).__name__
        raise ArenaError(f"side must be 'A' or 'B' (which summary of the pair you rate); got {shown!r}.")
    return side.strip().upper()


def check_score(value, field: str) -> int:
    """A whole number 1..5 (an int, or a string such as ``"4"``); else :class:`ArenaError` naming ``field``."""
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) == 1:
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value not in SCORES:
        shown = repr(value)[:20] if isinstance(value, (int, str)) else type(value).__name__
        raise ArenaError(f"{field} must be a whole number from 1 (worst) to 5 (best); got {shown}.")
    return value


def check_scores(scores) -> dict[str, int]:
    """``{criterion: 1..5}`` for every one of :data:`CRITERIA` (no others); :class:`ArenaError` names the field."""
    if not isinstance(scores, dict):
        raise ArenaError(f"scores must be a mapping of {', '.join(CRITERIA)} to 1..5; got {type(scores).__name__}.")
    extra = sorted(str(k)[:20] for k in scores if k not in CRITERIA)
    if extra:
        raise ArenaError(f"scores has unknown criteria {', '.join(extra)}; rate {', '.join(CRITERIA)}.")
    return {c: check_score(scores.get(c), c) for c in CRITERIA}


class ArenaStore:
    """Served pairs, votes and class sessions in one SQLite file.

    Args:
        path: the database file (created with its folder if missing), usually
            ``<runs>/arena.sqlite3``.

    Every method opens its own connection, so one store may be used from many threads; a new
    store on the same file (an app restart) sees every committed vote.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._open()
        try:
            db.execute("PRAGMA journal_mode=WAL")  # persistent; readers never block the writer
            db.executescript(_SCHEMA)  # IF NOT EXISTS: a restart keeps every table
            for table in LOGIN_TABLES:  # a store made before logins were recorded gets the column
                if "login" not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN login TEXT NOT NULL DEFAULT ''")
            # The exact prompt both models were given (preference training needs it); pairs served
            # before it was recorded keep '' and are left out of preference pairs, counted.
            if "prompt" not in {row[1] for row in db.execute("PRAGMA table_info(pairs)")}:
                db.execute("ALTER TABLE pairs ADD COLUMN prompt TEXT NOT NULL DEFAULT ''")
        finally:
            db.close()
        with self._connect() as db:
            if db.execute("SELECT COUNT(*) FROM class_sessions").fetchone()[0] == 0:
                db.execute("INSERT INTO class_sessions VALUES (?, ?, ?)",
                           (secrets.token_hex(4), "first session", time.time()))

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA synchronous=FULL")  # a committed vote is on disk before we answer
        return db

    @contextlib.contextmanager
    def _connect(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """A fresh connection in one transaction, committed on success, always closed.

        Writers take the write lock up front (``BEGIN IMMEDIATE``), so two writers never both
        hold a read lock and deadlock upgrading it; readers read one consistent snapshot.
        """
        db = self._open()
        try:
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    # ---- class sessions ------------------------------------------------------------------
    def current_class(self) -> dict:
        """The newest class session: ``{"id", "name", "started_at"}`` (Unix seconds)."""
        with self._connect(write=False) as db:
            return self._current(db)

    @staticmethod
    def _current(db) -> dict:
        row = db.execute("SELECT id, name, started_at FROM class_sessions "
                         "ORDER BY started_at DESC, rowid DESC LIMIT 1").fetchone()
        return {"id": row[0], "name": row[1], "started_at": row[2]}

    def new_class(self, name: str = "") -> dict:
        """Start a new class session (old votes are kept, the leaderboard starts empty).

        Raises:
            ArenaError: ``name`` is not a string or is longer than 100 characters.
        """
        name = check_text(name if name is not None else "", "class session name", MAX_CLASS_NAME_CHARS)
        entry = {"id": secrets.token_hex(4), "name": name or time.strftime("session %Y-%m-%d %H:%M"),
                 "started_at": time.time()}
        with self._connect() as db:
            db.execute("INSERT INTO class_sessions VALUES (?, ?, ?)",
                       (entry["id"], entry["name"], entry["started_at"]))
        return entry

    # ---- pairs and votes -----------------------------------------------------------------
    def record_pair(self, pair: ServedPair, browser_session: str, login: str = "") -> None:
        """Remember that ``pair`` was served to ``login`` (or, without logins, to ``browser_session``),
        so that only they may vote on it, once."""
        session = check_text(browser_session, "browser session", MAX_SESSION_CHARS)
        login = check_text(login, "login", MAX_SESSION_CHARS)
        with self._connect() as db:
            db.execute("INSERT INTO pairs (pair_id, browser_session, class_session, dialogue_id, model_a, source_a, "
                       "model_b, source_b, summary_a, summary_b, served_at, login, prompt) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (pair.pair_id, session, self._current(db)["id"], pair.dialogue_id, pair.model_a,
                        pair.source_a, pair.model_b, pair.source_b, pair.summary_a, pair.summary_b,
                        time.time(), login, pair.prompt))

    def vote(self, pair_id, vote, browser_session, login: str = "") -> dict:
        """Record ``vote`` on a served pair and reveal its models.

        The vote counts in the class session that is current when it is cast.

        Args:
            pair_id: the id :func:`serve_pair` returned.
            vote: ``A``, ``B``, ``tie`` or ``both bad``.
            browser_session: the voter's session; must be the one the pair was served to when
                it was served without a login.
            login: the voter's login; must be the one the pair was served to ("" without logins).

        Returns:
            ``{"vote", "model_a", "source_a", "model_b", "source_b", "dialogue_id", "class_session"}``.

        Raises:
            ArenaError: bad field, a pair the arena did not serve (to this session), or a second
                vote on the same pair.
        """
        pair_id = check_text(pair_id, "pair_id", MAX_PAIR_ID_CHARS, _PAIR_ID)
        vote = check_vote(vote)
        session = check_text(browser_session, "browser session", MAX_SESSION_CHARS)
        login = check_text(login, "login", MAX_SESSION_CHARS)
        with self._connect() as db:
            row = _served_row(db, pair_id, session, login, "vote only on the pair")
            if db.execute("SELECT 1 FROM votes WHERE pair_id = ?", (pair_id,)).fetchone():
                raise ArenaError(f"pair_id {pair_id[:20]!r} already has your vote: one vote per pair; "
                                 "ask for the next pair.")
            klass = self._current(db)
            db.execute("INSERT INTO votes (pair_id, class_session, browser_session, dialogue_id, model_a, "
                       "source_a, model_b, source_b, vote, voted_at, login) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (pair_id, klass["id"], session, *row[1:6], vote, time.time(), login))
        return {"vote": vote, "model_a": row[2], "source_a": row[3], "model_b": row[4], "source_b": row[5],
                "dialogue_id": row[1], "class_session": klass["name"]}

    def rate(self, pair_id, side, scores, browser_session, login: str = "") -> dict:
        """Record one rating of summary ``side`` of a served pair, 1..5 on each of :data:`CRITERIA`.

        One rating per summary: the pair must have been served to ``login`` (or, without logins,
        to ``browser_session``); a pair goes to one person only, so this is one rating per login
        per served summary. It
        counts in the class session that is current when it is given. ``blind`` records whether
        the pair was still unvoted (models unrevealed) at the time. Like a vote, it is committed
        to disk (WAL, ``synchronous=FULL``) before this returns.

        Args:
            pair_id: the id :func:`serve_pair` returned.
            side: ``"A"`` or ``"B"``.
            scores: ``{"relevance", "coherence", "fluency", "consistency"}`` -> 1..5.
            browser_session: the rater's session.
            login: the rater's login ("" without logins).

        Returns:
            ``{"rating_id", "pair_id", "side", "dialogue_id", <criteria>, "blind", "class_session"}``;
            no model name (a blind rating must not reveal the pair before its vote).

        Raises:
            ArenaError: a bad field, a pair not served to this session, or a second rating of the summary.
        """
        pair_id = check_text(pair_id, "pair_id", MAX_PAIR_ID_CHARS, _PAIR_ID)
        side, scores = check_side(side), check_scores(scores)
        session = check_text(browser_session, "browser session", MAX_SESSION_CHARS)
        login = check_text(login, "login", MAX_SESSION_CHARS)
        with self._connect() as db:
            row = _served_row(db, pair_id, session, login, "rate only the summaries")
            if db.execute("SELECT 1 FROM ratings WHERE pair_id = ? AND side = ?", (pair_id, side)).fetchone():
                raise ArenaError(f"side {side} of pair_id {pair_id[:20]!r} already has your rating: one "
                                 "rating per summary; rate the other one or ask for the next pair.")
            blind = db.execute("SELECT 1 FROM votes WHERE pair_id = ?", (pair_id,)).fetchone() is None
            model, source = row[2:4] if side == "A" else row[4:6]
            klass = self._current(db)
            cursor = db.execute(
                f"INSERT INTO ratings (pair_id, side, class_session, browser_session, dialogue_id, model, source, "
                f"{', '.join(CRITERIA)}, blind, rated_at, login) VALUES ({', '.join('?' * (10 + len(CRITERIA)))})",
                (pair_id, side, klass["id"], session, row[1], model, source, *scores.values(), int(blind),
                 time.time(), login))
        return {"rating_id": cursor.lastrowid, "pair_id": pair_id, "side": side, "dialogue_id": row[1],
                **scores, "blind": blind, "class_session": klass["name"]}

    def served(self, class_session: str | None = None) -> list[dict]:
        """Every served pair (oldest first), or only those of ``class_session`` (an id): pair_id,
        login, dialogue_id, model_a, model_b, served_at (Unix seconds); no summaries."""
        keys = ("pair_id", "login", "dialogue_id", "model_a", "model_b", "served_at")
        query = f"SELECT {', '.join(keys)} FROM pairs"
        with self._connect(write=False) as db:
            if class_session is None:
                rows = db.execute(query + " ORDER BY served_at").fetchall()
            else:
                rows = db.execute(query + " WHERE class_session = ? ORDER BY served_at", (class_session,)).fetchall()
        return [dict(zip(keys, row)) for row in rows]

    def summaries(self, class_session: str | None = None) -> dict[str, tuple[str, str]]:
        """``{pair_id: (summary_a, summary_b)}`` of every served pair, or of ``class_session``'s
        (an id): what tells two judged pairs apart (:mod:`summarizer.arena.agreement`)."""
        query = "SELECT pair_id, summary_a, summary_b FROM pairs"
        with self._connect(write=False) as db:
            if class_session is None:
                rows = db.execute(query).fetchall()
            else:
                rows = db.execute(query + " WHERE class_session = ?", (class_session,)).fetchall()
        return {pair_id: (a, b) for pair_id, a, b in rows}

    def ratings(self, class_session: str | None = None) -> list[dict]:
        """Every rating (oldest first), or only those of ``class_session`` (an id); ``blind`` as bool."""
        keys = ("rating_id", "class_session", "class_name", "login", "browser_session", "pair_id", "side",
                "dialogue_id", "model", "source", *CRITERIA, "blind", "rated_at")
        query = (f"SELECT r.id, r.class_session, c.name, r.login, r.browser_session, r.pair_id, r.side, r.dialogue_id, "
                 f"r.model, r.source, {', '.join('r.' + c for c in CRITERIA)}, r.blind, r.rated_at FROM ratings r "
                 "LEFT JOIN class_sessions c ON c.id = r.class_session")
        with self._connect(write=False) as db:
            if class_session is None:
                rows = db.execute(query + " ORDER BY r.id").fetchall()
            else:
                rows = db.execute(query + " WHERE r.class_session = ? ORDER BY r.id", (class_session,)).fetchall()
        return [{**dict(zip(keys, row)), "blind": bool(row[-2])} for row in rows]

    def export_ratings_csv(self, out: str | Path, class_session: str | None = None) -> Path:
        """Write the ratings as CSV (columns :data:`RATING_EXPORT_COLUMNS`, UTF-8) to ``out``;
        formula-like text cells get a leading apostrophe, as in :meth:`export_csv`."""
        out = Path(out)
        with out.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(RATING_EXPORT_COLUMNS)
            for r in self.ratings(class_session):
                when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["rated_at"]))
                cells = [r[k] for k in RATING_EXPORT_COLUMNS[:-2]] + [int(r["blind"]), when]
                writer.writerow([spreadsheet_safe(x) for x in cells])
        return out

    def votes(self, class_session: str | None = None) -> list[dict]:
        """Every vote (oldest first), or only those of ``class_session`` (an id), with its pair's
        ``prompt`` ('' if served before prompts were recorded), ``summary_a`` and ``summary_b``."""
        query = ("SELECT v.id, v.class_session, c.name, v.login, v.browser_session, v.dialogue_id, v.model_a, "
                 "v.source_a, v.model_b, v.source_b, v.vote, v.voted_at, v.pair_id, p.prompt, p.summary_a, "
                 "p.summary_b FROM votes v LEFT JOIN class_sessions c ON c.id = v.class_session "
                 "LEFT JOIN pairs p ON p.pair_id = v.pair_id")
        with self._connect(write=False) as db:
            if class_session is None:
                rows = db.execute(query + " ORDER BY v.id").fetchall()
            else:
                rows = db.execute(query + " WHERE v.class_session = ? ORDER BY v.id", (class_session,)).fetchall()
        keys = ("vote_id", "class_session", "class_name", "login", "browser_session", "dialogue_id", "model_a",
                "source_a", "model_b", "source_b", "vote", "voted_at", "pair_id", "prompt", "summary_a", "summary_b")
        return [dict(zip(keys, row)) for row in rows]

    def export_csv(self, out: str | Path, class_session: str | None = None) -> Path:
        """Write the votes as CSV (columns :data:`EXPORT_COLUMNS`, UTF-8) to ``out``.

        Text cells that a spreadsheet would run as a formula (starting with ``= + - @``) get a
        leading apostrophe: model sources are typed by users.
        """
        out = Path(out)
        with out.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(EXPORT_COLUMNS)
            for v in self.votes(class_session):
                winner = {"A": v["model_a"], "B": v["model_b"]}.get(v["vote"], "")
                when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(v["voted_at"]))
                writer.writerow([spreadsheet_safe(x) for x in (
                    v["vote_id"], v["class_session"], v["class_name"], v["login"], v["browser_session"], v["dialogue_id"],
                    v["model_a"], v["source_a"], v["model_b"], v["source_b"], v["vote"], winner, when,
                    v["pair_id"], v["prompt"], v["summary_a"], v["summary_b"])])
        return out




# ---- serving a pair ----------------------------------------------------------------------------
def pick_models(filled: Sequence[str], rng) -> tuple[str, str]:
    """Two different slots from ``filled`` in random order (A, B).

    Raises:
        ArenaError: fewer than two filled slots (the message says how to fill one).
    """
    if len(filled) < 2:
        now = ", ".join(filled) or "none"
        raise ArenaError(
            f"The Arena needs at least two filled model slots; filled now: {now}. Fill one in the "
            "Compare tab under \"Models in the slots\" (pick a finished training run, then Apply), or "
            "start the app with --full-model, --lora-model or --detox-model.")
    a, b = rng.sample(list(filled), 2)
    return a, b


def _served_row(db, pair_id: str, session: str, login: str, what: str) -> tuple:
    """(browser_session, dialogue_id, model_a, source_a, model_b, source_b, login) of a pair
    served to ``login``, or, for a pair served without a login, to ``session``.

    Raises:
        ArenaError: the arena did not serve ``pair_id``, or served it to another login (or
            session); the message says ``what`` the caller may do instead.
    """
    row = db.execute("SELECT browser_session, dialogue_id, model_a, source_a, model_b, source_b, login "
                     "FROM pairs WHERE pair_id = ?", (pair_id,)).fetchone()
    if row is None or (row[6] != login if row[6] or login else row[0] != session):
        raise ArenaError(f"pair_id {pair_id[:20]!r} was not served to this session: {what} "
                         "that /arena_next (or the Arena tab) showed you.")
    return row


def serve_pair(store: ArenaStore, slots, rows, browser_session: str, rng, settings,
               max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS, login: str = "") -> ServedPair:
    """Generate and record a blind pair for ``login`` (or, without logins, ``browser_session``).

    Args:
        store: where the served pair is recorded.
        slots: :class:`summarizer.inference.slots.ModelSlots` (two or more filled).
        rows: a DialogSum split (``id``, ``dialogue`` columns).
        browser_session: the session it was served to (the one that may vote on it without logins).
        login: the login that may vote on it ("" when the app has no logins).
        rng: a ``random.Random`` (dialogue, models and their order).
        settings: :class:`summarizer.inference.generation.GenerationSettings` for both summaries.

    Raises:
        ArenaError: fewer than two filled slots; SlotError: a slot cannot be loaded.
    """
    from summarizer.inference.slot_config import SLOTS  # imported here: the store and the statistics need no torch
    from summarizer.prompts import build_prompt  # the zero-shot prompt of Compare and the training runs

    model_a, model_b = pick_models([s for s in SLOTS if slots.is_filled(s)], rng)
    row = rows[rng.randrange(len(rows))]
    prompt = build_prompt("zero-shot", row["dialogue"], tokenizer=slots.tokenizer, max_tokens=max_input_tokens)
    out = slots.answer([model_a, model_b], [prompt.text], settings)  # batched with other voters' pairs
    pair = ServedPair(secrets.token_urlsafe(18), str(row["id"]), row["dialogue"], model_a,
                      slots.source(model_a), model_b, slots.source(model_b), out[model_a][0], out[model_b][0],
                      prompt=prompt.text)
    store.record_pair(pair, browser_session, login)
    return pair
