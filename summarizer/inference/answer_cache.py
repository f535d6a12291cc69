"""Identical requests answered once: a bounded cache of finished answers and a table of running ones.

A class all clicking the preloaded example sends the same dialogue with the same settings to the
same slots. The first request computes it; the others that arrive while it runs wait for that one
computation (and see its stream), and later ones get the stored answer. The key is the caller's:
:meth:`summarizer.inference.slots.ModelSlots.answer` builds it from the engine, every slot's source
and a version counter bumped on every change of a slot, the rows and the decoding settings, so an
answer is never served after a slot changed. Every request carries a seed (sampling included),
so a stored sampled answer is the one the same request would compute again.

Gradio's ``gr.cache`` was not used: it caches one function's return values per input tuple, not
the shared in-flight computation with streaming, and the slot state belongs in the key.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Callable, Hashable

from summarizer.inference.batcher import Cancelled

Streams = dict[int, Callable[[str], None]]


class _Running:
    """A computation others wait for: its future and the streams it fans out to."""

    def __init__(self):
        self.future: Future = Future()
        self.listeners: list[Streams] = []
        self.latest: dict[int, str] = {}  # row -> text so far, for listeners that join late
        self.lock = threading.Lock()

    def publish(self, row: int, text: str) -> None:
        with self.lock:
            self.latest[row] = text
            listeners = list(self.listeners)
        for streams in listeners:
            if row in streams:
                streams[row](text)

    def listen(self, streams: Streams) -> None:
        with self.lock:
            self.listeners.append(streams)
            latest = dict(self.latest)
        for row, text in latest.items():
            if row in streams:
                streams[row](text)

    def fan_out(self, rows: int) -> Streams:
        """Streams for the computation itself: every row published to every listener."""
        return {row: (lambda text, row=row: self.publish(row, text)) for row in range(rows)}


class AnswerCache:
    """Finished answers (least recently used dropped beyond ``max_entries``) and running ones.

    Args:
        max_entries: answers kept (each a list of texts; 256 Compare answers are well under 1 MB).

    Attributes:
        computed, served: computations run, and answers served without one (stored or shared).
    """

    def __init__(self, max_entries: int = 256):
        self.max_entries = max_entries
        self._done: OrderedDict[Hashable, list[str]] = OrderedDict()
        self._running: dict[Hashable, _Running] = {}
        self._lock = threading.Lock()
        self.computed = self.served = 0

    def get(self, key: Hashable, rows: int, compute: Callable[[Streams], list[str]],
            streams: Streams | None = None, cancel: threading.Event | None = None) -> list[str]:
        """The answer for ``key``: stored, shared with a running computation, or ``compute(streams)``.

        Args:
            key: what makes two requests identical.
            rows: how many rows (texts) the answer has.
            compute: computes it; called with streams that fan out to every waiting caller.
            streams: this caller's row index -> callback with the row's text so far.
            cancel: this caller's cancel flag.

        Raises:
            Cancelled: this caller's flag was set (another caller's cancel never reaches it: a
                shared computation whose owner cancelled is started again by a waiting caller).
            Exception: what ``compute`` raised.
        """
        streams = streams or {}
        while True:
            with self._lock:
                if key in self._done:
                    self._done.move_to_end(key)
                    self.served += 1
                    answer = list(self._done[key])
                    break
                running = self._running.get(key)
                owner = running is None
                if owner:
                    running = self._running[key] = _Running()
            running.listen(streams)
            if owner:
                answer = self._compute(key, running, rows, compute)
                break
            try:
                answer = _wait(running.future, cancel)
            except Cancelled:
                if cancel is not None and cancel.is_set():
                    raise
                continue  # the owner cancelled: this caller computes it now
            with self._lock:
                self.served += 1
            break
        return answer  # streams saw the text as it grew; the caller shows this final one

    def _compute(self, key, running: _Running, rows: int, compute) -> list[str]:
        try:
            answer = compute(running.fan_out(rows))
        except BaseException as err:
            with self._lock:
                self._running.pop(key, None)
            running.future.set_exception(err)
            raise
        with self._lock:
            self._running.pop(key, None)
            self._done[key] = list(answer)
            self.computed += 1
            while len(self._done) > self.max_entries:
                self._done.popitem(last=False)
        running.future.set_result(answer)
        return answer


def _wait(future: Future, cancel: threading.Event | None) -> list[str]:
    """``future.result()``, given up (:class:`Cancelled`) as soon as ``cancel`` is set."""
    while True:
        try:
            return list(future.result(timeout=0.05))
        except TimeoutError:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled") from None
