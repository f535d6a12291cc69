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

from training.runner import estimate, launch
from training import lora, registry
from training.runner import run_actions, run_files
from training.config import parse_config
from training.runner.jobs import JobRunner, PROJECT_ROOT

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


# ---- finding 1: ~user and symlink loops are named refusals, never RuntimeError ---------------------
def test_unresolvable_paths_are_refused_by_name(tiny_t5, dialogsum_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("training.runner.jobs.subprocess.Popen", _no_popen)
    root = tmp_path / "runs"
    runner = JobRunner(root)
    loop = _loop(tmp_path)
    cases = [("base_model", {"base_model": "~nosuchuser/m"}), ("dataset", {"dataset": "~nosuchuser/d"}),
             ("base_model", {"base_model": str(loop / "m")}), ("dataset", {"dataset": str(loop / "d")})]
    for field, change in cases:
        with pytest.raises(ValueError, match=field):
            runner.submit("lora", _small(tiny_t5, dialogsum_dir, **change))
        # the Train tab's estimate reads the same value before submit: it must not raise either
        assert estimate.estimate("lora", _small(tiny_t5, dialogsum_dir, **change)).seconds > 0
    with pytest.raises(ValueError, match="start_adapter"):
        runner.submit("ppo", _small(tiny_t5, dialogsum_dir, start_adapter=str(loop), mini_batch_size=2))
    for path in ("~nosuchuser/accelerate.yaml", str(loop / "accelerate.yaml")):
        with pytest.raises(ValueError, match="accelerate_config"):
            runner.submit("lora", _small(tiny_t5, dialogsum_dir), accelerate_config=path)
    assert not [p for p in root.iterdir() if p.is_dir()]  # nothing queued


def test_planted_queued_run_with_a_bad_path_fails_and_the_queue_moves_on(tiny_t5, dialogsum_dir, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr("training.runner.jobs.subprocess.Popen", _no_popen)
    root = tmp_path / "runs"
    loop = _loop(tmp_path)
    queued = {"state": "queued", "method": "lora", "num_processes": 1}
    bad = {"lora-20260101-000000-001": (queued, _small(tiny_t5, dialogsum_dir, base_model="~nosuchuser/m")),
           "lora-20260101-000000-002": (queued, _small(tiny_t5, dialogsum_dir, dataset=str(loop))),
           "lora-20260101-000000-003": ({**queued, "accelerate_config": str(loop)}, _small(tiny_t5, dialogsum_dir))}
    for i, (run_id, (status, config)) in enumerate(bad.items(), 1):
        _plant(root, run_id, {**status, "created": i}, config)
    _plant(root, "lora-20260101-000000-009", {**queued, "created": 9}, _small(tiny_t5, dialogsum_dir))
    runner = JobRunner(root)
    for _ in range(len(bad) + 1):
        runner.tick()  # raised RuntimeError before, leaving the first run queued for ever
    fields = {"lora-20260101-000000-001": "base_model", "lora-20260101-000000-002": "dataset",
              "lora-20260101-000000-003": "accelerate_config"}
    for run_id, field in fields.items():
        status = runner.status(run_id)
        assert status["state"] == "failed" and status["error"].startswith("not started:") and field in status["error"]
    good = runner.status("lora-20260101-000000-009")  # reached launch: only the stubbed Popen stopped it
    assert good["state"] == "failed" and "Could not start the training process" in good["error"]


# ---- finding 3: config.json holds absolute paths: the child runs in another folder ----------------
def test_relative_paths_are_made_absolute_at_submit(tiny_t5, dialogsum_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("training.runner.jobs.subprocess.Popen", _no_popen)
    here = tmp_path / "where the app runs"
    (here / "data").mkdir(parents=True)
    (here / "data" / "dialogsum").symlink_to(dialogsum_dir, target_is_directory=True)
    monkeypatch.chdir(here)
    runner = JobRunner(tmp_path / "runs")
    base = os.path.relpath(tiny_t5, here)
    run_id = runner.submit("lora", _small(tiny_t5, dialogsum_dir, base_model=base, dataset="data/dialogsum"))
    config_file = runner.run(run_id).config_file
    config = json.loads(config_file.read_text())
    assert config["dataset"] == str(Path(dialogsum_dir).resolve())
    assert config["base_model"] == str(Path(tiny_t5).resolve())
    monkeypatch.chdir(PROJECT_ROOT)  # the child's working folder
    parsed = parse_config(lora.LoraRunConfig, ["--config", str(config_file)])  # exits 2 if invalid
    assert parsed.dataset == config["dataset"] and parsed.base_model == config["base_model"]
    # A hub id is left alone (no such folder here), a local-looking one is resolved.
    hub = lora.LoraRunConfig(**_small(tiny_t5, dialogsum_dir, base_model="google/flan-t5-small"))
    assert hub.base_model == "google/flan-t5-small"


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
    from ui.train.handlers import TrainHandlers

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
    from ui.train.tab import _refresher
    from ui.train.monitor import RunReader

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


# ---- finding 6: one meta-device model per config, shared by the estimate and the target check ----
def test_meta_model_built_once_for_estimate_and_target_checks(tiny_t5, dialogsum_dir, monkeypatch):
    import transformers

    from summarizer.inference import meta_model

    meta_model._describe.cache_clear()
    builds = []
    real = transformers.AutoModelForSeq2SeqLM.from_config
    monkeypatch.setattr(transformers.AutoModelForSeq2SeqLM, "from_config",
                        lambda *a, **k: builds.append(1) or real(*a, **k))
    for _ in range(2):  # submit validates, and the launch validates config.json again
        lora.LoraRunConfig(**_small(tiny_t5, dialogsum_dir, target_modules="q,v"))
    count = estimate.parameter_count(str(tiny_t5))
    assert len(builds) == 1
    assert count == meta_model.config_parameters(str(tiny_t5)) > 0
    with pytest.raises(ValueError, match="target_modules 'zz' not found"):
        lora.LoraRunConfig(**_small(tiny_t5, dialogsum_dir, target_modules="zz"))
    assert len(builds) == 1


def test_launch_refusals_use_the_shared_number_check():
    assert launch.check_processes(2.0) == 2 and launch.check_processes(" 2 ") == 2  # the one number rule
    for bad in (0, 2.5, True, "2e0", "1_0", None, launch.MAX_PROCESSES + 1):
        with pytest.raises(ValueError, match=f"num_processes must be a whole number 1..{launch.MAX_PROCESSES}"):
            launch.check_processes(bad)
