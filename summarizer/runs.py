"""Training run folders: the contract shared by the job runner, the training child, the CLI and
the app (``training/`` writes them; the Compare and Evaluate tabs read finished ones).

Run folder::

    <runs_dir>/<run_id>/            run id: <method>-YYYYmmdd-HHMMSS-<milliseconds>
        config.json     the method's config (every field), as given to --config
        status.json     state (queued/running/completed/failed/cancelled), method, slot, task
                        (summarizer.tasks; also in config.json), pid, times, step/total_steps,
                        error, final metrics, attempts (resumed runs)
        metrics.jsonl   one JSON object per logged step (a resumed attempt appends)
        train.log       stdout and stderr of the run
        tensorboard/    TensorBoard events (fine-tuning)
        checkpoints/    Trainer checkpoints (every save_steps, the last save_total_limit kept)
        model.tmp/      the model while it is written; renamed to model/ only when complete
        model/          the finished model (full) or peft adapter (lora, ppo), safetensors
        README.md       model card: config and final metrics
        cancel          written by the job runner to ask for a graceful stop
        .alive          locked (flock) by the process training the run (training/runner/liveness.py)

``status.json`` names the Compare slot the run's model fills (``slot``); runs written before it
did fall back to :data:`METHOD_SLOT`. This module has no ``training`` import (floors: ui →
training → summarizer); the methods themselves are registered in ``training/registry.py``.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_RUNS_DIR = "runs"
SLOTS = ("full", "lora", "detox")  # the Compare slots a run can fill
# Slots of runs whose status.json predates the ``slot`` field (new runs record their own).
METHOD_SLOT = {"full": "full", "lora": "lora", "ppo": "detox"}
FINAL_STATES = ("completed", "failed", "cancelled")
# A run id as the job runner makes it: <method>-YYYYmmdd-HHMMSS-<milliseconds>; the method part
# is a lower-case name (the job runner allows only registered methods).
RUN_ID_RE = re.compile(r"[a-z][a-z0-9_]{0,19}-[0-9]{8}-[0-9]{6}-[0-9]{3}")
RUN_ID_EXAMPLE = "lora-20260131-142501-123"


def check_run_id(run_id) -> str:
    """``run_id`` if it is a run id (``<method>-YYYYmmdd-HHMMSS-mmm``), so that it can only name
    a direct child of a runs folder (no ``..``, ``/`` or absolute path).

    Raises:
        ValueError: anything else; the message names ``run_id`` and the expected form.
    """
    if not isinstance(run_id, str):
        raise ValueError(f"run_id must be a string like {RUN_ID_EXAMPLE}, got {type(run_id).__name__}.")
    if not run_id.strip():
        raise ValueError("run_id is empty: pick a run from the list.")
    if not RUN_ID_RE.fullmatch(run_id):
        shown = run_id[:60].encode("unicode_escape", "replace").decode("ascii")
        raise ValueError(f"run_id {shown!r} is not a run id: expected <method>-YYYYmmdd-HHMMSS-mmm "
                         f"such as {RUN_ID_EXAMPLE} (method in lower case, e.g. full, lora or ppo).")
    return run_id


def runs_dir(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$STUDIO_RUNS_DIR``, else ``./runs``."""
    return Path(path or os.environ.get("STUDIO_RUNS_DIR") or DEFAULT_RUNS_DIR).expanduser()


def new_run_id(method: str) -> str:
    """``<method>-YYYYmmdd-HHMMSS-<ms>``: sortable and unique enough for one machine."""
    now = time.time()
    return f"{method}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}-{int(now * 1000) % 1000:03d}"


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as JSON atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=2, default=str))
        os.replace(tmp, path)
    except BaseException:  # a full disk: leave no half-written temporary file behind
        tmp.unlink(missing_ok=True)
        raise


MAX_JSON_BYTES = 1_000_000  # status.json and config.json are a few KB


def open_regular(path, mode: str = "rb"):
    """Open a file of a run folder only if it is a regular file and not a symlink.

    Run folders are untrusted: a planted ``train.log -> ~/.ssh/id_rsa`` must not be read back to a
    client, a ``config.json -> /dev/zero`` must not hang the runner, and a planted link must not
    make us append to another file. ``mode`` is ``"rb"`` or ``"ab"``.

    Raises:
        OSError: missing, a symlink (ELOOP), or not a regular file.
    """
    flags = os.O_NOFOLLOW | os.O_NONBLOCK | (os.O_RDONLY if mode == "rb" else os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    fd = os.open(path, flags, 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{path} is not a regular file")
    return os.fdopen(fd, mode)


def read_bytes(path, limit: int = MAX_JSON_BYTES) -> bytes:
    """At most ``limit`` bytes of a run-folder file (:func:`open_regular`).

    Raises:
        OSError: as :func:`open_regular`, or the file is over ``limit`` bytes (EFBIG).
    """
    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"{path} is over {limit:,} bytes")
    return data


def read_json(path: Path, default=None, limit: int = MAX_JSON_BYTES):
    """Parsed JSON of ``path`` (a regular file of at most ``limit`` bytes), or ``default``."""
    try:
        return json.loads(read_bytes(path, limit))
    except (OSError, ValueError, RecursionError):
        return default


class RunFolder:
    """Reads and writes one run folder (see the module docstring for its layout)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    config_file = property(lambda self: self.path / "config.json")
    status_file = property(lambda self: self.path / "status.json")
    metrics_file = property(lambda self: self.path / "metrics.jsonl")
    log_file = property(lambda self: self.path / "train.log")
    model_tmp = property(lambda self: self.path / "model.tmp")
    model_dir = property(lambda self: self.path / "model")
    cancel_file = property(lambda self: self.path / "cancel")
    checkpoints = property(lambda self: self.path / "checkpoints")

    @property
    def run_id(self) -> str:
        return self.path.name

    def status(self) -> dict:
        """The parsed status.json (``{}`` when missing, unreadable or not a JSON object)."""
        status = read_json(self.status_file, {})
        return status if isinstance(status, dict) else {}

    def update_status(self, **values) -> dict:
        """Merge ``values`` into ``status.json`` (atomic write) and return the new status."""
        status = {**self.status(), **values}
        write_json(self.status_file, status)
        return status

    def record_step(self, step: int, total_steps: int) -> dict:
        """Note that the run reached optimizer ``step`` of ``total_steps`` now: ``step``,
        ``total_steps``, ``step_at`` (Unix seconds) and, the first time in this attempt,
        ``first_step`` and ``first_step_at``, from which the remaining time is measured
        (``training.runner.estimate.measured_remaining``) without the start-up and loading."""
        now, status = time.time(), self.status()
        first = {} if isinstance(status.get("first_step_at"), (int, float)) else {"first_step": step, "first_step_at": now}
        return self.update_status(step=step, total_steps=total_steps, step_at=now, **first)

    def append_metrics(self, row: dict) -> None:
        """Append one JSON line to ``metrics.jsonl`` (one ``write`` call, so readers see whole lines)."""
        with open_regular(self.metrics_file, "ab") as f:
            f.write((json.dumps(row, default=float) + "\n").encode())

    def metrics(self) -> list[dict]:
        """Every whole JSON line of ``metrics.jsonl`` (a line being written is skipped)."""
        rows = []
        try:
            lines = read_bytes(self.metrics_file, 200_000_000).decode("utf-8", "replace").splitlines()
        except OSError:
            return rows
        for line in lines:
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line being written right now
                continue
        return rows

    def log_tail(self, chars: int = 20_000) -> str:
        """The last ``chars`` bytes of train.log, decoded (``""`` when there is none)."""
        try:
            with open_regular(self.log_file) as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - chars))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def last_checkpoint(self) -> Path | None:
        """The newest ``checkpoints/checkpoint-<step>`` folder, or None."""
        try:
            found = [p for p in self.checkpoints.iterdir()
                     if p.is_dir() and not p.is_symlink() and re.fullmatch(r"checkpoint-[0-9]+", p.name)]
        except OSError:
            return None
        return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)

    def discard_model(self) -> None:
        shutil.rmtree(self.model_tmp, ignore_errors=True)


@dataclass(frozen=True)
class FinishedRun:
    """A completed run whose model can fill a slot.

    Attributes:
        run_id: the run folder's name.
        method: the training method (``full``, ``lora``, ``ppo``, ...).
        slot: the slot it fills (one of :data:`SLOTS`).
        path: the run folder (a slot source; the model is in ``path/model``).
    """

    run_id: str
    method: str
    slot: str
    path: Path

    @property
    def label(self) -> str:
        return f"{self.run_id} ({self.method})"


def read_status(run: Path) -> dict | None:
    """The run's ``status.json`` as a dict, or None if missing or unreadable."""
    try:
        status = json.loads(read_bytes(run / "status.json"))
    except (OSError, ValueError, RecursionError):
        return None
    return status if isinstance(status, dict) else None  # untrusted: a list is no status


def run_slot(status: dict) -> str | None:
    """The slot a run fills: its status's ``slot`` if it is one of :data:`SLOTS`, else the slot of
    its method in :data:`METHOD_SLOT` (older runs), else None."""
    slot, method = status.get("slot"), status.get("method")
    if isinstance(slot, str) and slot in SLOTS:
        return slot
    return METHOD_SLOT.get(method) if isinstance(method, str) else None


def finished_runs(root: str | os.PathLike | None = None, slot: str | None = None) -> list[FinishedRun]:
    """Completed runs with a model folder, newest first; only those for ``slot`` if given."""
    root = runs_dir(root)
    found = []
    if not root.is_dir():
        return found
    for run in sorted(root.iterdir(), key=_mtime, reverse=True):
        status = read_status(run) if run.is_dir() and not run.is_symlink() else None
        if not status or status.get("state") != "completed" or not (run / "model").is_dir():
            continue
        method, found_slot = status.get("method", ""), run_slot(status)
        if found_slot and isinstance(method, str) and (slot is None or slot == found_slot):
            found.append(FinishedRun(run.name, method, found_slot, run))
    return found


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed while listing
        return 0.0
