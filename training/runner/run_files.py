"""Reading run folders as untrusted data: typed status fields, a status cache keyed by mtime,
metrics read incrementally, the log tail with progress bars collapsed, charts downsampled.

Anything in a runs folder may have been written by someone else (or be half-written), so every
field the app uses is type-checked here and anything else is dropped; the job runner never takes
a command, a pid or a path from these files without checking it (see ``training/runner/jobs.py``).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from summarizer.runs import RUN_ID_RE, SLOTS, open_regular, read_bytes
from summarizer.tasks import TASKS
from training import registry

STATES = ("queued", "running", "completed", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running")
MAX_STATUS_BYTES = 1_000_000  # a real status.json is a few KB
MAX_METRIC_LINE = 100_000
# Bytes of metrics.jsonl read per call: a real run writes about 100 bytes a step, so a few MB
# hold 100,000 steps; this bounds the memory a planted (sparse) multi-GB file can take.
MAX_METRICS_READ = 16 * 2**20
MAX_TEXT = 4000  # characters kept of an error text


def _number(v):
    """A finite int or float (not bool), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return v if math.isfinite(v) else None


def _count(v):
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _text(v):
    return v[:MAX_TEXT] if isinstance(v, str) else None


def _command(v):
    return v if isinstance(v, list) and len(v) < 64 and all(isinstance(a, str) and len(a) < 4096 for a in v) else None


def _method(v):
    return v if isinstance(v, str) and v in registry.methods() else None


def _attempts(v):
    """Earlier attempts of a resumed run: a list of small dicts of checked fields."""
    if not isinstance(v, list) or len(v) > 100:
        return None
    checks = {"state": lambda x: x if x in STATES else None, "error": _text, "started": _number,
              "finished": _number, "step": _count}
    return [{k: c(a[k]) for k, c in checks.items() if k in a and c(a[k]) is not None}
            for a in v if isinstance(a, dict)]


def _metrics(v):
    if not isinstance(v, dict) or len(v) > 100:
        return None
    return {str(k)[:64]: x for k, x in v.items() if _number(x) is not None}


# Every status field the app reads, with its checker (None from a checker drops the field).
STATUS_FIELDS = {
    "state": lambda v: v if v in STATES else None, "method": _method,
    "slot": lambda v: v if v in SLOTS else None, "attempts": _attempts, "accelerate_config": _text,
    "run_id": _text, "created": _number, "seq": _count, "launched": _number, "started": _number,
    "finished": _number, "step": _count, "total_steps": _count, "num_processes": _count,
    "estimate_s": _number, "pid": _count, "pid_created": _number, "worker_pid": _count,
    "cancel_requested": _number, "error": _text, "command": _command, "metrics": _metrics,
    "trainable_params": _count, "total_params": _count, "trainable_percent": _number,
    "queue_position": _count, "task": lambda v: v if v in TASKS else None,
    "step_at": _number, "first_step": _count, "first_step_at": _number,
}


def clean_status(raw) -> dict | None:
    """The fields of ``raw`` (parsed status.json) that have the right type; None unless it is a
    dict with a valid ``state``."""
    if not isinstance(raw, dict):
        return None
    out = {}
    for key, check in STATUS_FIELDS.items():
        if key in raw and raw[key] is not None:
            value = check(raw[key])
            if value is not None:
                out[key] = value
    return out if "state" in out else None


def read_status_file(path: Path) -> dict | None:
    """:func:`clean_status` of the file at ``path``; None when missing, too big or not JSON."""
    try:
        return clean_status(json.loads(read_bytes(path, MAX_STATUS_BYTES)))
    except (OSError, ValueError, RecursionError):
        return None


class StatusCache:
    """Statuses of the run folders in ``root``, re-read only when a status.json's
    (mtime, size, inode) changes. Only direct children whose name is a run id are seen."""

    def __init__(self, root: Path):
        self.root = root
        self._cache: dict[str, tuple[tuple, dict | None]] = {}

    def scan(self, active_only: bool = False) -> dict[str, dict]:
        """run id -> cleaned status (with ``run_id`` and ``run_dir``) of every readable run.

        With ``active_only``, runs already seen in a final state are not looked at again (their
        status no longer changes): the job runner's tick then costs one directory listing plus
        the queued and running runs, however long the history.

        Raises:
            OSError: the runs folder cannot be listed.
        """
        seen = {}
        with os.scandir(self.root) as entries:
            names = [e.name for e in entries if RUN_ID_RE.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
        for name in names:
            cached = self._cache.get(name)
            if active_only and cached and cached[1] and cached[1]["state"] not in ACTIVE_STATES:
                continue
            status = self.get(name)
            if status is not None:
                seen[name] = status
        if not active_only:
            for gone in set(self._cache) - set(names):
                self._cache.pop(gone, None)
        return seen

    def get(self, run_id: str) -> dict | None:
        """The cleaned status of ``run_id`` (a checked run id), read again only if changed."""
        run_dir = os.path.join(self.root, run_id)
        path = os.path.join(run_dir, "status.json")
        try:
            st = os.stat(path)
        except OSError:
            self._cache.pop(run_id, None)
            return None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._cache.get(run_id)
        if cached is None or cached[0] != key:
            status = read_status_file(Path(path))
            if status is not None:
                status = {**status, "run_id": run_id, "run_dir": run_dir}
            cached = (key, status)
            self._cache[run_id] = cached
        return dict(cached[1]) if cached[1] is not None else None


class MetricsTail:
    """metrics.jsonl rows of one run, read incrementally: each call reads only the bytes appended
    since the last one (a shorter or replaced file is read again from the start), at most
    :data:`MAX_METRICS_READ` of them, so a huge (or sparse) file costs bounded memory: the first
    read of one starts near its end, at a line boundary. Rows that are not JSON objects with a
    numeric ``step`` are skipped; a line still being written waits."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict] = []
        self._offset = 0
        self._ino = None
        self._mid_line = False  # the bytes at _offset continue a line we skip

    def read(self) -> list[dict]:
        """The rows so far (the same list, extended)."""
        try:
            st = self.path.stat()
            if st.st_ino != self._ino or st.st_size < self._offset:  # a new file: from its start, or
                huge = st.st_size > MAX_METRICS_READ  # near its end when only the newest rows fit
                self.rows, self._ino, self._mid_line = [], st.st_ino, huge
                self._offset = st.st_size - MAX_METRICS_READ if huge else 0
            if st.st_size == self._offset:
                return self.rows
            back = 1 if self._mid_line else 0  # the byte before: does a line start at _offset?
            with open_regular(self.path) as f:
                f.seek(self._offset - back)
                data = f.read(MAX_METRICS_READ + back)
        except OSError:
            return self.rows
        self._parse(data, full=len(data) == MAX_METRICS_READ + back)
        return self.rows

    def _parse(self, data: bytes, full: bool) -> None:
        """Append the whole lines of ``data`` (read at ``_offset``, or the byte before it when
        ``_mid_line``; ``full``: as many bytes as one read takes) and move ``_offset`` past them."""
        start = 0
        if self._mid_line:
            cut = data.find(b"\n")
            if cut < 0:  # still inside an over-long line: skip what was read
                self._offset += len(data) - 1
                return
            self._offset += cut  # data[0] was the byte before _offset
            start, self._mid_line = cut + 1, False
        end = data.rfind(b"\n") + 1
        if end <= start:
            if full:  # a line longer than one read: skip it rather than wait for it forever
                self._offset += len(data) - start
                self._mid_line = True
            return
        self._offset += end - start
        for line in data[start:end].splitlines():
            row = _metric_row(line)
            if row is not None:
                self.rows.append(row)


def _metric_row(line: bytes) -> dict | None:
    if len(line) > MAX_METRIC_LINE:
        return None
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(row, dict) or _number(row.get("step")) is None:
        return None
    return {str(k): v for k, v in row.items() if _number(v) is not None}


def downsample(rows: list, limit: int = 500) -> list:
    """At most ``limit`` evenly spaced items of ``rows``, always keeping the first and the last."""
    if len(rows) <= limit:
        return rows
    stride = (len(rows) - 1) / (limit - 1)
    return [rows[round(i * stride)] for i in range(limit)]


def collapse_progress(text: str, lines: int = 60) -> str:
    """The last ``lines`` lines of a log, each line shown as a terminal would: only the text after
    its last carriage return (tqdm-style progress bars redraw with ``\\r``)."""
    out = []
    for line in text.split("\n"):
        parts = [p for p in line.split("\r") if p.strip()]
        out.append(parts[-1] if parts else "")
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out[-lines:])
