"""The job runner treats the runs folder as untrusted data (issue 8, findings 2-4, 8, 9).

Planted status files never choose what runs or which process gets a signal; run ids never leave
the runs folder; every child is reaped; a runs folder that cannot be written gives a message, not
a traceback, and leaves nothing half-created. Reading handlers never start queued runs (issue 9).
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from summarizer.runs import RunFolder
from training import run_life
from training import full, lora
from training.runner.jobs import JobRunner, RunsFolderError
from training.runner.status_texts import failure_reason
from training.runner.run_actions import delete_run

RUN = "lora-20260101-000000-001"
BAD_IDS = ["..", ".", "/etc", "a/b", "/tmp", "../" + RUN, RUN + "/..", "", " ", "x" * 10_000, RUN + "\n",
           None, 5, ["a"], "lora-2026"]


def _small(tiny_t5, dialogsum_dir, **changes) -> dict:
    return {"base_model": str(tiny_t5), "dataset": str(dialogsum_dir), "train_size": 4, "val_size": 0,
            "batch_size": 2, "max_source_tokens": 32, "max_target_tokens": 8, "max_steps": 1, **changes}


def _plant(root: Path, run_id: str, status: dict, config: dict | None = None) -> Path:
    path = root / run_id
    path.mkdir(parents=True)
    (path / "status.json").write_text(json.dumps(status))
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    return path


def _children_zombies() -> list:
    return [c.pid for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]


# ---- finding 2: no command, pid or path is taken from disk --------------------------------------
def test_planted_command_is_never_executed(tmp_path):
    root = tmp_path / "runs"
    marker = Path(f"/tmp/pwned-{uuid.uuid4()}")
    evil = ["/bin/sh", "-c", f"touch {marker}"]
    _plant(root, RUN, {"state": "queued", "method": "lora", "created": 1, "command": evil})
    _plant(root, "full-20260101-000000-002", {"state": "queued", "method": "full", "created": 2,
                                              "command": evil, "num_processes": ["1; sh"]}, config={})
    runner = JobRunner(root)
    for _ in range(3):
        runner.tick()
    time.sleep(0.5)
    assert not marker.exists()
    assert not psutil.Process().children()  # nothing was started at all
    states = {r["run_id"]: (r["state"], r.get("error", "")) for r in runner.list_runs()}
    assert states[RUN][0] == "failed" and "config.json is missing" in states[RUN][1]
    assert states["full-20260101-000000-002"] == ("failed", "not started: config.json names another run folder")


def test_launch_command_built_from_method_and_folder(tiny_t5, dialogsum_dir, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    path = root / RUN
    config = lora.LoraRunConfig(**_small(tiny_t5, dialogsum_dir), runs_dir=str(root), run_dir=str(path))
    _plant(root, RUN, {"state": "queued", "method": "lora", "created": 1,
                       "command": ["/bin/sh", "-c", "exit 0"]}, config=config.to_dict())
    started = []

    def fake_popen(cmd, **kwargs):
        started.append((cmd, kwargs))
        raise OSError("not starting in this test")

    monkeypatch.setattr("training.runner.jobs.subprocess.Popen", fake_popen)
    JobRunner(root).tick()
    ((cmd, kwargs),) = started
    assert cmd == [sys.executable, "-m", "training.lora", "--config", str(path / "config.json")]
    assert kwargs["env"]["STUDIO_JOB_RUNNER"] == str(path) and "shell" not in kwargs


def test_foreign_pid_is_never_signalled(tmp_path):
    root = tmp_path / "runs"
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        created = psutil.Process(sleeper.pid).create_time()  # a perfect forgery of pid and start time
        _plant(root, RUN, {"state": "running", "method": "lora", "pid": sleeper.pid, "pid_created": created,
                           "cancel_requested": 1.0, "created": 1})
        runner = JobRunner(root, grace_s=0)
        runner.cancel(RUN)
        runner.tick()
        time.sleep(0.3)
        assert sleeper.poll() is None  # neither SIGTERM from cancel nor SIGKILL after the grace period
        status = runner.status(RUN)
        assert status["state"] == "cancelled"  # not a process of ours: settled, not waited for
    finally:
        sleeper.kill()
        sleeper.wait()


def test_status_fields_are_type_checked(tmp_path):
    root = tmp_path / "runs"
    _plant(root, RUN, {"state": "completed", "method": "lora", "pid": "1", "step": "a", "error": ["x"],
                       "created": "yesterday", "metrics": {"loss": "nan-ish", "eval_loss": 1.5}})
    _plant(root, "full-20260101-000000-002", ["not", "a", "status"])
    _plant(root, "ppo-20260101-000000-003", {"state": {"$ne": 1}})
    (root / "full-20260101-000000-004").mkdir()
    (root / "full-20260101-000000-004" / "status.json").write_text("[" * 100_000)
    (listed,) = JobRunner(root).list_runs()
    assert listed["run_id"] == RUN and listed["metrics"] == {"eval_loss": 1.5}
    assert not {"pid", "step", "error", "created"} & set(listed)


# ---- finding 3: run ids ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", BAD_IDS, ids=range(len(BAD_IDS)))
def test_bad_run_ids_refused_by_every_method(tmp_path, bad):
    root = tmp_path / "a" / "runs"
    root.mkdir(parents=True)
    (root.parent / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid()}))
    runner = JobRunner(root)
    for call in (runner.run, runner.status, runner.cancel, lambda r: delete_run(runner, r)):
        with pytest.raises(ValueError, match="run_id|Run "):
            call(bad)
    assert not (root.parent / "cancel").exists()


def test_symlinked_run_folder_is_not_followed(tmp_path):
    root = tmp_path / "runs"
    outside = _plant(tmp_path / "outside", "x", {"state": "queued", "method": "lora"})
    root.mkdir()
    (root / RUN).symlink_to(outside, target_is_directory=True)
    runner = JobRunner(root)
    assert runner.list_runs() == []
    with pytest.raises(ValueError, match="no such run"):
        runner.run(RUN)


# ---- finding 4 and 9: reaping and status texts --------------------------------------------------------
def test_no_zombies_after_finished_runs(tiny_t5, dialogsum_dir, tmp_path):
    runner = JobRunner(tmp_path / "runs")
    ids = [runner.submit("full", _small(tiny_t5, dialogsum_dir)) for _ in range(3)]
    for run_id in ids:
        assert runner.wait(run_id, timeout=400)["state"] == "completed", runner.run(run_id).log_tail(2000)
    end = time.time() + 120
    while runner._procs and time.time() < end:  # "completed" is written just before the child exits
        time.sleep(0.2)
        runner.tick()
    assert not runner._procs and _children_zombies() == []


def test_sigterm_during_start_up_is_not_called_a_kill_after_grace(tiny_t5, dialogsum_dir, tmp_path):
    runner = JobRunner(tmp_path / "runs", grace_s=600)
    run_id = runner.submit("full", _small(tiny_t5, dialogsum_dir))
    runner.cancel(run_id)  # the child is still importing torch: SIGTERM ends it there
    status = runner.wait(run_id, timeout=120)
    assert status["state"] == "cancelled"
    assert "grace period" not in status["error"] and "start-up" in status["error"], status["error"]


def test_failure_texts_name_the_cause_not_a_traceback(tiny_t5, dialogsum_dir, tmp_path):
    run = RunFolder(tmp_path / "r")
    run.path.mkdir()
    run.log_file.write_text("Traceback (most recent call last):\n  File \"/abs/x.py\", line 1\nValueError: bad\n")
    killed = failure_reason(run, {"pid": 7}, -signal.SIGKILL)
    assert "by a user, the OOM killer or the system" in killed and "Cause: ValueError: bad" in killed
    assert "/abs/x.py" not in killed
    run.log_file.write_text("RuntimeError: CUDA out of memory.\n")
    assert "out of memory (its log says so)" in failure_reason(run, {"pid": 7}, -signal.SIGKILL)

    def broken(config, run, stop):
        raise RuntimeError("boom")

    run_dir = tmp_path / "runs" / "f"
    with pytest.raises(RuntimeError):
        run_life.main(full.FullRunConfig, broken, ["--base_model", str(tiny_t5), "--dataset", str(dialogsum_dir),
                                              "--run_dir", str(run_dir)])
    assert RunFolder(run_dir).status()["error"] == "RuntimeError: boom"


# ---- finding 8: disk faults -------------------------------------------------------------------------
def test_runs_folder_under_a_file_gives_a_message(tmp_path, tiny_t5, dialogsum_dir):
    (tmp_path / "file").write_text("")
    runner = JobRunner(tmp_path / "file" / "runs")  # must not raise
    assert "a part of its path is a file" in runner.problem and "--runs-dir" in runner.problem
    with pytest.raises(RunsFolderError, match="runs folder"):
        runner.submit("full", _small(tiny_t5, dialogsum_dir))
    with pytest.raises(RunsFolderError, match="runs folder"):
        runner.list_runs()


def test_read_only_runs_folder_gives_a_message(tmp_path, monkeypatch, tiny_t5, dialogsum_dir):
    # Tests run as root, which ignores chmod: the read-only file system is simulated (EROFS).
    def read_only(self):
        raise OSError(errno.EROFS, "Read-only file system", str(self.root))

    monkeypatch.setattr(JobRunner, "_probe", read_only)
    runner = JobRunner(tmp_path / "runs")
    assert "read-only file system" in runner.problem
    with pytest.raises(RunsFolderError, match="read-only"):
        runner.submit("full", _small(tiny_t5, dialogsum_dir))


def test_full_disk_leaves_no_orphan_run(tmp_path, monkeypatch, tiny_t5, dialogsum_dir):
    root = tmp_path / "runs"
    runner = JobRunner(root)
    real = Path.write_text

    def full_disk(self, *args, **kwargs):
        if self.name.endswith(".tmp"):
            real(self, "")  # the 0-byte temporary file a full disk leaves
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(RunsFolderError, match="the disk is full"):
        runner.submit("full", _small(tiny_t5, dialogsum_dir))
    assert [p.name for p in root.iterdir()] == [".runner.lock"]


def test_watcher_logs_each_distinct_error_once(tmp_path, capsys):
    root = tmp_path / "runs"
    runner = JobRunner(root)
    (root / ".runner.lock").unlink()
    root.rmdir()
    root.write_text("")  # the folder is now a file: every tick fails the same way
    runner.start_watcher(interval_s=0.02)
    time.sleep(0.5)
    logged = [line for line in capsys.readouterr().err.splitlines() if line.startswith("job runner:")]
    assert len(logged) == 1, logged


# ---- issue 9: reading never launches ----------------------------------------------------------------
def test_reading_handlers_never_launch_queued_runs(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path, monkeypatch):
    from gradio_client import Client

    from tests.app_server import running_app

    monkeypatch.setattr(JobRunner, "start_watcher", lambda self, interval_s=1.0: None)
    root = tmp_path / "runs"
    path = root / RUN
    config = lora.LoraRunConfig(**_small(tiny_t5, dialogsum_dir), runs_dir=str(root), run_dir=str(path))
    _plant(root, RUN, {"state": "queued", "method": "lora", "created": 1, "num_processes": 1}, config.to_dict())
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, root) as (studio, url):
        client = Client(url, verbose=False)
        for _ in range(3):
            assert [r["state"] for r in client.predict(api_name="/list_runs")] == ["queued"]
            assert client.predict(RUN, api_name="/run_metrics")["status"]["state"] == "queued"
        assert not [c for c in psutil.Process().children() if "training.lora" in " ".join(_cmdline(c))]

        # A run submitted without a base model gets the app's base (not the hub id), and the
        # submission itself (only it) advances the queue: Popen is stubbed to see the launch.
        monkeypatch.setattr("training.runner.jobs.subprocess.Popen", _no_popen)
        run_id = client.predict("full", json.dumps({"max_steps": 1, "train_size": 4, "val_size": 0}), 1,
                                api_name="/start_run")
        config = json.loads((root / run_id / "config.json").read_text())
        assert config["base_model"] == str(tiny_t5) and config["dataset"] == str(dialogsum_dir)
        assert studio.runs_dir == root and "Could not start" in (
            client.predict(RUN, api_name="/run_metrics")["status"].get("error") or "")


def _no_popen(cmd, **kwargs):
    raise OSError("stubbed: not starting a process in this test")


def _cmdline(proc) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:  # a zombie or a process that just ended
        return []


def test_app_starts_with_unusable_runs_folder(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from tests.app_server import running_app

    (tmp_path / "file").write_text("")
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path / "file" / "runs") as (studio, url):
        client = Client(url, verbose=False)
        with pytest.raises(AppError, match="runs folder"):
            client.predict("full", "{}", 1, api_name="/start_run")
        with pytest.raises(AppError, match="runs folder"):
            client.predict(api_name="/list_runs")
        with pytest.raises(AppError, match="--runs-dir pointing at a writable folder"):
            client.predict("current", api_name="/arena_leaderboard")  # the Arena's votes live there too


# ---- planted symlinks inside a run folder -------------------------------------------------------------
def test_planted_symlinks_in_a_run_are_never_followed(tmp_path):
    """A run folder's files are data: a link to a secret, to /dev/zero or out of the run is refused."""
    from training.runner.run_actions import export_run, upload_command
    from training.runner.settings import read_small_json

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    root = tmp_path / "runs"
    path = _plant(root, RUN, {"state": "completed", "method": "lora", "created": 1})
    (path / "train.log").symlink_to(secret)
    (path / "metrics.jsonl").symlink_to(secret)
    (path / "config.json").symlink_to("/dev/zero")  # would hang a plain read_text()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "key.json").write_text('{"k": 1}')
    (path / "model").symlink_to(tmp_path / "elsewhere")
    runner = JobRunner(root)
    run = runner.run(RUN)
    assert run.log_tail() == "" and run.metrics() == []
    assert read_small_json(run.config_file) is None
    with pytest.raises(ValueError, match="no finished model to export"):
        export_run(runner, RUN, tmp_path / "zips")
    with pytest.raises(ValueError, match="no finished model to upload"):
        upload_command(runner, RUN)


def test_a_planted_log_link_fails_the_run_and_writes_nothing_through_it(tiny_t5, dialogsum_dir, tmp_path):
    target = tmp_path / "bashrc"
    target.write_text("original\n")
    root = tmp_path / "runs"
    path = root / RUN
    config = lora.LoraRunConfig(**_small(tiny_t5, dialogsum_dir), runs_dir=str(root), run_dir=str(path))
    _plant(root, RUN, {"state": "queued", "method": "lora", "created": 1}, config=config.to_dict())
    (path / "train.log").symlink_to(target)
    runner = JobRunner(root)
    runner.tick()
    status = runner.status(RUN)
    assert status["state"] == "failed" and status["error"].startswith("not started") and "train.log" in status["error"]
    assert target.read_text() == "original\n" and not psutil.Process().children()
