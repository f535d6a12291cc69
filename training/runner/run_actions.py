"""What a user does with a run besides starting and cancelling it: resume a failed or cancelled
run from its last checkpoint, delete a finished run, export a finished run as a zip (with the
``huggingface-cli upload`` command for it).

Every action takes a :class:`training.runner.jobs.JobRunner` (its run-id checks and status cache) and
refuses runs in the wrong state with a message naming the run and what to do.
"""
from __future__ import annotations

import os
import shlex
import shutil
import tempfile
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
        run.update_status(state="queued", first_step=None, first_step_at=None,  # measured anew per attempt
                          attempts=[*(status.get("attempts") or []), previous],
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


def export_run(runner, run_id: str, out_dir: str | Path | None = None) -> Path:
    """Write ``<out_dir>/<run_id>.zip``: ``model/`` (safetensors and JSON/text files only) and the
    run's card, metrics, config and status. Returns the zip's path.

    ``out_dir`` defaults to a new private folder (``tempfile.mkdtemp``) in the temp folder, where
    gradio serves files from: a fixed shared folder would let another user plant
    ``<run_id>.zip`` as a link to a file of ours, which the zip would overwrite. The zip is
    created exclusively and never through a link, in any folder.

    Raises:
        ValueError: bad or unknown run id, or the run is not completed with a model.
        OSError: the zip cannot be written (``FileExistsError``: ``<run_id>.zip`` is already there).
    """
    run = runner.run(run_id)
    if runner.status(run_id).get("state") != "completed" or not _own_model_dir(run):
        raise ValueError(f"run_id {run_id} has no finished model to export: only a completed run exports.")
    folder = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="studio-export-"))
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{run_id}.zip"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
        _add_model(zf, run, run_id)
        for name in EXPORT_FILES:
            path = run.path / name
            if path.is_file() and not path.is_symlink():
                zf.write(path, f"{run_id}/{name}")
    return out


def _add_model(zf: zipfile.ZipFile, run, run_id: str) -> None:
    """The files of the run's ``model/``: no pickles, no links, nothing resolving outside it."""
    model_dir = run.model_dir.resolve()
    for path in sorted(run.model_dir.rglob("*")):
        try:
            inside = path.resolve().is_relative_to(model_dir)  # no link out of the run
        except (RuntimeError, OSError):  # a link loop: not a file to export
            continue
        if inside and path.is_file() and not path.is_symlink() and path.suffix not in PICKLE_SUFFIXES:
            zf.write(path, f"{run_id}/model/{path.relative_to(run.model_dir)}")


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
