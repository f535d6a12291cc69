"""Graceful stop and process ranks: a stop request (signal or cancel file) agreed by every
process of a run, and which process is the main one (it alone writes the run folder)."""
from __future__ import annotations

import logging
import os
import signal
import threading

from summarizer.runs import RunFolder

log = logging.getLogger("training")


class StopFlag:
    """Set by SIGTERM/SIGINT or by a ``cancel`` file in the run folder.

    The training loops check :meth:`requested` once per step, so a stop takes effect at the
    next step boundary (LLaMA-Factory's callbacks do the same). A second Ctrl-C stops at once.
    """

    def __init__(self, run: RunFolder | None = None):
        self.run = run
        self._event = threading.Event()

    def install(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        return self

    def _on_signal(self, signum, frame):
        if self._event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.warning("Received %s: stopping after the current step.", signal.Signals(signum).name)
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def requested(self) -> bool:
        if not self._event.is_set() and self.run is not None and self.run.cancel_file.exists():
            log.warning("Cancel file found: stopping after the current step.")
            self._event.set()
        return self._event.is_set()


def agreed_stop(stop: StopFlag) -> bool:
    """``stop.requested()`` agreed over all processes (max), so every rank stops at the same step."""
    import torch
    import torch.distributed as dist

    flag = stop.requested()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        flag = bool(t.item())
        if flag:
            stop.set()
    return flag


def is_main_process() -> bool:
    """True in the process of rank 0 (``$RANK``, set by accelerate/torchrun; 0 when unset)."""
    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    """Number of processes of this run (``$WORLD_SIZE``; 1 when unset)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def cpu_only() -> bool:
    """True when no CUDA device is visible (several processes then talk over gloo)."""
    import torch

    return not torch.cuda.is_available()


def mean_over_processes(value: float) -> float:
    """The mean of ``value`` over all processes (every rank must call it at the same point);
    ``value`` itself with one process. Idempotent: a value already equal on every rank stays."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return value
    t = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.item() / dist.get_world_size()
