"""Train inputs the job runner must survive: unresolvable paths, relative paths, huge metrics
files, planted export links, and the cost of one Train refresh.

Nothing here starts a training process: ``subprocess.Popen`` is stubbed where a run would launch.
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from training import registry, run_actions, run_files
from training.jobs import JobRunner

def _small(tiny_t5, dialogsum_dir, **changes) -> dict:
    return {"base_model": str(tiny_t5), "dataset": str(dialogsum_dir), "train_size": 4, "val_size": 0,
            "batch_size": 2, "max_source_tokens": 32, "max_target_tokens": 8, "max_steps": 1, **changes}


def _no_popen(cmd, **kwargs):
    raise OSError("stubbed: not starting a process in this test")


def _plant(root: Path, run_id: str, status: dict, config: dict | None = None) -> Path:
    path = root / run_id
    path.mkdir(parents=True)
    (path / "status.json").write_text(json.dumps({"run_id": run_id, **status}))
    if config is not None:
        (path / "config.json").write_text(json.dumps({**config, "runs_dir": str(root), "run_dir": str(path)}))
    return path


def _loop(folder: Path) -> Path:
    """A symlink loop: ``folder/a -> b -> a``."""
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    return folder / "a"


# ---- finding 2: a huge (sparse) metrics.jsonl is read in bounded chunks ---------------------------
class _CountingFile:
    def __init__(self, f, counter):
        self._f, self._counter = f, counter

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def seek(self, *args):
        return self._f.seek(*args)

    def read(self, n=-1):
        data = self._f.read(n)
        self._counter.append(len(data))
        return data


@pytest.fixture
def read_sizes(monkeypatch):
    sizes: list[int] = []
    real = run_files.open_regular
    monkeypatch.setattr(run_files, "open_regular", lambda path, mode="rb": _CountingFile(real(path, mode), sizes))
    return sizes


def test_huge_sparse_metrics_file_reads_only_its_tail(tmp_path, read_sizes):
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "loss": 1.0 / s} for s in range(1, 101)]
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # 1 GiB of holes: no disk used, but a whole read would need 1 GiB of memory
        f.seek(0, os.SEEK_END)
        f.write(b"\n" + "".join(json.dumps(r) + "\n" for r in rows).encode())
    tail = run_files.MetricsTail(path)
    assert tail.read() == rows
    assert sum(read_sizes) <= run_files.MAX_METRICS_READ + 1
    read_sizes.clear()
    with open(path, "a") as f:
        f.write(json.dumps({"step": 101, "loss": 0.5}) + "\n")
    assert tail.read()[-1] == {"step": 101, "loss": 0.5} and len(tail.rows) == 101
    assert sum(read_sizes) < 100  # only the new line


def test_metrics_chunks_keep_every_row_and_skip_overlong_lines(tmp_path, monkeypatch, read_sizes):
    monkeypatch.setattr(run_files, "MAX_METRICS_READ", 64)
    path = tmp_path / "metrics.jsonl"
    path.write_text("")
    tail = run_files.MetricsTail(path)
    assert tail.read() == []
    lines = [json.dumps({"step": s, "loss": s / 10}) for s in range(1, 41)]
    lines.insert(20, json.dumps({"step": 999, "note": "x" * 500}))  # longer than one read: skipped
    with open(path, "a") as f:
        f.write("\n".join(lines) + "\n")
    for _ in range(200):  # each call reads at most 64 bytes, so catching up takes many calls
        tail.read()
    assert max(read_sizes) <= 65
    assert [r["step"] for r in tail.rows] == list(range(1, 41))
    # a first read that starts mid-file drops the partial first line, never a whole one
    fresh = run_files.MetricsTail(path)
    got = fresh.read()
    assert got and got == tail.rows[-len(got):]


# ---- finding 4: each export in its own private folder --------------------------------------------
def test_export_never_writes_through_a_planted_link(tmp_path):
    from ui.train_handlers import TrainHandlers

    root = tmp_path / "runs"
    run_id = "lora-20260101-000000-417"
    path = _plant(root, run_id, {"state": "completed", "method": "lora"}, {"lora_r": 4})
    (path / "model").mkdir()
    (path / "model" / "adapter_model.safetensors").write_bytes(b"weights")
    victim = tmp_path / "bashrc"
    victim.write_text("precious")
    old = Path(tempfile.gettempdir()) / "studio-exports"  # the fixed shared folder exports used
    old.mkdir(exist_ok=True)
    planted = old / f"{run_id}.zip"
    planted.unlink(missing_ok=True)
    planted.symlink_to(victim)
    try:
        handlers = TrainHandlers(SimpleNamespace(runs_dir=root))
        first, second = (Path(handlers.export_run(run_id)["zip"]) for _ in range(2))
    finally:
        planted.unlink()
    assert victim.read_text() == "precious"
    for out in (first, second):
        assert out.parent.name.startswith("studio-export-") and not out.is_symlink()
        assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700  # mkdtemp: nobody else may plant in it
        assert f"{run_id}/model/adapter_model.safetensors" in zipfile.ZipFile(out).namelist()
    assert first.parent != second.parent
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / f"{run_id}.zip").symlink_to(victim)  # a caller's folder: created exclusively
    with pytest.raises(FileExistsError):
        run_actions.export_run(JobRunner(root), run_id, tmp_path / "out")
    assert victim.read_text() == "precious"


# ---- finding 5: one Train refresh reads each status.json at most once ----------------------------
def test_refresh_reads_each_status_once_however_many_pickers(tmp_path, monkeypatch):
    import summarizer.runs
    from ui.train import _refresher
    from ui.train_monitor import RunReader

    root = tmp_path / "runs"
    ids = [f"lora-20260101-000000-{i:03d}" for i in range(1, 31)]
    for i, run_id in enumerate(ids):
        (_plant(root, run_id, {"state": "completed", "method": "lora", "slot": "lora", "created": i}) / "model").mkdir()
    reads = []
    for module in (summarizer.runs, run_files):
        real = module.read_bytes
        monkeypatch.setattr(module, "read_bytes", lambda p, *a, _real=real: reads.append(Path(p).name) or _real(p, *a))
    runner = JobRunner(root)
    # Three forms with the PPO picker each: the reads must not grow with the number of pickers.
    spec = registry.spec("ppo")
    forms = {f"form{i}": SimpleNamespace(spec=spec, pickers={p.name: None for p in spec.pickers}) for i in range(3)}
    refresh = _refresher(SimpleNamespace(runner=runner, reader=RunReader(runner)), forms)
    out = refresh(None)
    assert reads.count("status.json") == len(ids)  # the listing's own reads, once per run
    choices = [u["choices"] for u in out[6:9]]
    expected = [("fresh adapter", "")] + [(f"{r} (lora)", str(root / r)) for r in reversed(ids)]
    assert choices == [expected] * 3
    reads.clear()
    refresh(ids[0])
    assert reads.count("status.json") == 0  # nothing changed: the status cache answers
