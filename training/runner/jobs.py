"""Job runner: starts training runs as child processes, one at a time, queue and history on disk.

    runner = JobRunner("runs")
    run_id = runner.submit("lora", {"base_model": "google/flan-t5-base", "max_steps": 50})
    runner.list_runs(); runner.cancel(run_id)

* A run is a folder under the runs dir (layout in ``summarizer/runs.py``) named by its run id
  ``<method>-YYYYmmdd-HHMMSS-mmm`` (``summarizer.runs.RUN_ID_RE``); every endpoint and method here
  refuses any other id, so nothing outside the runs folder is ever read, written or signalled.
* ``submit`` validates the method's config class (types, bounds, paths), writes ``config.json``
  and ``status.json`` (state ``queued``) and starts the oldest queued run when none is running.
  After that only :meth:`JobRunner.tick`, called by the watcher thread, advances the queue:
  reading handlers (list, metrics, the Train tab's timer) never start a run.
* The child's command is built at launch (``training.runner.launch``) from the run id's method (the
  registry's allow-list) and the run folder only; a ``command`` in status.json is never run.
  An argument list, in its own session; output to train.log (never through a symlink).
* Only processes this runner started are signalled; after an app restart a process is
  re-attached only when its pid, start time and our marker all match. Every started process
  is reaped on each tick (no zombies).
* A run trained by a process started elsewhere (the command line) is alive while that process
  holds the run's ``.alive`` lock (``training/runner/liveness.py``): it is shown running, never
  settled, signalled or deleted, and no queued run starts beside it.
* Cancel writes ``<run>/cancel`` and sends SIGTERM: the child stops at the next step and marks
  itself cancelled. If it is still alive ``grace_s`` later, its process group is killed.
* A run whose process is gone while its status still says running is marked failed with the
  exit code or signal and the cause found in its log (the full log stays in train.log).
* An unusable runs folder (read-only, full, not a folder) does not stop the app: :attr:`JobRunner.problem`
  says why, :meth:`submit` refuses with it, the watcher logs each distinct error once.
"""
from __future__ import annotations

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

from summarizer.runs import (FINAL_STATES, RunFolder, check_run_id, new_run_id, open_regular,
                             runs_dir as default_runs_dir, write_json)
from training.runner import launch, liveness
from training import registry
from training.runner import watcher
from training.runner.launch import check_processes
from training.runner.run_files import ACTIVE_STATES, StatusCache
from training.runner.status_texts import cancel_text, failure_reason, folder_message

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # training/runner/jobs.py -> the project
MARKER_ENV = "STUDIO_JOB_RUNNER"  # set to the run folder in every child: our marker on re-attach
RUNNER_LOCK = ".runner.lock"  # one runner ticks a runs folder at a time (also across apps)


class RunsFolderError(ValueError):
    """The runs folder cannot be used (read-only, full, missing, not a folder); the message
    says which folder, why, and what to do."""


class JobRunner:
    """Queue, start, watch and cancel training runs in ``root`` (one running at a time).

    Args:
        root: runs folder (default ``$STUDIO_RUNS_DIR`` or ``./runs``).
        grace_s: seconds a cancelled run gets to stop by itself before its process group is killed.
        python: interpreter for the children (default: this one).
        accelerate_configs: accelerate config files allowed wherever they are (named on the
            app's command line); others must lie under the runs folder.

    Never raises on construction: when the folder cannot be created or written, :attr:`problem`
    holds the message and :meth:`submit` refuses.
    """

    def __init__(self, root: str | os.PathLike | None = None, grace_s: float = 30.0,
                 python: str = sys.executable, accelerate_configs: tuple = ()):
        # Absolute: the children run with the project as their working directory.
        self.root = default_runs_dir(root).absolute()
        self.grace_s = grace_s
        self.python = python
        self.accelerate_configs = [Path(p) for p in accelerate_configs]
        self.problem: str | None = None
        self._statuses = StatusCache(self.root)
        self._procs: dict[str, subprocess.Popen] = {}  # children started by this runner, not yet reaped
        self._exit_codes: dict[str, int] = {}  # reaped children whose run is not settled yet
        self._killed: set[str] = set()  # runs whose group we killed after the grace period
        self._lock = threading.RLock()
        self._watcher: threading.Thread | None = None
        self._errors = watcher.ErrorLog()  # the watcher's and submit's, each distinct error once
        self.check_folder()

    # ---- the runs folder ---------------------------------------------------------------------
    def _probe(self) -> None:
        """Create the runs folder and open its lock file for writing (raises OSError if not possible)."""
        self.root.mkdir(parents=True, exist_ok=True)
        liveness.open_lock(self.root / RUNNER_LOCK).close()

    def check_folder(self) -> str | None:
        """Probe the runs folder again; returns (and stores in :attr:`problem`) why it is unusable."""
        try:
            self._probe()
            self.problem = None
        except OSError as err:
            self.problem = folder_message(self.root, err, "opening it")
        return self.problem

    # ---- commands ----------------------------------------------------------------------------
    def command(self, method: str, run_dir: str | os.PathLike, num_processes: int = 1,
                accelerate_config: str | None = None) -> list[str]:
        """The child's argument list (see :func:`training.runner.launch.command`).

        Raises:
            ValueError: unknown method, a bad process count or accelerate config file.
        """
        return launch.command(self.python, method, run_dir, num_processes,
                              self.check_accelerate_config(accelerate_config))

    def check_accelerate_config(self, path) -> str | None:
        """``path`` resolved if allowed (see :func:`training.runner.launch.check_accelerate_config`).

        Raises:
            ValueError: naming ``accelerate_config``.
        """
        return launch.check_accelerate_config(path, [self.root], self.accelerate_configs)

    # ---- queue -------------------------------------------------------------------------------
    def submit(self, method: str, values: dict, num_processes: int = 1, estimate_s: float | None = None,
               accelerate_config: str | None = None) -> str:
        """Validate ``values`` with the method's config class and queue a run; returns its id.

        Raises:
            ValueError: unknown method, unknown setting, a value of the wrong type or out of
                range, a bad path, a bad accelerate config file, several processes for a
                single-process method (the message names the setting).
            RunsFolderError: the runs folder cannot be written (nothing is left behind).
        """
        cls = registry.spec(method).config
        if not isinstance(values, dict):
            raise ValueError(f"settings must be a JSON object of {method} settings, such as "
                             f'{{"max_steps": 50}}, got {type(values).__name__}.')
        names = {f.name for f in fields(cls)} - {"runs_dir", "run_dir"}
        unknown = sorted(str(k)[:40] for k in set(values) - names)
        if unknown:
            raise ValueError(f"Unknown {method} setting(s): {', '.join(unknown[:10])}; known: "
                             f"{', '.join(sorted(names))}.")
        num_processes = check_processes(num_processes)
        accelerate_config = self.check_accelerate_config(accelerate_config)
        launch.check_method_processes(method, num_processes, accelerate_config)
        if isinstance(estimate_s, bool) or not isinstance(estimate_s, (int, float, type(None))):
            estimate_s = None
        if self.problem and self.check_folder():
            raise RunsFolderError(self.problem)
        run = RunFolder(self.root / new_run_id(method))
        config = cls(**{**values, "runs_dir": str(self.root), "run_dir": str(run.path)})  # validates
        run = self._create(method, config, num_processes, estimate_s, accelerate_config)
        try:
            self.tick()
        except OSError as err:  # queued all the same; the watcher retries
            self._errors(f"job runner: {err}")
        return run.run_id

    def _create(self, method, config, num_processes: int, estimate_s, accelerate_config) -> RunFolder:
        """Make the run folder (a fresh id, atomically) with config.json and status.json; on any
        write error remove it again so no half-created run is left."""
        with self._lock:
            for _ in range(1000):
                run = RunFolder(self.root / new_run_id(method))
                try:
                    run.path.mkdir()
                    break
                except FileExistsError:  # two submissions in the same millisecond
                    time.sleep(0.002)
                except OSError as err:
                    raise RunsFolderError(folder_message(self.root, err, "creating a run folder")) from err
            try:
                config.run_dir = str(run.path)
                write_json(run.config_file, config.to_dict())
                run.update_status(state="queued", method=method, slot=registry.spec(method).slot,
                                  run_id=run.run_id, created=time.time(), seq=time.time_ns(),
                                  total_steps=config.max_steps, step=0, num_processes=num_processes,
                                  estimate_s=estimate_s, accelerate_config=accelerate_config,
                                  command=self.command(method, run.path, num_processes, accelerate_config))
            except OSError as err:
                shutil.rmtree(run.path, ignore_errors=True)
                raise RunsFolderError(folder_message(self.root, err, "writing the new run")) from err
        return run

    def list_runs(self) -> list[dict]:
        """Every run's checked status (plus ``run_id``, ``run_dir``, ``queue_position`` when
        queued), newest first. Reads only status files changed since the last call.

        Raises:
            RunsFolderError: the runs folder cannot be listed.
        """
        with self._lock:
            try:
                runs = list(self._statuses.scan().values())
            except FileNotFoundError:
                return []
            except OSError as err:
                raise RunsFolderError(folder_message(self.root, err, "listing runs")) from err
        queued = sorted((r for r in runs if r["state"] == "queued"), key=_queue_key)
        for i, r in enumerate(queued, 1):
            r["queue_position"] = i
        return sorted(runs, key=_queue_key, reverse=True)

    def run(self, run_id: str) -> RunFolder:
        """The folder of ``run_id`` (a direct child of the runs folder).

        Raises:
            ValueError: not a run id, or no such run.
        """
        check_run_id(run_id)
        path = self.root / run_id
        if path.is_symlink() or not (path / "status.json").is_file():
            raise ValueError(f"run_id {run_id!r}: no such run in the runs folder {self.root}.")
        return RunFolder(path)

    def status(self, run_id: str) -> dict:
        """The checked status of ``run_id`` (``{}`` if unreadable); ``running`` whatever its file
        says while a process trains it (so it is neither resumed nor deleted then). Raises
        ValueError like :meth:`run`."""
        self.run(run_id)
        with self._lock:
            status = self._statuses.get(run_id) or {}
        if status.get("state") not in (None, "running") and (who := liveness.holder(self.root / run_id)):
            status = {**status, "state": "running", "error": f"still running in another process ({who})"}
        return status

    # ---- lifecycle ---------------------------------------------------------------------------
    def tick(self) -> None:
        """Reap ended children, settle runs whose process is gone, enforce cancel timeouts, and
        start the oldest queued run when none is running. Looks only at queued and running runs;
        does nothing when another runner is ticking the same folder (the next tick does it).

        Raises:
            OSError: the runs folder cannot be read or written (the watcher logs it once).
        """
        with self._lock:
            self._reap()
            with liveness.open_lock(self.root / RUNNER_LOCK) as lock:
                if not liveness.try_lock(lock):  # another app ticks this folder: the next tick retries
                    return  # (never wait: list_runs and status wait on self._lock meanwhile)
                active = [s for s in self._statuses.scan(active_only=True).values()
                          if s["state"] in ACTIVE_STATES]
                running = [s for s in active if s["state"] == "running"]
                still = [s for s in running if self._check_alive(s)]
                self._forget(running)
                queued = sorted((s for s in active if s["state"] == "queued"), key=_queue_key)
                if not still and queued and not any(liveness.holder(self.root / s["run_id"]) for s in queued):
                    self._launch(queued[0])

    def _reap(self) -> None:
        """``poll()`` every child we started: collects its exit status, so none stays a zombie."""
        for run_id, proc in list(self._procs.items()):
            code = proc.poll()
            if code is not None:
                self._exit_codes[run_id] = code
                del self._procs[run_id]

    def _forget(self, running: list[dict]) -> None:
        """Drop the exit codes and kill marks of runs no longer running (settled by their child)."""
        keep = {s["run_id"] for s in running} | set(self._procs)
        self._exit_codes = {k: v for k, v in self._exit_codes.items() if k in keep}
        self._killed &= keep

    def _ours(self, run_id: str, status: dict) -> bool:
        """True if the run's process is one of ours and alive: a child of this runner, or (after an
        app restart) a process whose pid, start time and marker all match the run."""
        proc = self._procs.get(run_id)
        if proc is not None:
            if (code := proc.poll()) is None:
                return True
            self._exit_codes[run_id] = code  # it ended after _reap: keep its status for the settling
            del self._procs[run_id]
            return False
        return launch.reattachable(status.get("pid"), status.get("pid_created"), self.root / run_id, MARKER_ENV)

    def _check_alive(self, status: dict) -> bool:
        """True while the run's process (ours) lives; otherwise settle its final state."""
        run_id = status["run_id"]
        if self._ours(run_id, status):
            asked = status.get("cancel_requested")
            if asked and time.time() - asked > self.grace_s:
                self._kill_group(run_id, status)
            return True
        if liveness.holder(self.root / run_id):  # alive, started elsewhere: not ours to settle or signal
            return True
        code = self._exit_codes.pop(run_id, None)
        run = RunFolder(self.root / run_id)
        status = self._statuses.get(run_id) or {}  # re-read: the child may have just finished
        if status.get("state") != "running":
            return False
        run.discard_model()
        if status.get("cancel_requested"):
            run.update_status(state="cancelled", finished=time.time(), error=cancel_text(code, run_id in self._killed, self.grace_s))
        else:
            run.update_status(state="failed", finished=time.time(), error=failure_reason(run, status, code))
        self._killed.discard(run_id)
        return False

    def _launch(self, status: dict) -> None:
        """Start the queued run ``status`` describes: command from the run id's method and folder."""
        run_id = status["run_id"]
        run = RunFolder(self.root / run_id)
        method = run_id.split("-", 1)[0]  # the registry allow-lists it (command raises otherwise)
        try:
            num_processes = launch.checked_config(run, method, status)
            accelerate_config = status.get("accelerate_config")
            launch.check_method_processes(method, num_processes, accelerate_config)
            cmd = self.command(method, run.path, num_processes, accelerate_config)
        except ValueError as err:
            run.update_status(state="failed", finished=time.time(), error=f"not started: {err}")
            return
        env = {**os.environ, MARKER_ENV: str(run.path), "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
        try:
            log = open_regular(run.log_file, "ab")  # never through a planted symlink
        except OSError as err:
            return run.update_status(state="failed", finished=time.time(), error=f"not started: {err}")
        with log:
            try:
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        cwd=PROJECT_ROOT, env=env, start_new_session=True)
            except OSError as err:  # e.g. the interpreter is gone: fail this run, keep the app
                run.update_status(state="failed", finished=time.time(),
                                  error=f"Could not start the training process: {err.strerror or err}")
                return
        self._procs[run_id] = proc
        try:
            created = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            created = None
        run.update_status(state="running", pid=proc.pid, pid_created=created, launched=time.time())

    def cancel(self, run_id: str) -> dict:
        """Ask a run to stop: a queued run is cancelled at once; a running one gets a ``cancel``
        file and SIGTERM (only if its process is ours), then its process group is killed if it
        lives past ``grace_s``. Returns the run's checked status after the request.

        Raises:
            ValueError: bad or unknown run id. RunsFolderError: the folder cannot be written.
        """
        with self._lock:
            run = self.run(run_id)
            status = self._statuses.get(run_id) or {}
            state = status.get("state")
            try:
                if state == "queued":
                    run.update_status(state="cancelled", finished=time.time(), error="cancelled while queued")
                elif state == "running":
                    open_regular(run.cancel_file, "ab").close()
                    run.update_status(cancel_requested=time.time())
                    self._signal(run_id, status, signal.SIGTERM)  # python or accelerate, which forwards it
            except OSError as err:
                raise RunsFolderError(folder_message(self.root, err, "cancelling a run")) from err
            return self._statuses.get(run_id) or {}

    def _signal(self, run_id: str, status: dict, sig: int, group: bool = False) -> None:
        """Send ``sig`` to the run's process (or its group) only if it is ours (see :meth:`_ours`)."""
        if not self._ours(run_id, status):
            return
        proc = self._procs.get(run_id)
        pid = proc.pid if proc is not None else status["pid"]
        try:
            if group:
                os.killpg(pid, sig)  # start_new_session: the group id is the leader's pid
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _kill_group(self, run_id: str, status: dict) -> None:
        self._killed.add(run_id)
        self._signal(run_id, status, signal.SIGKILL, group=True)

    def wait(self, run_id: str, timeout: float = 600, poll_s: float = 0.5) -> dict:
        """Tick until ``run_id`` reaches a final state; returns its checked status.

        Raises:
            TimeoutError: not finished within ``timeout`` seconds.
        """
        end = time.time() + timeout
        while time.time() < end:
            self.tick()
            status = self.status(run_id)
            if status.get("state") in FINAL_STATES:
                return status
            time.sleep(poll_s)
        raise TimeoutError(f"Run {run_id} did not finish within {timeout} s.")

    def start_watcher(self, interval_s: float = 1.0) -> None:
        """Tick in a daemon thread (:func:`training.runner.watcher.start`) unless one runs already."""
        if not (self._watcher and self._watcher.is_alive()):
            self._watcher = watcher.start(self.tick, self._errors, interval_s)


def _queue_key(status: dict) -> tuple:
    return (status.get("created") or 0, status.get("seq") or 0, status.get("run_id", ""))
