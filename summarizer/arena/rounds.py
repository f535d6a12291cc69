"""Same-pairs rounds: the teacher's "Same pairs for everyone", N pairs that every student judges.

Agreement between raters (:mod:`summarizer.arena.agreement`) needs overlap, which random pairs
rarely give. A round fixes N pairs once, when the teacher starts it: N different test
dialogues, two different filled slots for each (every combination of slots in turn, so the
models meet evenly), in a random order that is then the same for everyone, and both summaries,
generated once. While it is open, :func:`next_pair` serves each student (login; without logins,
browser session) the round's pairs in order, each as a served pair of its own (a fresh
``pair_id`` recorded by :meth:`ArenaStore.record_pair`), so votes and ratings keep their rules:
one vote per pair and one rating per summary, per login. A pair a student skipped comes back
once every pair has been shown; when the student has voted on all N, the Arena says so.
When the teacher ends the round (or starts a new class session), random pairs return.

Storage: three tables beside the store's in the same SQLite file (``rounds``, ``round_items``,
``round_pairs``), created on first use.
"""
from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Sequence

from summarizer.arena.store import ArenaError, ArenaStore, ServedPair, pick_models, serve_pair
from summarizer.limits import DEFAULT_MAX_INPUT_TOKENS

MAX_ROUND_PAIRS = 50  # a class period: 50 pairs take a student about half an hour
DEFAULT_ROUND_PAIRS = 10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rounds (
    id TEXT PRIMARY KEY, class_session TEXT NOT NULL, n_pairs INTEGER NOT NULL,
    started_at REAL NOT NULL, ended_at REAL);
CREATE TABLE IF NOT EXISTS round_items (
    round_id TEXT NOT NULL REFERENCES rounds(id), position INTEGER NOT NULL, dialogue_id TEXT NOT NULL,
    dialogue TEXT NOT NULL, prompt TEXT NOT NULL, model_a TEXT NOT NULL, source_a TEXT NOT NULL,
    model_b TEXT NOT NULL, source_b TEXT NOT NULL, summary_a TEXT NOT NULL, summary_b TEXT NOT NULL,
    PRIMARY KEY (round_id, position));
CREATE TABLE IF NOT EXISTS round_pairs (
    pair_id TEXT PRIMARY KEY, round_id TEXT NOT NULL REFERENCES rounds(id), position INTEGER NOT NULL,
    rater TEXT NOT NULL, UNIQUE (round_id, position, rater));
"""


@dataclass(frozen=True)
class RoundItem:
    """One of a round's pairs, the same for every student: ``summary_a`` came from ``model_a`` (a slot)."""

    position: int
    dialogue_id: str
    dialogue: str
    prompt: str
    model_a: str
    source_a: str
    model_b: str
    source_b: str
    summary_a: str
    summary_b: str

    def served_as(self, pair_id: str) -> ServedPair:
        """This item as one student's served pair."""
        fields = asdict(self)
        del fields["position"]
        return ServedPair(pair_id=pair_id, **fields)


def check_n_pairs(n_pairs) -> int:
    """``n_pairs`` as a whole number 1..:data:`MAX_ROUND_PAIRS` (a float such as 10.0 from a number box is fine).

    Raises:
        ArenaError: anything else, naming the field and the range.
    """
    if isinstance(n_pairs, float) and n_pairs.is_integer():
        n_pairs = int(n_pairs)
    if isinstance(n_pairs, str) and n_pairs.strip().isdigit():
        n_pairs = int(n_pairs.strip())
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, int) or not 1 <= n_pairs <= MAX_ROUND_PAIRS:
        raise ArenaError(f"number of pairs must be a whole number from 1 to {MAX_ROUND_PAIRS}; got {str(n_pairs)[:20]!r}.")
    return n_pairs


def rater_key(browser_session: str, login: str) -> str:
    """Whose turn it is: the login, or without logins the browser session (as the store decides whose pair it is)."""
    return f"login:{login}" if login else f"session:{browser_session}"


def model_pairs(filled: Sequence[str], n_pairs: int, rng) -> list[tuple[str, str]]:
    """``n_pairs`` (A, B) slot pairs: every combination of ``filled`` in turn (shuffled), each in a random order.

    Raises:
        ArenaError: fewer than two filled slots (as :func:`~summarizer.arena.store.pick_models`).
    """
    pick_models(filled, rng)  # the same refusal, saying how to fill a slot
    combos = list(itertools.combinations(filled, 2))
    rng.shuffle(combos)
    return [tuple(rng.sample(pair, 2)) for pair in itertools.islice(itertools.cycle(combos), n_pairs)]


def make_items(slots, rows, n_pairs: int, rng, settings, max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS) -> list[RoundItem]:
    """Generate a round's pairs: ``n_pairs`` different dialogues of ``rows``, two slots each, both summaries.

    Args:
        slots: :class:`summarizer.inference.slots.ModelSlots` (two or more filled).
        rows: a DialogSum split (``id``, ``dialogue``); needs at least ``n_pairs`` rows.
        rng: a ``random.Random`` (dialogues, models and their order).
        settings: :class:`summarizer.inference.generation.GenerationSettings` (as for every Arena pair).

    Raises:
        ArenaError: a bad ``n_pairs``, too few dialogues or filled slots; SlotError: a slot cannot be loaded.
    """
    from summarizer.inference.slot_config import SLOTS  # imported here: the store and the statistics need no torch
    from summarizer.prompts import build_prompt  # the zero-shot prompt of serve_pair, Compare and the runs

    n_pairs = check_n_pairs(n_pairs)
    if len(rows) < n_pairs:
        raise ArenaError(f"number of pairs {n_pairs} is more than the {len(rows)} test dialogues; choose fewer.")
    couples = model_pairs([s for s in SLOTS if slots.is_filled(s)], n_pairs, rng)
    chosen = [rows[k] for k in rng.sample(range(len(rows)), n_pairs)]
    prompts = [build_prompt("zero-shot", row["dialogue"], tokenizer=slots.tokenizer, max_tokens=max_input_tokens).text
               for row in chosen]
    summaries: dict[tuple[str, int], str] = {}  # (slot, position) -> summary
    for slot in sorted({s for couple in couples for s in couple}):  # one batched request per slot
        positions = [k for k, couple in enumerate(couples) if slot in couple]
        for k, text in zip(positions, slots.answer([slot], [prompts[k] for k in positions], settings)[slot]):
            summaries[(slot, k)] = text
    return [RoundItem(k, str(row["id"]), row["dialogue"], prompts[k], a, slots.source(a), b, slots.source(b),
                      summaries[(a, k)], summaries[(b, k)]) for k, (row, (a, b)) in enumerate(zip(chosen, couples))]


class SamePairsRounds:
    """The rounds of one :class:`ArenaStore` (its SQLite file); any thread, any number of instances.

    Args:
        store: the Arena's store; the round tables are added to its file if missing.
    """

    def __init__(self, store: ArenaStore):
        self.store = store
        with store._connect() as db:  # same package: one transaction discipline for the whole file
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)

    def start(self, items: Sequence[RoundItem]) -> dict:
        """Open a round of ``items`` in the current class session, closing any open one.

        Returns:
            :meth:`active`'s dict for the new round.

        Raises:
            ArenaError: no items.
        """
        if not items:
            raise ArenaError("a same-pairs round needs at least one pair; choose 1 or more.")
        round_id, now = secrets.token_hex(4), time.time()
        with self.store._connect() as db:
            klass = self.store._current(db)["id"]
            db.execute("UPDATE rounds SET ended_at = ? WHERE ended_at IS NULL", (now,))
            db.execute("INSERT INTO rounds VALUES (?, ?, ?, ?, NULL)", (round_id, klass, len(items), now))
            db.executemany(f"INSERT INTO round_items VALUES ({', '.join('?' * 11)})",
                           [(round_id, *asdict(item).values()) for item in items])
        return self.active()

    def end(self) -> dict | None:
        """Close the open round (random pairs return); returns it as it was, or None when none was open."""
        current = self.active()
        with self.store._connect() as db:
            db.execute("UPDATE rounds SET ended_at = ? WHERE ended_at IS NULL", (time.time(),))
        return current

    def active(self) -> dict | None:
        """The open round of the current class session: ``{"id", "n_pairs", "started_at", "class_session",
        "voted": {rater: pairs voted}}``, or None (no round, or the class session changed since)."""
        with self.store._connect(write=False) as db:
            klass = self.store._current(db)["id"]
            row = db.execute("SELECT id, n_pairs, started_at FROM rounds WHERE ended_at IS NULL AND class_session = ? "
                             "ORDER BY started_at DESC LIMIT 1", (klass,)).fetchone()
            if row is None:
                return None
            voted = dict(db.execute("SELECT rp.rater, COUNT(*) FROM round_pairs rp JOIN votes v ON v.pair_id = rp.pair_id "
                                    "WHERE rp.round_id = ? GROUP BY rp.rater", (row[0],)).fetchall())
        return {"id": row[0], "n_pairs": row[1], "started_at": row[2], "class_session": klass, "voted": voted}

    def items(self, round_id: str) -> list[RoundItem]:
        """The round's pairs in order."""
        with self.store._connect(write=False) as db:
            rows = db.execute("SELECT position, dialogue_id, dialogue, prompt, model_a, source_a, model_b, source_b, "
                              "summary_a, summary_b FROM round_items WHERE round_id = ? ORDER BY position",
                              (round_id,)).fetchall()
        return [RoundItem(*row) for row in rows]

    def next_for(self, browser_session: str, login: str = "") -> ServedPair | None:
        """This student's next pair of the open round, recorded as served to them; None without a round.

        The first pair not yet shown to them; once all were shown, the first they have not voted
        on, under the same ``pair_id`` as before.

        Raises:
            ArenaError: they have voted on every pair of the round (the message says what comes next).
        """
        current = self.active()
        if current is None:
            return None
        rater = rater_key(browser_session, login)
        with self.store._connect(write=False) as db:
            mine = dict(db.execute("SELECT position, pair_id FROM round_pairs WHERE round_id = ? AND rater = ?",
                                   (current["id"], rater)).fetchall())
            voted = {p for (p,) in db.execute("SELECT rp.position FROM round_pairs rp JOIN votes v ON v.pair_id = "
                                              "rp.pair_id WHERE rp.round_id = ? AND rp.rater = ?",
                                              (current["id"], rater))}
        items = self.items(current["id"])
        fresh = [item for item in items if item.position not in mine]
        if fresh:
            return self._serve_new(current["id"], fresh[0], rater, browser_session, login)
        waiting = [item for item in items if item.position not in voted]
        if waiting:
            return waiting[0].served_as(mine[waiting[0].position])
        raise ArenaError(f"You have voted on all {len(items)} pairs of this same-pairs round. Wait for the "
                         "teacher to end it; then New pair serves random pairs again.")

    def _serve_new(self, round_id: str, item: RoundItem, rater: str, browser_session: str, login: str) -> ServedPair:
        """Record ``item`` as served to ``rater`` under a fresh pair_id. Two requests of one student at
        once: the first to claim the item wins, and both get its pair (the other's record stays unused)."""
        pair = item.served_as(secrets.token_urlsafe(18))
        self.store.record_pair(pair, browser_session, login)  # committed first: a claimed pair always exists
        with self.store._connect() as db:
            db.execute("INSERT OR IGNORE INTO round_pairs VALUES (?, ?, ?, ?)",
                       (pair.pair_id, round_id, item.position, rater))
            (winner,) = db.execute("SELECT pair_id FROM round_pairs WHERE round_id = ? AND position = ? AND rater = ?",
                                   (round_id, item.position, rater)).fetchone()
        return pair if winner == pair.pair_id else item.served_as(winner)


def next_pair(rounds: SamePairsRounds, slots, rows, browser_session: str, rng, settings,
              max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS, login: str = "") -> ServedPair:
    """The Arena's next pair: the open same-pairs round's (:meth:`SamePairsRounds.next_for`), else a
    random one (:func:`~summarizer.arena.store.serve_pair` on ``rounds.store``, same arguments)."""
    pair = rounds.next_for(browser_session, login)
    if pair is not None:
        return pair
    return serve_pair(rounds.store, slots, rows, browser_session, rng, settings, max_input_tokens, login=login)
