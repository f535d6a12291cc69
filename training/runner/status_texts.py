"""Texts the job runner shows users: why a run failed or stopped, why the runs folder cannot be
used. Causes only (one line from the log at most); tracebacks and paths stay in train.log."""
from __future__ import annotations

import re
import signal
from pathlib import Path

from summarizer.runs import RunFolder

OOM_ADVICE = "try a smaller batch size, shorter max tokens, or a smaller base model."
_OOM_EVIDENCE = re.compile(r"out of memory|MemoryError|\bOOM\b|Killed process|oom-kill", re.IGNORECASE)
_CAUSE_LINE = re.compile(r"^\s*(?:[\w.]+(?:Error|Exception|Interrupt)\b.*|.*\berror: .*)$")


def folder_message(root: Path, err: OSError, doing: str) -> str:
    """A user message for ``err`` raised while ``doing`` something in the runs folder ``root``."""
    why = {28: "the disk is full", 30: "it is on a read-only file system", 13: "permission denied",
           20: "a part of its path is a file, not a folder", 2: "it does not exist",
           122: "the disk quota is exceeded"}.get(err.errno, err.strerror or type(err).__name__)
    return (f"The runs folder {root} cannot be used ({why}) while {doing}. Training is unavailable "
            "until this is fixed: free disk space or fix its permissions, or restart the app with "
            "--runs-dir (or STUDIO_RUNS_DIR) naming a writable folder.")


def cancel_text(code: int | None, killed: bool, grace_s: float) -> str:
    """Why a cancelled run's process ended: killed by us after the grace period, SIGTERM during
    start-up (before the stop handler was installed), or an unknown or other exit."""
    if killed:
        return f"stopped on request (process group killed after the {grace_s:g} s grace period)"
    if code == -signal.SIGTERM:
        return "stopped on request (SIGTERM arrived during start-up, before training began)"
    if code is None:
        return "stopped on request (not started by this app process; its exit status is unknown)"
    return f"stopped on request (the process ended with {exit_text(code)} before recording it)"


def exit_text(code: int) -> str:
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def failure_reason(run: RunFolder, status: dict, code: int | None) -> str:
    """Why a running run's process is gone, for the user: what happened and the cause found in
    its log (one line, no traceback; train.log keeps everything)."""
    tail = run.log_tail(8000)
    pid = status.get("pid")
    if code is None:
        what = (f"Process {pid} is gone without finishing (not started by this app process, "
                "so its exit status is unknown).")
    elif code == -signal.SIGKILL:
        what = (f"Process {pid} was killed by SIGKILL: out of memory (its log says so); {OOM_ADVICE}"
                if _OOM_EVIDENCE.search(tail) else
                f"Process {pid} was killed by SIGKILL (by a user, the OOM killer or the system).")
    elif code == -signal.SIGTERM:
        what = f"Process {pid} was stopped by SIGTERM (not by the studio's Cancel button)."
    elif code < 0:
        what = f"Process {pid} was killed by {exit_text(code)}."
    else:
        what = f"Process {pid} exited with code {code} without finishing."
    causes = [line.strip() for line in tail.splitlines() if _CAUSE_LINE.match(line)]
    cause = f" Cause: {causes[-1][:300]}" if causes else ""
    return f"{what}{cause} Details in train.log."
