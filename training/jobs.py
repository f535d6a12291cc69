"""Job runner: starts training runs as child processes, one at a time, queue and history on disk.

    runner = JobRunner("runs")
    run_id = runner.submit("lora", {"base_model": "google/flan-t5-base", "max_steps": 50})
    runner.list_runs(); runner.cancel(run_id)

* A run is a folder under the runs dir (layout in ``training/common.py``). ``submit`` validates
  the method's config class, writes ``config.json`` and ``status.json`` (state ``queued``) and
  returns; :meth:`JobRunner.tick` (called by a watcher thread and by every UI handler) starts the
  oldest queued run when none is running. Queued runs are files, so the queue survives restarts.
* The child is ``[python, -m, training.<method>, --config, <run>/config.json]``, or
  ``accelerate launch --multi_gpu --num_processes N -m training.<method> --config ...`` for N > 1
  (N CPU processes with gloo when there is no GPU),
  always an argument list (never ``shell=True``), in its own session (process group), output
  appended to ``train.log``. The UI process never trains.
* Cancel writes ``<run>/cancel`` and sends SIGTERM: the child stops at the next step and marks
  itself cancelled. If it is still alive ``grace_s`` later, its process group is killed.
* A run whose process is gone while its status still says running is marked failed with the
  exit code or signal, the last log lines and an out-of-memory hint where one fits.
* A new runner (app restart) rebuilds everything from the folders and re-attaches to runs whose
  process is still alive (checked by pid and process start time).

The runner knows a method only by its module (``training.METHOD_MODULES``) and config class.
"""
from __future__ import annotations

import fcntl
import importlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import fields
from pathlib import Path

import psutil

from summarizer.runs import runs_dir as default_runs_dir
from training import METHOD_MODULES
from training.common import FINAL_STATES, RunFolder, new_run_id, write_json

PROJECT_ROOT = Path(__file__).resolve().parents[1]
OOM_HINT = ("The process was probably killed for lack of memory (SIGKILL from the OOM killer): "
            "try a smaller batch size, shorter max tokens, or a smaller base model.")


def config_class(method: str):
    """The config dataclass of ``method`` (``CONFIG`` in its module).

    Raises:
        ValueError: unknown method.
    """
    if method not in METHOD_MODULES:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(METHOD_MODULES)}.")
    return importlib.import_module(METHOD_MODULES[method]).CONFIG


def _process_alive(pid: int | None, created: float | None) -> bool:
    """True if ``pid`` runs and (when known) started at ``created`` (so a reused pid is not it)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return created is None or abs(proc.create_time() - created) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


class JobRunner:
    """Queue, start, watch and cancel training runs in ``root`` (one running at a time).

    Args:
        root: runs folder (default ``$STUDIO_RUNS_DIR`` or ``./runs``).
        grace_s: seconds a cancelled run gets to stop by itself before its process group is killed.
        python: interpreter for the children (default: this one).
    """

    def __init__(self, root: str | os.PathLike | None = None, grace_s: float = 30.0,
                 python: str = sys.executable):
        self.root = default_runs_dir(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.grace_s = grace_s
        self.python = python
        self._procs: dict[str, subprocess.Popen] = {}  # children started by this runner
        self._lock = threading.RLock()
        self._watcher: threading.Thread | None = None
        self.tick()

    # ---- commands ----------------------------------------------------------------------------
    def command(self, method: str, run_dir: str | os.PathLike, num_processes: int = 1) -> list[str]:
        """The child's argument list (shown in the UI exactly as it will run)."""
        config = str(Path(run_dir) / "config.json")
        module = METHOD_MODULES[method]
        if num_processes <= 1:
            return [self.python, "-m", module, "--config", config]
        # `--multi_gpu` is accelerate's torchrun launcher and also what starts N processes on a
        # CPU-only machine (they use gloo, see common.train_seq2seq); accelerate 1.15's `--cpu`
        # with --num_processes > 1 starts a single process unless mpirun is configured.
        return [self.python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                str(num_processes), "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no", "-m", module, "--config", config]

    # ---- queue -------------------------------------------------------------------------------
    def submit(self, method: str, values: dict, num_processes: int = 1, estimate_s: float | None = None) -> str:
        """Validate ``values`` with the method's config class and queue a run; returns its id.

        Raises:
            ValueError: unknown method, unknown field, or a value out of range (the message says which).
        """
        cls = config_class(method)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"Unknown {method} setting(s): {', '.join(unknown)}.")
        if num_processes < 1:
            raise ValueError(f"num_processes must be at least 1, got {num_processes}.")
        run = RunFolder(self.root / new_run_id(method))
        while run.path.exists():  # two submissions in the same millisecond
            time.sleep(0.002)
            run = RunFolder(self.root / new_run_id(method))
        config = cls(**{**values, "runs_dir": str(self.root), "run_dir": str(run.path)})  # validates
        run.path.mkdir(parents=True)
        write_json(run.config_file, config.to_dict())
        run.update_status(state="queued", method=method, run_id=run.run_id, created=time.time(),
                          seq=time.time_ns(), total_steps=config.max_steps, step=0,
                          num_processes=num_processes, estimate_s=estimate_s,
                          command=self.command(method, run.path, num_processes))
        self.tick()
        return run.run_id

    def list_runs(self) -> list[dict]:
        """Every run's status (plus ``run_id``, ``run_dir``, ``queue_position`` when queued), newest first."""
        runs = []
        for path in self.root.iterdir() if self.root.is_dir() else []:
            status = RunFolder(path).status() if path.is_dir() else None
            if status:
                runs.append({**status, "run_id": path.name, "run_dir": str(path)})
        queued = sorted((r for r in runs if r.get("state") == "queued"), key=_queue_key)
        for i, r in enumerate(queued, 1):
            r["queue_position"] = i
        return sorted(runs, key=_queue_key, reverse=True)

    def run(self, run_id: str) -> RunFolder:
        """The folder of ``run_id``.

        Raises:
            ValueError: no such run.
        """
        path = self.root / Path(run_id).name  # never leave the runs folder
        if not (path / "status.json").is_file():
            raise ValueError(f"No run {run_id!r} in {self.root}.")
        return RunFolder(path)

    # ---- lifecycle ---------------------------------------------------------------------------
    def tick(self) -> None:
        """Detect ended processes, enforce cancel timeouts, start the next queued run."""
        with self._lock, open(self.root / ".runner.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one runner at a time per runs folder (also across apps)
            runs = self.list_runs()
            running = [r for r in runs if r.get("state") == "running"]
            still = [r for r in running if self._check_alive(r)]
            if not still:
                queued = sorted((r for r in runs if r.get("state") == "queued"), key=_queue_key)
                if queued:
                    self._launch(RunFolder(queued[0]["run_dir"]))

    def _check_alive(self, status: dict) -> bool:
        """True while the run's process lives; otherwise settle its final state."""
        run = RunFolder(status["run_dir"])
        proc = self._procs.get(run.run_id)
        if proc is not None:
            code = proc.poll()
            alive = code is None
        else:
            code = None
            alive = _process_alive(status.get("pid"), status.get("pid_created"))
        if alive:
            asked = status.get("cancel_requested")
            if asked and time.time() - asked > self.grace_s:
                self._kill_group(status.get("pid"))
            return True
        self._procs.pop(run.run_id, None)
        status = run.status()  # re-read: the child may have just finished
        if status.get("state") != "running":
            return False
        run.discard_model()
        if status.get("cancel_requested"):
            run.update_status(state="cancelled", finished=time.time(),
                              error="stopped on request (process killed after the grace period)")
        else:
            run.update_status(state="failed", finished=time.time(), error=self._failure_reason(run, status, code))
        return False

    @staticmethod
    def _failure_reason(run: RunFolder, status: dict, code: int | None) -> str:
        if code is None:
            what = (f"Process {status.get('pid')} is gone without finishing (started by an earlier "
                    "app process, so its exit status is unknown).")
        elif code < 0:
            what = f"Process {status.get('pid')} was killed by {signal.Signals(-code).name}."
        else:
            what = f"Process {status.get('pid')} exited with code {code} without finishing."
        tail = "\n".join(run.log_tail(4000).strip().splitlines()[-12:])
        oom = code in (-signal.SIGKILL, 137) or any(s in tail for s in ("out of memory", "MemoryError", "OOM"))
        return "\n".join(filter(None, [what, OOM_HINT if oom else "", "Last log lines:", tail]))

    def _launch(self, run: RunFolder) -> None:
        status = run.status()
        cmd = status.get("command") or self.command(status["method"], run.path, status.get("num_processes", 1))
        env = {**os.environ, "STUDIO_JOB_RUNNER": "1", "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
        with open(run.log_file, "ab") as log:
            try:
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        cwd=PROJECT_ROOT, env=env, start_new_session=True)
            except OSError as err:  # e.g. the interpreter is gone: fail this run, keep the app
                run.update_status(state="failed", finished=time.time(), error=f"Could not start {cmd[0]}: {err}")
                return
        self._procs[run.run_id] = proc
        try:
            created = psutil.Process(proc.pid).create_time()
        except psutil.NoSuchProcess:
            created = None
        run.update_status(state="running", pid=proc.pid, pid_created=created, launched=time.time())

    def cancel(self, run_id: str) -> dict:
        """Ask a run to stop: a queued run is cancelled at once; a running one gets a ``cancel``
        file and SIGTERM, then its process group is killed if it lives past ``grace_s``.

        Returns the run's status after the request.
        """
        with self._lock:
            run = self.run(run_id)
            status = run.status()
            state = status.get("state")
            if state == "queued":
                return run.update_status(state="cancelled", finished=time.time(), error="cancelled while queued")
            if state != "running":
                return status
            run.cancel_file.touch()
            status = run.update_status(cancel_requested=time.time())
            pid = status.get("pid")
            if pid and _process_alive(pid, status.get("pid_created")):
                try:
                    os.kill(pid, signal.SIGTERM)  # the leader (python or accelerate, which forwards it)
                except ProcessLookupError:
                    pass
            return status

    @staticmethod
    def _kill_group(pid: int | None) -> None:
        if not pid:
            return
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, run_id: str, timeout: float = 600, poll_s: float = 0.5) -> dict:
        """Tick until ``run_id`` reaches a final state; returns its status.

        Raises:
            TimeoutError: not finished within ``timeout`` seconds.
        """
        end = time.time() + timeout
        while time.time() < end:
            self.tick()
            status = self.run(run_id).status()
            if status.get("state") in FINAL_STATES:
                return status
            time.sleep(poll_s)
        raise TimeoutError(f"Run {run_id} did not finish within {timeout} s.")

    def start_watcher(self, interval_s: float = 1.0) -> None:
        """Tick in a daemon thread, so the queue advances without a browser open."""
        if self._watcher and self._watcher.is_alive():
            return

        def loop():
            while True:
                try:
                    self.tick()
                except OSError as err:  # a full disk or a vanished folder must not stop the app
                    print(f"job runner: {err}", file=sys.stderr)
                time.sleep(interval_s)

        self._watcher = threading.Thread(target=loop, name="job-runner", daemon=True)
        self._watcher.start()


def _queue_key(status: dict) -> tuple:
    return (status.get("created") or 0, status.get("seq") or 0, status.get("run_id", ""))


def delete_run(root: str | os.PathLike, run_id: str) -> None:
    """Remove a finished run's folder."""
    path = default_runs_dir(root) / Path(run_id).name
    if RunFolder(path).status().get("state") not in FINAL_STATES:
        raise ValueError(f"Run {run_id} is not finished; cancel it first.")
    shutil.rmtree(path)
