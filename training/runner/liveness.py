"""Is a run's training process alive? The ``<run>/.alive`` lock, and the runs folder's
``.runner.lock``.

    alive = liveness.hold(run.path)      # the training process, for its whole life
    liveness.holder(run.path)            # the app: "pid 123" while held, None once it ended

The job runner signals only processes it started (pid, start time and marker all match), so
a run started elsewhere (``python -m training.lora`` on the command line, or resumed there with
``--config``) cannot be told apart from a dead one by its pid. Its lock can: the process that
trains a run holds an exclusive ``flock`` on ``.alive`` from before its first status write until
it exits, and the kernel drops the lock however the process ends (crash, SIGKILL, OOM). A file
planted in a run folder holds no lock, so a planted status still never keeps a run "alive".

Every file here is opened without following symlinks and only if it is a regular file (run
folders are untrusted, see ``summarizer/runs.py``), and nothing here ever waits on a lock.
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from pathlib import Path
from typing import BinaryIO

from summarizer.runs import open_regular

ALIVE_FILE = ".alive"
MAX_PID_TEXT = 32  # the holder writes its pid and a newline


def open_lock(path) -> BinaryIO:
    """Open (creating it, mode 0600) the lock file ``path`` for writing: never through a
    symlink, never a FIFO or a device, never blocking.

    Raises:
        OSError: ``path`` is a symlink (ELOOP), not a regular file (EINVAL), or cannot be created.
    """
    # 0600, not open_regular's 0644: another user could otherwise open it and hold a lock on it.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{path} is not a regular file")
    return os.fdopen(fd, "ab")


def try_lock(f) -> bool:
    """Take an exclusive lock on the open file ``f`` if free; False (at once) if another holds it."""
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def holder(run_dir) -> str | None:
    """Who holds ``<run_dir>/.alive``: ``"pid N"`` (the pid its holder wrote; ``"an unknown
    pid"`` if unreadable), or None when no process holds it (missing, a symlink or not a regular
    file: nothing planted counts). For messages only: the pid is never signalled."""
    try:
        f = open_regular(Path(run_dir) / ALIVE_FILE, "rb")
    except OSError:
        return None
    with f:
        try:
            # Shared, so that two apps probing at once do not see each other as the holder.
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = f.read(MAX_PID_TEXT).strip()
            return f"pid {int(text)}" if text.isdigit() and len(text) <= 10 else "an unknown pid"
        except OSError:
            return None
        return None  # closing the file releases our probe's lock


def hold(run_dir, wait_s: float = 2.0) -> BinaryIO:
    """Take ``<run_dir>/.alive`` for this process (write its pid there); keep the returned file
    open for as long as the process trains the run. Retries for ``wait_s`` seconds: an app's
    :func:`holder` probe holds the lock for a moment.

    Raises:
        SystemExit: another process is already training this run, or ``.alive`` is a symlink or
            not a regular file (the message names the run folder and what to do).
    """
    path = Path(run_dir) / ALIVE_FILE
    try:
        f = open_lock(path)
    except OSError as err:
        raise SystemExit(f"Cannot open {path} ({err.strerror or err}): it must be a regular file, not a "
                         "symlink; remove it and start the run again.") from err
    end = time.monotonic() + wait_s
    while not try_lock(f):
        if time.monotonic() > end:
            f.close()
            raise SystemExit(f"The run in {run_dir} is already being trained by another process "
                             f"({holder(run_dir) or 'an unknown pid'}); wait for it to end or cancel it, "
                             "then start it again.")
        time.sleep(0.05)
    os.ftruncate(f.fileno(), 0)  # O_APPEND: the pid is then written at offset 0
    f.write(f"{os.getpid()}\n".encode())
    f.flush()
    return f
