"""Cross-request batching: generation requests that arrive together run as one batch.

A class of 24 students pressing Summarize at once used to wait 22x one summary, every request
queued behind all others. :class:`RequestBatcher` keeps one worker thread per set of slots; a
request (``(slot, prompt)`` rows and settings) waits in its queue, and when the model is free the
worker takes the oldest waiting request and those that can share its batch
(:func:`~summarizer.inference.generation.batch_key`: greedy with the same lengths, beam with the
same beams; a sampled request runs alone so that its seed reproduces it), up to
:attr:`BatchLimits.max_rows` rows and :attr:`BatchLimits.max_tokens` prompt tokens: the shortest
or the longest prompts, whichever end holds the oldest, as length-sorted batches would (else the
closest to it in length), so little of this batch or the next is padding. It runs them as one
``generate_rows`` call of the engine: one mixed base/adapter batch on the torch path (peft's
``adapter_names``), one ``translate_batch`` per slot on CTranslate2. When the model was idle, the
worker first waits :attr:`BatchLimits.window_s` for requests arriving at the same moment, and
longer while they keep arriving (:attr:`BatchLimits.longest_wait_s`).

Why not Gradio's ``batch=True``: it has no waiting window (it batches only what is already in
its queue), refuses generator handlers (Prompting streams), takes one event's inputs only (so
Prompting, Compare and Arena requests could not share a batch) and would need every handler
rewritten to lists. Batching in the slot layer serves every caller of the slots alike.

Each request keeps its own cancel flag (a cancelled request leaves the queue, or stops waiting
for a batch that is already running without stopping the others), its own stream callbacks and
its result; a batch that fails is retried request by request, so one request's error (an empty
slot, a model that does not load) reaches only the requests that share its cause.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Sequence

from summarizer.inference.generation import GenerationSettings, batch_key
from summarizer.limits import DEFAULT_MAX_INPUT_TOKENS

Rows = Sequence[tuple[str, str]]


class Cancelled(RuntimeError):
    """The request's cancel flag was set before its summaries were ready."""


@dataclass(frozen=True)
class BatchLimits:
    """How requests are merged.

    Attributes:
        window_s: seconds the worker waits, when the model was idle, for requests arriving
            together (a class pressing the button at once arrives within tens of milliseconds).
        longest_wait_s: while more requests keep arriving (one within each ``window_s``) and the
            batch is not full, the worker waits another window, up to this many seconds from the
            first: a class's clicks reach the batcher over more than one window (Gradio starts
            its events one after another), and with one window the first batch took only those
            that came first (with the base shape and 30 sessions, the median answer came at 6.4x
            one summary with this wait and the packing below, 8.9x without;
            docs/benchmarks-overhead.md). A request alone still waits one window only.
        max_rows: most (slot, prompt) rows in one batch. On a CPU a batch's cost grows almost
            linearly with its rows once they are a handful (every row's prompt goes through the
            encoder; the weights are read once per step for all), so bigger batches save little
            while the first requests wait for the last: 16 rows (16 Summarize or 4 Compare
            requests), and the rest in the next batch.
        max_tokens: most prompt tokens in one batch (rows x their prompt lengths), which bounds
            the memory of one encoder pass: 16 rows of the default input limit (:data:`summarizer.limits.DEFAULT_MAX_INPUT_TOKENS`).
    """

    window_s: float = 0.03
    longest_wait_s: float = 0.3
    max_rows: int = 16
    max_tokens: int = 16 * DEFAULT_MAX_INPUT_TOKENS


@dataclass
class Request:
    """One caller's rows, waiting for (or in) a batch.

    Attributes:
        rows: (slot, prompt) pairs.
        settings: decoding settings.
        tokens: prompt tokens of all rows (for :attr:`BatchLimits.max_tokens`).
        cancel: set by the caller to withdraw the request.
        streams: row index -> called with that row's text so far (greedy and sampling).
        on_start: called with the number of requests in its batch when the batch starts.
    """

    rows: list[tuple[str, str]]
    settings: GenerationSettings
    tokens: int = 0
    cancel: threading.Event | None = None
    streams: dict[int, Callable[[str], None]] = field(default_factory=dict)
    on_start: Callable[[int], None] | None = None
    future: Future = field(default_factory=Future)

    @property
    def key(self) -> tuple:
        return batch_key(self.settings)

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


class RequestBatcher:
    """Merges concurrent generation requests into shared batches on one worker thread.

    Args:
        run: ``run(rows, settings, streams) -> texts`` generates one batch (the slots' engine
            under the slots' lock); rows of several requests, concatenated.
        limits: window and caps (:class:`BatchLimits`).

    Attributes:
        batches: how many batches ran, and ``rows``: how many rows they held (for the tests and
            the benchmark).
    """

    def __init__(self, run: Callable[[list, GenerationSettings, dict], list[str]],
                 limits: BatchLimits | None = None):
        self.run, self.limits = run, limits or BatchLimits()
        self._pending: deque[Request] = deque()
        self._wake = threading.Condition()
        self._worker: threading.Thread | None = None
        self.batches = self.rows = 0

    def submit(self, request: Request) -> list[str]:
        """Queue ``request`` and wait for its texts (one per row, in row order).

        Raises:
            Cancelled: its cancel flag was set first.
            Exception: whatever generating its rows raised (e.g. ``SlotError``).
        """
        with self._wake:
            self._pending.append(request)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._loop, name="request-batcher", daemon=True)
                self._worker.start()
            self._wake.notify()
        while True:  # poll the cancel flag: a cancelled caller stops waiting, the batch goes on
            try:
                return request.future.result(timeout=0.05)
            except TimeoutError:
                if request.cancelled():
                    raise Cancelled("cancelled") from None

    # ---- the worker ---------------------------------------------------------------------------
    def _loop(self) -> None:
        idle = True
        while True:
            with self._wake:
                while not self._pending:
                    if not self._wake.wait(timeout=30):  # nothing for 30 s: the thread ends
                        self._worker = None
                        return
                    idle = True
            if idle:
                self._gather()
            batch = self._take_batch()
            if batch:
                self._run_batch(batch)
            idle = False

    def _gather(self) -> None:
        """Let the rest of a class's clicks arrive: wait one window, and another while requests
        keep arriving and fewer than ``max_rows`` rows wait, up to ``longest_wait_s`` in all."""
        started, limits = time.monotonic(), self.limits
        with self._wake:
            seen = len(self._pending)
        while True:
            time.sleep(limits.window_s)
            with self._wake:
                waiting, rows = len(self._pending), sum(len(r.rows) for r in self._pending)
            if waiting <= seen or rows >= limits.max_rows or time.monotonic() - started >= limits.longest_wait_s:
                return
            seen = waiting

    def _take_batch(self) -> list[Request]:
        """The oldest waiting request and every later one that can share its batch, within the caps."""
        with self._wake:
            live = [r for r in self._pending if not r.cancelled()]
            for r in self._pending:
                if r.cancelled():
                    r.future.set_exception(Cancelled("cancelled"))
            self._pending = deque(live)
            if not live:
                return []
            first = live[0]  # the oldest always goes first: nobody waits for ever
            batch = self._packed(first, [r for r in live if r.key == first.key])
            for r in batch:
                self._pending.remove(r)
            return batch

    def _packed(self, first: Request, same: list[Request]) -> list[Request]:
        """``first`` and the requests of ``same`` (those that can share its batch, ``first`` among
        them) that make the least padding, within the caps: the shortest prompts if ``first`` is
        among them, else the longest if it is among those (so what is left is of like lengths
        too, as in length-sorted batches), else those closest to ``first`` in prompt length."""
        by_length = sorted(same, key=lambda r: r.tokens)
        for end in (by_length, by_length[::-1]):  # the shortest prompts, then the longest
            batch = self._fill([first] + [r for r in end if r is not first])
            if {id(r) for r in batch} == {id(r) for r in end[:len(batch)]}:  # first is at that end
                return batch
        closest = sorted((r for r in same if r is not first), key=lambda r: abs(r.tokens - first.tokens))
        return self._fill([first] + closest)

    def _fill(self, candidates: list[Request]) -> list[Request]:
        """The first of ``candidates`` and each next one that fits :attr:`limits` (rows, tokens)."""
        batch, rows, tokens = [], 0, 0
        for r in candidates:
            fits = rows + len(r.rows) <= self.limits.max_rows and tokens + r.tokens <= self.limits.max_tokens
            if not batch or fits:
                batch.append(r)
                rows, tokens = rows + len(r.rows), tokens + r.tokens
        return batch

    def _run_batch(self, batch: list[Request]) -> None:
        rows, streams, offsets = [], {}, []
        for r in batch:
            offsets.append(len(rows))
            streams.update({len(rows) + i: s for i, s in r.streams.items()})
            rows.extend(r.rows)
        for r in batch:
            if r.on_start:
                r.on_start(len(batch))
        try:
            texts = self.run(rows, batch[0].settings, streams)
        except Exception as err:  # noqa: BLE001 - retried alone, so each request gets its own outcome
            if len(batch) == 1:
                batch[0].future.set_exception(err)
                return
            for r in batch:
                self._run_batch([r])
            return
        self.batches, self.rows = self.batches + 1, self.rows + len(rows)
        for r, start in zip(batch, offsets):
            if not r.future.done():
                r.future.set_result(texts[start:start + len(r.rows)])
