"""What a user does with a run besides starting and cancelling it: resume a failed or cancelled
run from its last checkpoint, delete a finished run, export a finished run as a zip (with the
``huggingface-cli upload`` command for it).

Every action takes a :class:`training.jobs.JobRunner` (its run-id checks and status cache) and
refuses runs in the wrong state with a message naming the run and what to do.
"""
from __future__ import annotations

import shlex
import shutil
import time
import zipfile
from pathlib import Path

from summarizer.runs import FINAL_STATES
from training import registry

# What an export holds: the model or adapter folder, the card, the metrics, the config; never a
# pickle (``*.bin``, ``*.pt``, ``*.pth``, ``*.pkl``), never checkpoints or logs of other things.
EXPORT_FILES = ("README.md", "metrics.jsonl", "config.json", "status.json")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def resume_run(runner, run_id: str) -> dict:
    """Queue ``run_id`` again as a new attempt that resumes from its newest checkpoint; the
    previous attempt (state, error, times, step) is appended to ``attempts`` in status.json and
    metrics.jsonl keeps its rows. Returns the checked status.

    Raises:
        ValueError: bad or unknown run id; a method that cannot resume (PPO); a run that is not
            failed or cancelled; no checkpoint yet (the message says what to do).
    """
    with runner._lock:
        run = runner.run(run_id)
        status = runner.status(run_id)
        spec = registry.spec(status.get("method"))
        if not spec.resumable:
            raise ValueError(f"run_id {run_id}: {spec.title} runs cannot resume (no Trainer checkpoints); "
                             "clone its settings and start a new run.")
        if status.get("state") not in ("failed", "cancelled"):
            raise ValueError(f"run_id {run_id} is {status.get('state')}: only a failed or cancelled run resumes.")
        checkpoint = run.last_checkpoint()
        if checkpoint is None:
            raise ValueError(f"run_id {run_id} has no checkpoint to resume from (it stopped before its first "
                             "save_steps); clone its settings and start a new run.")
        previous = {k: status.get(k) for k in ("state", "error", "started", "finished", "step")}
        run.cancel_file.unlink(missing_ok=True)  # else the new attempt would stop at once
        run.update_status(state="queued", attempts=[*(status.get("attempts") or []), previous],
                          resumed=time.time(), resume_from=checkpoint.name, error=None, finished=None,
                          cancel_requested=None, pid=None, pid_created=None, seq=time.time_ns())
    runner.tick()
    return runner.status(run_id)


def delete_run(runner, run_id: str, confirm: str = "") -> None:
    """Remove a finished run's folder; ``confirm`` must repeat ``run_id`` (the UI's confirmation).

    Raises:
        ValueError: bad or unknown run id, ``confirm`` differs, or the run is queued or running.
    """
    with runner._lock:
        run = runner.run(run_id)
        state = runner.status(run_id).get("state")
        if state not in FINAL_STATES:
            raise ValueError(f"run_id {run_id} is {state or 'unreadable'}: only a completed, failed or cancelled "
                             "run can be deleted; cancel it first.")
        if confirm != run_id:
            raise ValueError(f"confirm must repeat the run id ({run_id}) to delete it; nothing was deleted.")
        shutil.rmtree(run.path)


def export_run(runner, run_id: str, out_dir: str | Path) -> Path:
    """Write ``<out_dir>/<run_id>.zip``: ``model/`` (safetensors and JSON/text files only) and the
    run's card, metrics, config and status. Returns the zip's path.

    Raises:
        ValueError: bad or unknown run id, or the run is not completed with a model.
    """
    run = runner.run(run_id)
    if runner.status(run_id).get("state") != "completed" or not _own_model_dir(run):
        raise ValueError(f"run_id {run_id} has no finished model to export: only a completed run exports.")
    out = Path(out_dir) / f"{run_id}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(run.model_dir.rglob("*")):
            inside = path.resolve().is_relative_to(run.model_dir.resolve())  # no link out of the run
            if inside and path.is_file() and not path.is_symlink() and path.suffix not in PICKLE_SUFFIXES:
                zf.write(path, f"{run_id}/model/{path.relative_to(run.model_dir)}")
        for name in EXPORT_FILES:
            path = run.path / name
            if path.is_file() and not path.is_symlink():
                zf.write(path, f"{run_id}/{name}")
    return out


def upload_command(runner, run_id: str, repo_id: str = "") -> str:
    """The ``huggingface-cli upload`` command that publishes the run's model folder (the login
    and token are the user's: ``huggingface-cli login`` first).

    Raises:
        ValueError: bad or unknown run id, or no finished model.
    """
    run = runner.run(run_id)
    if not _own_model_dir(run):
        raise ValueError(f"run_id {run_id} has no finished model to upload: only a completed run uploads.")
    repo = repo_id.strip() if isinstance(repo_id, str) and repo_id.strip() else f"<your-name>/{run_id}"
    return shlex.join(["huggingface-cli", "upload", repo, str(run.model_dir)])


def _own_model_dir(run) -> bool:
    """True when the run's ``model/`` is a real folder inside the run, not a (planted) symlink."""
    return run.model_dir.is_dir() and not run.model_dir.is_symlink()
