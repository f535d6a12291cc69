"""The life of one run in its child process: parse the config, prepare the run folder, train,
and record the outcome (running → completed / cancelled / failed) and the model card. The main
process holds the run's ``.alive`` lock throughout (``training/runner/liveness.py``), whoever started it.

A method module ends with ``main = partial(run_life.main, Config, train)``; ``train(config, run,
stop)`` writes the model into ``run.model_tmp`` and returns final metrics, or None when stopped.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from typing import BinaryIO, Callable, Sequence

from summarizer.runs import RunFolder, new_run_id, runs_dir as default_runs_dir, write_json
from summarizer.tasks import DEFAULT_TASK, DESCRIPTIONS, template
from training.runner import liveness
from training import registry
from training.config import RunConfig, parse_config
from training.ranks import StopFlag, is_main_process, log, world_size


def model_card(run_id: str, config: RunConfig, metrics: dict) -> str:
    """A short model card: what it is (the method's ``card_text``), its task (``summarizer.tasks``)
    and prompt, how to load it, the config and the final metrics."""
    task = getattr(config, "task", DEFAULT_TASK)
    shown = template(task).replace("\n", "\\n")
    spec = registry.spec(config.METHOD)
    load = (f"from peft import PeftModel\nfrom transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
            f"base = AutoModelForSeq2SeqLM.from_pretrained({config.base_model!r})\n"
            f"model = PeftModel.from_pretrained(base, \"{run_id}/model\")\n"
            f"tokenizer = AutoTokenizer.from_pretrained({config.base_model!r})" if spec.adapter else
            f"from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
            f"model = AutoModelForSeq2SeqLM.from_pretrained(\"{run_id}/model\")\n"
            f"tokenizer = AutoTokenizer.from_pretrained(\"{run_id}/model\")")
    lines = [f"# {run_id}", "",
             f"This is {spec.card_text} `{config.base_model}` trained by Dialogue Summarization Studio "
             f"(`python -m {spec.module} --task {task}`) on DialogSum for the `{task}` task "
             f"({DESCRIPTIONS[task]}) with the prompt "
             f"`{shown}`.", "", f"Task: `{task}`.", "",
             "DialogSum is licensed CC BY-NC-SA 4.0: this model is for non-commercial use.", "",
             "## Load", "", "```python", load, "```", "", "## Final metrics", "",
             "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
    lines += ["", "## Config", "", "```json", json.dumps(config.to_dict(), indent=2), "```", ""]
    return "\n".join(lines)


def prepare_run(config: RunConfig) -> tuple[RunFolder, BinaryIO]:
    """The run folder for ``config`` (made if new), with ``config.json`` written, and this
    process's hold on it (:func:`training.runner.liveness.hold`: keep it open while training).

    Raises:
        SystemExit: another process is training this run already, or its ``.alive`` is not a
            regular file (the message says what to do).
    """
    if not config.run_dir:
        config.run_dir = str(default_runs_dir(config.runs_dir) / new_run_id(config.METHOD))
    run = RunFolder(config.run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    # Held before the first write: from then on the app sees this run alive (whoever started it)
    # and never settles it as failed nor lets it be deleted; a second process refuses to start.
    alive = liveness.hold(run.path)
    write_json(run.config_file, config.to_dict())
    if not run.status_file.exists():
        run.update_status(state="queued", method=config.METHOD, slot=registry.spec(config.METHOD).slot,
                          run_id=run.run_id, created=time.time(), total_steps=config.max_steps,
                          task=config.task)
    return run, alive


def finalize(run: RunFolder, config: RunConfig, final_metrics: dict) -> None:
    """Rename ``model.tmp`` to ``model``, write the model card, mark completed."""
    if run.model_dir.exists():
        shutil.rmtree(run.model_dir)
    os.replace(run.model_tmp, run.model_dir)
    (run.path / "README.md").write_text(model_card(run.run_id, config, final_metrics))
    run.update_status(state="completed", finished=time.time(), metrics=final_metrics,
                      step=run.status().get("step", config.max_steps))


def failure_cause(err: BaseException) -> str:
    """One line for the user: the exception's type and message, without the traceback."""
    if isinstance(err, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    text = " ".join(str(err).split())[:500]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def setup_logging(run: RunFolder) -> None:
    """Log to stderr; in the main process not started by the job runner (which redirects
    output to train.log), also to train.log (another rank may start before the folder exists)."""
    handlers = [logging.StreamHandler()]
    if not os.environ.get("STUDIO_JOB_RUNNER") and is_main_process():
        handlers.append(logging.FileHandler(run.log_file))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def check_processes_allowed(method: str) -> None:
    """Refuse a method that runs in one process only when started in several.

    Raises:
        SystemExit: the message says why and what to do.
    """
    spec = registry.spec(method)
    if spec.max_processes is not None and world_size() > spec.max_processes:
        raise SystemExit(f"{spec.title} runs in at most {spec.max_processes} process(es), not "
                         f"{world_size()}: {spec.single_process_reason} Start it with python -m "
                         f"{spec.module} (no accelerate launch).")


def start(config: RunConfig) -> tuple[RunFolder, BinaryIO | None]:
    """The run folder, marked running by the main process (a resumed run keeps its history), and
    the main process's hold on it (None in the other ranks). Raises SystemExit like :func:`prepare_run`."""
    if world_size() > 1 and not config.run_dir:
        raise SystemExit("With several processes (accelerate launch) give --run_dir so that every "
                         "process writes to the same run folder.")
    run, alive = prepare_run(config) if is_main_process() else (RunFolder(config.run_dir), None)
    setup_logging(run)
    if world_size() > 1:
        log.info("Process rank %s of %d.", os.environ.get("RANK"), world_size())
    if is_main_process():
        status = run.status()
        # Started by the job runner: it wrote the pid it watches. Otherwise (the command line) this
        # process is the run's; a stale pid of an earlier attempt must not name it.
        by_runner = os.environ.get("STUDIO_JOB_RUNNER") == str(run.path)
        pid = {"pid": status.get("pid") or os.getpid()} if by_runner else {"pid": os.getpid(), "pid_created": None}
        run.update_status(state="running", method=config.METHOD, task=config.task, started=time.time(),
                          step=status.get("step", 0) if run.last_checkpoint() else 0,
                          total_steps=config.max_steps, worker_pid=os.getpid(), error=None, **pid)
        log.info("Run %s (%s) in %s", run.run_id, config.METHOD, run.path)
    return run, alive


def main(config_cls, train: Callable, argv: Sequence[str] | None = None) -> int:
    """Parse the config, run ``train(config, run, stop)``, record the outcome in status.json.

    Exit status: 0 completed or cancelled, 1 failed (the exception propagates).
    """
    config = parse_config(config_cls, argv)
    check_processes_allowed(config.METHOD)
    run, alive = start(config)
    try:
        return _train(config, train, run)
    finally:
        if alive is not None:  # released after the final status write (also when main runs in a test)
            alive.close()


def _train(config: RunConfig, train: Callable, run: RunFolder) -> int:
    """:func:`main` after the start: train, then record completed, cancelled or failed."""
    stop = StopFlag(run).install()
    main_proc = is_main_process()
    try:
        final = train(config, run, stop)
    except BaseException as err:
        if main_proc:
            run.discard_model()
            # The user sees the cause; the traceback (with its file paths) goes to stderr, which
            # is train.log under the job runner.
            run.update_status(state="failed", finished=time.time(), error=failure_cause(err))
        raise
    if not main_proc:
        return 0
    if final is None or stop.requested():
        run.discard_model()
        run.update_status(state="cancelled", finished=time.time(), error="stopped on request")
        log.info("Run %s cancelled; no model saved.", run.run_id)
        return 0
    finalize(run, config, final)
    log.info("Run %s completed: %s", run.run_id, final)
    return 0
