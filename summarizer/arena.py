"""Class Arena: blind pairwise votes between two model slots, stored in SQLite, and a leaderboard.

How it works: :func:`serve_pair` picks a random dialogue and two different filled slots in a
random order ("A" and "B"), generates both summaries and records the *served pair* under an
unguessable id. :meth:`ArenaStore.vote` accepts one vote (A, B, tie, both bad) per served pair,
only from the browser session it was served to. :func:`leaderboard` turns the votes into win
rates and Bradley–Terry ratings.

Storage: one SQLite file (``<runs>/arena.sqlite3``) in WAL mode, a new connection per call
(safe from any thread), ``busy_timeout`` so 30 concurrent voters wait instead of failing, and
``synchronous=FULL`` so a committed vote survives the app being killed mid-class. Votes are
never deleted: a *class session* (the teacher's "new session") only changes which votes the
leaderboard counts.

Statistics (see :func:`leaderboard`):

* win rate = wins / (wins + losses) over decisive votes, with the 95% **Wilson** score
  interval (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it over the normal interval);
* **Bradley–Terry** ratings fitted by maximum likelihood (logistic regression on the pairwise
  outcomes, by Newton's method) as Chatbot Arena does (Chiang et al. 2024, "Chatbot Arena: An
  Open Platform for Evaluating LLMs by Human Preference"), on the Elo-like scale of FastChat (``1000 + 400 log10(strength)``, so
  a 400-point gap means 10:1 odds); a tie counts as half a win for each side, and "both bad"
  counts as a tie (FastChat's ``tie (bothbad)`` is a tie in its ratings too); 95% intervals
  from a percentile bootstrap over votes.
"""
from __future__ import annotations

import contextlib
import csv
import math
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

DB_NAME = "arena.sqlite3"
VOTES = ("A", "B", "tie", "both bad")
MAX_PAIR_ID_CHARS = 64
MAX_SESSION_CHARS = 128
MAX_CLASS_NAME_CHARS = 100
_PAIR_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
BUSY_TIMEOUT_MS = 30_000  # 30 voters each waiting for a few-millisecond write never reach this
SCALE, BASE_RATING = 400.0, 1000.0  # FastChat's Elo-like scale (fastchat/serve/monitor/elo_analysis.py)
Z95 = 1.959963984540054  # standard normal 97.5% quantile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS class_sessions (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, started_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
    pair_id TEXT PRIMARY KEY, browser_session TEXT NOT NULL, class_session TEXT NOT NULL,
    dialogue_id TEXT NOT NULL, model_a TEXT NOT NULL, source_a TEXT NOT NULL,
    model_b TEXT NOT NULL, source_b TEXT NOT NULL, summary_a TEXT NOT NULL,
    summary_b TEXT NOT NULL, served_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, pair_id TEXT NOT NULL UNIQUE REFERENCES pairs(pair_id),
    class_session TEXT NOT NULL, browser_session TEXT NOT NULL, dialogue_id TEXT NOT NULL,
    model_a TEXT NOT NULL, source_a TEXT NOT NULL, model_b TEXT NOT NULL, source_b TEXT NOT NULL,
    vote TEXT NOT NULL, voted_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS votes_by_class ON votes(class_session);
"""
EXPORT_COLUMNS = ("vote_id", "class_session", "class_name", "browser_session", "dialogue_id",
                  "model_a", "source_a", "model_b", "source_b", "vote", "winner", "voted_at_utc")


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
    def record_pair(self, pair: ServedPair, browser_session: str) -> None:
        """Remember that ``pair`` was served to ``browser_session`` (so it may be voted on once)."""
        session = check_text(browser_session, "browser session", MAX_SESSION_CHARS)
        with self._connect() as db:
            db.execute("INSERT INTO pairs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (pair.pair_id, session, self._current(db)["id"], pair.dialogue_id, pair.model_a,
                        pair.source_a, pair.model_b, pair.source_b, pair.summary_a, pair.summary_b,
                        time.time()))

    def vote(self, pair_id, vote, browser_session) -> dict:
        """Record ``vote`` on a served pair and reveal its models.

        The vote counts in the class session that is current when it is cast.

        Args:
            pair_id: the id :func:`serve_pair` returned.
            vote: ``A``, ``B``, ``tie`` or ``both bad``.
            browser_session: the voter's session; must be the one the pair was served to.

        Returns:
            ``{"vote", "model_a", "source_a", "model_b", "source_b", "dialogue_id", "class_session"}``.

        Raises:
            ArenaError: bad field, a pair the arena did not serve (to this session), or a second
                vote on the same pair.
        """
        pair_id = check_text(pair_id, "pair_id", MAX_PAIR_ID_CHARS, _PAIR_ID)
        vote = check_vote(vote)
        session = check_text(browser_session, "browser session", MAX_SESSION_CHARS)
        with self._connect() as db:
            row = db.execute("SELECT browser_session, dialogue_id, model_a, source_a, model_b, source_b "
                             "FROM pairs WHERE pair_id = ?", (pair_id,)).fetchone()
            if row is None or row[0] != session:
                raise ArenaError(f"pair_id {pair_id[:20]!r} was not served to this session: vote only "
                                 "on the pair that /arena_next (or the Arena tab) showed you.")
            if db.execute("SELECT 1 FROM votes WHERE pair_id = ?", (pair_id,)).fetchone():
                raise ArenaError(f"pair_id {pair_id[:20]!r} already has your vote: one vote per pair; "
                                 "ask for the next pair.")
            klass = self._current(db)
            db.execute("INSERT INTO votes (pair_id, class_session, browser_session, dialogue_id, model_a, "
                       "source_a, model_b, source_b, vote, voted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (pair_id, klass["id"], session, *row[1:], vote, time.time()))
        return {"vote": vote, "model_a": row[2], "source_a": row[3], "model_b": row[4], "source_b": row[5],
                "dialogue_id": row[1], "class_session": klass["name"]}

    def votes(self, class_session: str | None = None) -> list[dict]:
        """Every vote (oldest first), or only those of ``class_session`` (an id)."""
        query = ("SELECT v.id, v.class_session, c.name, v.browser_session, v.dialogue_id, v.model_a, "
                 "v.source_a, v.model_b, v.source_b, v.vote, v.voted_at FROM votes v "
                 "LEFT JOIN class_sessions c ON c.id = v.class_session")
        with self._connect(write=False) as db:
            if class_session is None:
                rows = db.execute(query + " ORDER BY v.id").fetchall()
            else:
                rows = db.execute(query + " WHERE v.class_session = ? ORDER BY v.id", (class_session,)).fetchall()
        keys = ("vote_id", "class_session", "class_name", "browser_session", "dialogue_id", "model_a",
                "source_a", "model_b", "source_b", "vote", "voted_at")
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
                writer.writerow([_csv_safe(x) for x in (
                    v["vote_id"], v["class_session"], v["class_name"], v["browser_session"], v["dialogue_id"],
                    v["model_a"], v["source_a"], v["model_b"], v["source_b"], v["vote"], winner, when)])
        return out


def _csv_safe(value):
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") else value


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


def serve_pair(store: ArenaStore, slots, rows, browser_session: str, rng, settings,
               max_input_tokens: int = 512) -> ServedPair:
    """Generate and record a blind pair for ``browser_session``.

    Args:
        store: where the served pair is recorded.
        slots: :class:`summarizer.models.ModelSlots` (two or more filled).
        rows: a DialogSum split (``id``, ``dialogue`` columns).
        browser_session: the session that may vote on it.
        rng: a ``random.Random`` (dialogue, models and their order).
        settings: :class:`summarizer.generation.GenerationSettings` for both summaries.

    Raises:
        ArenaError: fewer than two filled slots; SlotError: a slot cannot be loaded.
    """
    from .models import SLOTS  # imported here: the store and the statistics need no torch
    from .prompts import build_prompt  # the zero-shot prompt of Compare and the training runs

    model_a, model_b = pick_models([s for s in SLOTS if slots.is_filled(s)], rng)
    row = rows[rng.randrange(len(rows))]
    prompt = build_prompt("zero-shot", row["dialogue"], tokenizer=slots.tokenizer, max_tokens=max_input_tokens)
    out = slots.generate([model_a, model_b], [prompt.text], settings)
    pair = ServedPair(secrets.token_urlsafe(18), str(row["id"]), row["dialogue"], model_a,
                      slots.source(model_a), model_b, slots.source(model_b), out[model_a][0], out[model_b][0])
    store.record_pair(pair, browser_session)
    return pair


# ---- statistics --------------------------------------------------------------------------------
def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (``(nan, nan)`` when ``n == 0``)."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def win_matrix(votes: Sequence[tuple[int, int, str]], n_models: int,
               weights: np.ndarray | None = None) -> np.ndarray:
    """``W[i, j]`` = wins of model i over model j; a tie or "both bad" adds 0.5 to both.

    Args:
        votes: ``(index of A, index of B, vote)`` per vote.
        weights: optional count per vote (bootstrap resampling), default 1 each.

    Returns:
        (M, M) float array.
    """
    w = np.ones(len(votes)) if weights is None else np.asarray(weights, dtype=np.float64)
    a = np.array([v[0] for v in votes], dtype=int)
    b = np.array([v[1] for v in votes], dtype=int)
    kind = np.array([v[2] for v in votes], dtype=object)
    share_a = np.where(kind == "A", 1.0, np.where(kind == "B", 0.0, 0.5))  # (V,)
    W = np.zeros((n_models, n_models))
    np.add.at(W, (a, b), w * share_a)
    np.add.at(W, (b, a), w * (1 - share_a))
    return W


def _strongly_connected(W: np.ndarray) -> bool:
    """True when every model beat (at least half-)someone who leads back to it: the MLE exists."""
    reach = (W > 0) | np.eye(len(W), dtype=bool)
    for k in range(len(W)):  # Warshall's transitive closure
        reach |= reach[:, [k]] & reach[[k], :]
    return bool(reach.all())


def _log_likelihood(W: np.ndarray, b: np.ndarray) -> float:
    """sum_ij W_ij log sigmoid(b_i - b_j): the Bradley–Terry log-likelihood of win matrix ``W``."""
    return float(-(W * np.logaddexp(0.0, -(b[:, None] - b[None, :]))).sum())


def bradley_terry(W: np.ndarray, tol: float = 1e-10, max_iter: int = 200) -> tuple[np.ndarray, bool]:
    """Bradley–Terry log-strengths from a win matrix: maximum likelihood by Newton's method.

    The model: P(i beats j) = sigmoid(b_i - b_j), i.e. logistic regression on pairwise outcomes
    as Chatbot Arena fits it (Chiang et al. 2024). The log-likelihood is concave, so Newton's
    method with step halving converges in a few steps (Hunter's 2004 MM algorithm reaches the
    same point, linearly; the tests check against it). The maximum exists when the win graph is
    strongly connected (Hunter 2004, assumption 1); when it is not (say a model never won), one
    virtual tie is added to every pair that met, a weak prior that keeps ratings finite, and the
    second return value says so.

    Args:
        W: (M, M) wins, ``W[i, j]`` = wins of i over j (ties as halves, see :func:`win_matrix`).

    Returns:
        (log-strengths (M,), natural log, mean 0 over the models that played; ``nan`` for a model
        without games), whether the prior was added.
    """
    W = np.array(W, dtype=np.float64)
    played = (W + W.T).sum(axis=1) > 0  # (M,)
    regularized = not _strongly_connected(W[np.ix_(played, played)])
    if regularized:
        W = W + 0.5 * ((W + W.T) > 0)
    N = W + W.T  # (M, M) games between i and j
    b = np.zeros(len(W))
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(b[:, None] - b[None, :])))  # (M, M) P(i beats j)
        grad = (W * (1 - p)).sum(axis=1) - (W.T * p).sum(axis=1)  # (M,)
        info = N * p * (1 - p)
        laplacian = np.diag(info.sum(axis=1)) - info  # minus the Hessian; null space: shifts
        step = np.linalg.lstsq(laplacian, grad, rcond=None)[0]  # least-norm: no shift added
        t, before = 1.0, _log_likelihood(W, b)
        while _log_likelihood(W, b + t * step) < before - 1e-12 and t > 1e-8:
            t /= 2  # step halving keeps every step uphill
        b = b + t * step
        if np.max(np.abs(t * step)) < tol:
            break
    b = b - b[played].mean()
    b[~played] = np.nan
    return b, regularized


def to_rating(log_strength: np.ndarray) -> np.ndarray:
    """Natural-log strengths on FastChat's scale: ``1000 + 400 * log10(p)``."""
    return BASE_RATING + SCALE * np.asarray(log_strength) / math.log(10)


def leaderboard(votes: Sequence[dict], n_bootstrap: int = 200, seed: int = 0) -> dict:
    """Per-model counts, win rate (Wilson 95%) and Bradley–Terry rating (bootstrap 95%).

    Args:
        votes: dicts with ``model_a``, ``source_a``, ``model_b``, ``source_b`` and ``vote``
            (as :meth:`ArenaStore.votes` returns). A model is its (slot, source) pair, so a slot
            refilled with another model mid-class counts as a new model.
        n_bootstrap: resamples of the votes (with replacement) for the rating intervals.
        seed: bootstrap seed (same votes and seed give the same intervals).

    Returns:
        ``{"rows": [...], "n_votes", "regularized", "method"}``; rows best rating first, each with
        ``model``, ``source``, ``votes``, ``wins``, ``losses``, ``ties``, ``both_bad``,
        ``win_rate`` (wins / (wins + losses), nan without decisive votes), ``win_rate_low/high``,
        ``rating``, ``rating_low/high``.
    """
    keys = sorted({(v["model_a"], v["source_a"]) for v in votes} | {(v["model_b"], v["source_b"]) for v in votes})
    index = {k: i for i, k in enumerate(keys)}
    coded = [(index[(v["model_a"], v["source_a"])], index[(v["model_b"], v["source_b"])], v["vote"])
             for v in votes]
    method = ("Win rate = wins / (wins + losses), 95% Wilson interval. Rating: Bradley–Terry maximum "
              "likelihood (logistic, as Chatbot Arena), 1000 + 400·log10(strength); ties and 'both bad' count as half a "
              f"win each; 95% percentile bootstrap over {n_bootstrap} resamples of the votes.")
    if not keys:
        return {"rows": [], "n_votes": 0, "regularized": False, "method": method}
    log_p, regularized = bradley_terry(win_matrix(coded, len(keys)))
    low, high = _bootstrap_ratings(coded, len(keys), n_bootstrap, seed)
    rows = []
    for k, (model, source) in enumerate(keys):
        mine = [c for c in coded if k in c[:2]]
        wins = sum(1 for a, b, v in mine if (v == "A" and a == k) or (v == "B" and b == k))
        losses = sum(1 for a, b, v in mine if (v == "B" and a == k) or (v == "A" and b == k))
        ties = sum(1 for *_, v in mine if v == "tie")
        bad = sum(1 for *_, v in mine if v == "both bad")
        decisive = wins + losses
        wl, wh = wilson_interval(wins, decisive)
        rows.append({"model": model, "source": source, "votes": len(mine), "wins": wins, "losses": losses,
                     "ties": ties, "both_bad": bad, "win_rate": wins / decisive if decisive else math.nan,
                     "win_rate_low": wl, "win_rate_high": wh, "rating": float(to_rating(log_p[k])),
                     "rating_low": float(low[k]), "rating_high": float(high[k])})
    rows.sort(key=lambda r: -r["rating"])
    return {"rows": rows, "n_votes": len(coded), "regularized": regularized, "method": method}


def _bootstrap_ratings(coded, n_models: int, n_bootstrap: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """2.5% and 97.5% quantiles of the ratings refitted on votes resampled with replacement."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(coded), np.full(len(coded), 1 / len(coded)), size=n_bootstrap)  # (R, V)
    ratings = np.array([to_rating(bradley_terry(win_matrix(coded, n_models, c))[0]) for c in counts])  # (R, M)
    # A model absent from a resample has no rating there (nan): quantiles over the others.
    return np.nanquantile(ratings, 0.025, axis=0), np.nanquantile(ratings, 0.975, axis=0)
