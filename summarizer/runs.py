"""Reading finished training runs from a runs folder (the contract shared with ``training/``).

Each run lives in ``<runs_dir>/<run_id>/`` with ``status.json`` (``{"state": ..., "method": ...}``,
state one of queued/running/completed/failed/cancelled, method one of full/lora/ppo) and, once
completed, its model or adapter in ``<run_id>/model/``. This module only reads; the job runner in
``training/`` writes.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_RUNS_DIR = "runs"
# Which Compare slot each training method's output fills.
METHOD_SLOT = {"full": "full", "lora": "lora", "ppo": "detox"}
# A run id as the job runner makes it: <method>-YYYYmmdd-HHMMSS-<milliseconds>.
RUN_ID_RE = re.compile(r"(full|lora|ppo)-[0-9]{8}-[0-9]{6}-[0-9]{3}")
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
                         f"such as {RUN_ID_EXAMPLE} (method full, lora or ppo).")
    return run_id


def runs_dir(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$STUDIO_RUNS_DIR``, else ``./runs``."""
    return Path(path or os.environ.get("STUDIO_RUNS_DIR") or DEFAULT_RUNS_DIR).expanduser()


@dataclass(frozen=True)
class FinishedRun:
    """A completed run whose model can fill a slot.

    Attributes:
        run_id: the run folder's name.
        method: ``full``, ``lora`` or ``ppo``.
        slot: the slot it fills (``full``, ``lora`` or ``detox``).
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
        status = json.loads((run / "status.json").read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return status if isinstance(status, dict) else None  # untrusted: a list is no status


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
        method = status.get("method", "")
        run_slot = METHOD_SLOT.get(method) if isinstance(method, str) else None
        if run_slot and (slot is None or slot == run_slot):
            found.append(FinishedRun(run.name, method, run_slot, run))
    return found


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed while listing
        return 0.0
