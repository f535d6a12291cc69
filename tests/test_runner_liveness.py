"""A run is alive while its training process holds ``<run>/.alive``, whoever started it.

A run started on the command line (``python -m training.full --run_dir runs/<id>``, or resumed
there with ``--config``) is shown running, never settled as failed, signalled or deleted while
its process lives, and no queued run starts beside it; once the process ends it is settled as
before. A planted file holds no lock: a planted status with a foreign pid is still settled
without a signal. A ``.runner.lock`` held by another process never blocks a read, and the
runner forgets the exit codes of settled runs.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from summarizer.runs import RunFolder
from training import full
from training.runner.jobs import JobRunner, PROJECT_ROOT
from training.runner.run_actions import delete_run

RUN = "full-20260101-000000-001"
QUEUED = "full-20260101-000000-002"

# A command-line run whose training waits for a ``go`` file, then completes.
CLI_CHILD = r"""
import sys, time
from training import full, run_life

def train(config, run, stop):
    while not (run.path / "go").exists():
        time.sleep(0.05)
    run.model_tmp.mkdir()
    return {"eval_loss": 1.0}

sys.exit(run_life.main(full.FullRunConfig, train, sys.argv[1:]))
"""

# Holds an exclusive flock on argv[1] until killed.
HOLDER = r"""
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(600)
"""


def _cli_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "STUDIO_JOB_RUNNER"}  # not started by the app
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))}


def _start_cli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI_CHILD, *args], cwd=PROJECT_ROOT, env=_cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _wait_running(proc: subprocess.Popen, run: RunFolder, timeout: float = 300) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        status = run.status()
        if status.get("state") == "running":
            return status
        time.sleep(0.1)
    raise TimeoutError("the command-line run did not start")


def _hold(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"locked\n"
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.fixture
def signals(monkeypatch) -> list:
    """Every signal (other than the 0 of an existence check) sent while the test runs (and sent)."""
    sent, kill, killpg = [], os.kill, os.killpg
    monkeypatch.setattr(os, "kill", lambda pid, sig: (sig and sent.append((pid, sig))) or kill(pid, sig))
    monkeypatch.setattr(os, "killpg", lambda pid, sig: sent.append((pid, sig)) or killpg(pid, sig))
    return sent


def _small(tiny_t5, dialogsum_dir) -> list[str]:
    return ["--base_model", str(tiny_t5), "--dataset", str(dialogsum_dir), "--train_size", "4",
            "--val_size", "0", "--max_steps", "1"]


def test_a_command_line_run_is_running_until_its_process_dies(tiny_t5, dialogsum_dir, tmp_path, signals, monkeypatch):
    root = tmp_path / "runs"
    run = RunFolder(root / RUN)
    child = _start_cli([*_small(tiny_t5, dialogsum_dir), "--run_dir", str(run.path)])
    try:
        status = _wait_running(child, run)
        assert status["pid"] == child.pid and status.get("pid_created") is None  # what a CLI run writes
        config = json.loads(run.config_file.read_text())
        (root / QUEUED).mkdir()
        RunFolder(root / QUEUED).config_file.write_text(json.dumps({**config, "run_dir": str(root / QUEUED)}))
        RunFolder(root / QUEUED).update_status(state="queued", method="full", run_id=QUEUED, created=2)
        launched = []
        monkeypatch.setattr(JobRunner, "_launch", lambda self, s: launched.append(s["run_id"]))
        runner = JobRunner(root, grace_s=0)
        for _ in range(3):
            runner.tick()
        assert runner.status(RUN)["state"] == "running"
        assert {r["run_id"]: r["state"] for r in runner.list_runs()}[RUN] == "running"
        assert launched == []  # nothing starts beside a live run
        with pytest.raises(ValueError, match="is running"):
            delete_run(runner, RUN, confirm=RUN)
        assert run.status_file.exists()
        assert signals == [] and child.poll() is None
        os.killpg(child.pid, signal.SIGKILL)  # the test's own child; the kernel drops its lock
        child.wait()
        signals.clear()
        runner.tick()
        status = runner.status(RUN)
        assert status["state"] == "failed" and f"Process {child.pid} is gone" in status["error"], status
        assert launched == [QUEUED]
        delete_run(runner, RUN, confirm=RUN)
        assert not run.path.exists()
    finally:
        _stop(child)


def test_a_command_line_resume_names_its_own_pid_and_stops_on_cancel(tiny_t5, dialogsum_dir, tmp_path, signals):
    root = tmp_path / "runs"
    run = RunFolder(root / RUN)
    run.path.mkdir(parents=True)
    config = full.FullRunConfig(base_model=str(tiny_t5), dataset=str(dialogsum_dir), train_size=4, val_size=0,
                                max_steps=1, run_dir=str(run.path))
    run.config_file.write_text(json.dumps(config.to_dict()))
    dead = subprocess.Popen(["true"])
    dead.wait()
    run.update_status(state="failed", method="full", run_id=RUN, created=1, pid=dead.pid, pid_created=time.time())
    child = _start_cli(["--config", str(run.config_file)])
    try:
        status = _wait_running(child, run)
        assert status["pid"] == child.pid and status.get("pid_created") is None  # not the earlier runner's pid
        runner = JobRunner(root, grace_s=0)
        runner.tick()
        assert runner.status(RUN)["state"] == "running"
        runner.cancel(RUN)  # a cancel file only: the process is not ours to signal
        runner.tick()
        assert signals == [] and child.poll() is None and runner.status(RUN)["state"] == "running"
        (run.path / "go").touch()
        assert child.wait(timeout=120) == 0
        runner.tick()
        status = runner.status(RUN)
        assert status["state"] == "cancelled" and status["error"] == "stopped on request" and signals == []
    finally:
        _stop(child)


def test_a_planted_status_without_a_lock_is_settled_without_a_signal(tmp_path, signals):
    root = tmp_path / "runs"
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    outside = tmp_path / "outside-lock"
    holder = _hold(outside)
    try:
        for i, alive in enumerate(["none", "file", "link"]):
            run = RunFolder(root / f"full-20260101-000000-00{i}")
            run.path.mkdir(parents=True)
            run.update_status(state="running", method="full", pid=sleeper.pid, created=i)  # as a CLI run writes
            if alive == "file":
                (run.path / ".alive").write_text(f"{sleeper.pid}\n")  # a file holds no lock
            elif alive == "link":
                (run.path / ".alive").symlink_to(outside)  # a lock held elsewhere is not followed
        runner = JobRunner(root, grace_s=0)
        runner.tick()
        assert [r["state"] for r in runner.list_runs()] == ["failed"] * 3
        assert sleeper.poll() is None and signals == []
    finally:
        _stop(holder)
        _stop(sleeper)


def test_a_held_runner_lock_blocks_no_read(tmp_path):
    root = tmp_path / "runs"
    run = RunFolder(root / RUN)
    run.path.mkdir(parents=True)
    run.update_status(state="completed", method="full", run_id=RUN, created=1)
    runner = JobRunner(root)
    holder = _hold(root / ".runner.lock")  # another app's runner, mid-tick (or hung)
    try:
        ticking = threading.Thread(target=runner.tick, daemon=True)
        ticking.start()
        time.sleep(0.2)  # let the tick take the runner's lock first, as the watcher would
        seen = []
        reading = threading.Thread(target=lambda: seen.extend([runner.list_runs(), runner.status(RUN)]), daemon=True)
        reading.start()
        reading.join(timeout=60)  # a hang guard: the old runner blocked here until the holder ended
        ticking.join(timeout=60)
        assert not reading.is_alive() and not ticking.is_alive()
        assert seen[0][0]["state"] == "completed" and seen[1]["state"] == "completed"
    finally:
        _stop(holder)


def test_a_planted_runner_lock_link_is_not_followed(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    target = tmp_path / "created-through-the-link"
    (root / ".runner.lock").symlink_to(target)
    runner = JobRunner(root)
    assert runner.problem and ".runner.lock" not in str(target)
    with pytest.raises(OSError):
        runner.tick()
    assert not target.exists()


def test_exit_codes_are_forgotten_once_a_run_is_settled(tiny_t5, dialogsum_dir, tmp_path, monkeypatch):
    finish = ("import os; from summarizer.runs import RunFolder; "
              "RunFolder(os.environ['STUDIO_JOB_RUNNER']).update_status(state='completed')")
    monkeypatch.setattr(JobRunner, "command", lambda self, *a, **k: [sys.executable, "-c", finish])
    runner = JobRunner(tmp_path / "runs")
    run_id = runner.submit("full", {"base_model": str(tiny_t5), "dataset": str(dialogsum_dir), "max_steps": 1})
    assert runner.wait(run_id, timeout=120, poll_s=0.1)["state"] == "completed"
    end = time.time() + 60
    while runner._procs and time.time() < end:  # "completed" is written just before the child exits
        time.sleep(0.1)
        runner.tick()
    runner.tick()
    assert not runner._procs and runner._exit_codes == {}
    assert psutil.Process().children() == []
