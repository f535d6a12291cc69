"""Train tab, handlers behind the named API endpoints: each checks its input, calls the job
runner or ``training.runner.run_actions``, and turns a refused request into ``gr.Error`` naming the field.

Reading handlers (list, metrics, overlay) never start a queued run: the runner's watcher does.
"""
from __future__ import annotations

import gradio as gr

from training import registry
from training.runner import run_actions
from training.runner.estimate import estimate, finished_for_calibration
from training.runner.jobs import JobRunner, RunsFolderError
from training.runner.settings import read_small_json
from ui.access import teacher_only
from ui.train.form import parse_settings
from ui.common import user_errors as common_user_errors
from ui.train.monitor import RunReader


def user_errors():
    """:func:`ui.common.user_errors` for the runner's refusals (``ValueError``/``TypeError``, naming the field)."""
    return common_user_errors((ValueError, TypeError))


def run_settings(runner: JobRunner, run_id: str) -> tuple[str, dict, int] | None:
    """(method, settings, processes) of a run from its config.json, validated by the method's
    config class; None when missing or invalid."""
    status = runner.status(run_id)
    try:
        spec = registry.spec(status.get("method"))
    except ValueError:
        return None
    values = read_small_json(runner.run(run_id).config_file)
    try:
        config = spec.config(**values)
    except (TypeError, ValueError):
        return None
    return spec.name, config.to_dict(), status.get("num_processes") or 1


class TrainHandlers:
    """The Train tab's actions on ``studio``'s runs folder (one :class:`JobRunner`)."""

    def __init__(self, studio):
        self.studio = studio
        self.runner = JobRunner(studio.runs_dir, accelerate_configs=getattr(studio, "accelerate_configs", ()))
        self.runner.start_watcher()
        self.reader = RunReader(self.runner)
        self._configs: dict = {}

    def current_estimate(self, method: str, values: dict):
        """The time estimate of a ``method`` run, calibrated from this folder's finished runs."""
        try:
            runs = self.runner.list_runs()
        except RunsFolderError:
            runs = []
        return estimate(method, values, finished_for_calibration(runs, self._configs))

    def _defaults(self, method: str, values) -> None:
        """The app's base model, dataset and (for a method with one) toxicity model by default."""
        if not isinstance(values, dict):
            return
        if values.get("base_model") is None or (isinstance(values["base_model"], str)
                                                and not values["base_model"].strip()):
            values["base_model"] = self.studio.slots.config.base  # the app's base, not the hub id
        values.setdefault("dataset", str(self.studio.dataset))
        if "toxicity_model" in registry.spec(method).config.__dataclass_fields__:
            values.setdefault("toxicity_model", self.studio.toxicity.model_name)

    @teacher_only
    def start_run(self, method: str, settings_json: str, num_processes: float = 1) -> str:
        """Queue a run. Reads: the settings. Writes: a new run folder. Returns the run id."""
        return self.queue_run(method, settings_json, num_processes)

    def queue_run(self, method: str, settings_json: str, num_processes: float = 1,
                  accelerate_config: str = "") -> str:
        """:meth:`start_run` with an accelerate config file (the Train form's; an untrusted path,
        checked by the runner). Raises ``gr.Error`` naming the refused field."""
        with user_errors():
            registry.spec(method)
            values = parse_settings(settings_json)
            self._defaults(method, values)
            try:
                est = self.current_estimate(method, values).seconds
            except (ValueError, TypeError, OSError, OverflowError, AttributeError):
                est = None  # the settings are bad: submit says which
            return self.runner.submit(method, values, num_processes, estimate_s=est,
                                      accelerate_config=accelerate_config or None)

    @teacher_only
    def list_runs(self) -> list[dict]:
        """Every run (queued, running and finished), newest first. Reads: the runs folder."""
        with user_errors():
            return self.runner.list_runs()

    @teacher_only
    def cancel_run(self, run_id: str) -> dict:
        """Ask the run to stop (graceful, then killed after a grace period). Writes: cancel file."""
        with user_errors():
            return self.runner.cancel(run_id)

    @teacher_only
    def run_metrics(self, run_id: str) -> dict:
        """A run's status, metric rows and log tail. Reads: status.json, metrics.jsonl, train.log."""
        with user_errors():
            return self.reader.info(run_id)

    @teacher_only
    def resume_run(self, run_id: str) -> dict:
        """Queue a failed or cancelled full/LoRA run again from its last checkpoint (a new attempt).
        Writes: status.json (attempts). Returns the run's status."""
        with user_errors():
            return run_actions.resume_run(self.runner, run_id)

    @teacher_only
    def delete_run(self, run_id: str, confirm: str = "") -> str:
        """Delete a finished run; ``confirm`` must repeat the run id. Removes its folder."""
        with user_errors():
            run_actions.delete_run(self.runner, run_id, confirm)
            return f"Deleted run {run_id}."

    @teacher_only
    def overlay_runs(self, run_ids: list) -> dict:
        """Curves of several runs against step, with their differing settings. Reads: metrics.jsonl,
        config.json of each run."""
        with user_errors():
            return self.reader.overlay(run_ids or [])

    @teacher_only
    def export_run(self, run_id: str, repo_id: str = "") -> dict:
        """A finished run as a zip (model/adapter, card, metrics, config; no pickles) and the
        ``huggingface-cli upload`` command. Writes: the zip in a new private folder of the temp folder."""
        with user_errors():
            if not isinstance(repo_id, str):
                raise ValueError(f"repo_id must be text such as your-name/my-model, got {type(repo_id).__name__}.")
            path = run_actions.export_run(self.runner, run_id)  # a fresh private folder per export
            return {"zip": str(path), "upload_command": run_actions.upload_command(self.runner, run_id, repo_id[:200])}

    def register_api(self) -> None:
        """The named endpoints (``/start_run``, ``/list_runs``, ``/cancel_run``, ``/run_metrics``,
        ``/resume_run``, ``/delete_run``, ``/overlay_runs``, ``/export_run``)."""
        for fn in (self.start_run, self.list_runs, self.cancel_run, self.run_metrics, self.resume_run,
                   self.delete_run, self.overlay_runs, self.export_run):
            gr.api(fn, api_name=fn.__name__, concurrency_id="train-runs", concurrency_limit=4)
