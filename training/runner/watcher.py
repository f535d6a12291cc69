"""The job runner's watcher: a daemon thread that ticks it, so the queue advances without a
browser open; errors (a full or read-only disk, a vanished folder) are logged once per distinct
message instead of once a second.

    errors = ErrorLog()
    thread = start(runner.tick, errors, interval_s=1.0)
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable


class ErrorLog:
    """Prints a message to stderr unless it is the same as the last one printed."""

    def __init__(self):
        self.last: str | None = None

    def __call__(self, message: str) -> None:
        if message != self.last:
            print(message, file=sys.stderr)
            self.last = message


def start(tick: Callable[[], None], errors: ErrorLog, interval_s: float = 1.0) -> threading.Thread:
    """Call ``tick`` every ``interval_s`` seconds in a daemon thread (started, returned); an
    exception is logged through ``errors`` and the loop goes on."""

    def loop():
        while True:
            try:
                tick()
                errors.last = None  # a later failure is news again
            except Exception as err:  # noqa: BLE001 - the watcher must outlive any one bad tick
                errors(f"job runner: {type(err).__name__}: {err}")
            time.sleep(interval_s)

    thread = threading.Thread(target=loop, name="job-runner", daemon=True)
    thread.start()
    return thread
