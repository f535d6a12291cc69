"""Pacing of streamed updates: how often each of ``k`` streams running at once sends its newest text.

Used by the Summarize tab (one pacer per app process: its pages' updates share one event loop)
and by each Ray Serve replica (its streams' messages share the replica and the app's handle).
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


class StreamPacer:
    """Spaces the streamed updates of every page that streams a summary at once, so that the
    server sends about :attr:`rate` of them per second in all, whatever the size of the class.

    Each streamed update is serial work on the server (Gradio's thread hop to the generator, its
    postprocessing, diff and server-sent event, all on one event loop), a few milliseconds each
    (``benchmarks/profile_class.py``). A page alone gets every token, as before; with ``k``
    pages streaming, each page gets at most one update per ``k / rate`` seconds (at most
    :attr:`longest_s`), carrying the newest text, so a class of 24 sees about ten updates a
    second per page instead of one per decoding step. The final values are never held back.

    Args:
        rate: streamed updates per second for all pages together.
        longest_s: the longest wait between two updates of one page, in seconds.
    """

    def __init__(self, rate: float = 240.0, longest_s: float = 0.25):
        if rate <= 0 or longest_s < 0:
            raise ValueError(f"StreamPacer: rate must be > 0 and longest_s >= 0, got {rate!r}, {longest_s!r}.")
        self.rate, self.longest_s = rate, longest_s
        self._streaming, self._lock = 0, threading.Lock()

    @contextlib.contextmanager
    def streaming(self) -> Iterator[Callable[[], float]]:
        """Count one more streaming page while the block runs; yields :meth:`interval`."""
        with self._lock:
            self._streaming += 1
        try:
            yield self.interval
        finally:
            with self._lock:
                self._streaming -= 1

    def interval(self, shortest_s: float = 0.0) -> float:
        """Seconds between two updates of one page now: ``shortest_s`` (default 0) for a page alone,
        else ``pages / rate`` within ``[shortest_s, longest_s]``."""
        pages = self._streaming
        return shortest_s if pages <= 1 else max(shortest_s, min(self.longest_s, pages / self.rate))
