"""What every training method shares: config parsing, the run folder, graceful stop, data, the
Seq2SeqTrainer loop (full and LoRA) and the cost estimate.

A method module (``training/full.py``, ``lora.py``, ``ppo.py``) defines a config dataclass that
extends :class:`RunConfig` and a ``train(config, run, stop)`` function, and ends with
``main = partial(common.main, Config, train)``. :func:`main` parses flags or one JSON file
(``--config run/config.json``), validates the config before any model loads, and turns the run
folder's ``status.json`` into running → completed / cancelled / failed.

Run folder (the contract read by ``summarizer.runs`` and the Train tab)::

    <runs_dir>/<run_id>/
        config.json     the method's config (every field), as given to --config
        status.json     state (queued/running/completed/failed/cancelled), method, pid, times,
                        step/total_steps, error, final metrics
        metrics.jsonl   one JSON object per logged step
        train.log       stdout and stderr of the run
        tensorboard/    TensorBoard events (fine-tuning)
        model.tmp/      the model while it is written; renamed to model/ only when complete
        model/          the finished model (full) or peft adapter (lora, ppo), safetensors
        README.md       model card: config and final metrics
        cancel          written by the job runner to ask for a graceful stop
"""
from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, ClassVar, Sequence

from summarizer.data import LengthFilter, default_dataset, load_split
from summarizer.models import DEFAULT_BASE_MODEL
from summarizer.prompts import zero_shot
from summarizer.runs import runs_dir as default_runs_dir

log = logging.getLogger("training")

STATES = ("queued", "running", "completed", "failed", "cancelled")
FINAL_STATES = ("completed", "failed", "cancelled")
# LoRA target modules per architecture (config.model_type): the attention query and value
# projections, as in the course lab (t5: "q", "v") and the LoRA paper (Hu et al., 2021, §7.1).
LORA_TARGETS = {"t5": ["q", "v"], "mt5": ["q", "v"], "umt5": ["q", "v"], "longt5": ["q", "v"],
                "bart": ["q_proj", "v_proj"], "mbart": ["q_proj", "v_proj"],
                "pegasus": ["q_proj", "v_proj"], "marian": ["q_proj", "v_proj"]}


# ---- config ----------------------------------------------------------------------------------
@dataclass
class RunConfig:
    """Settings every method shares. Defaults follow the course labs where they set one.

    Sources: base model ``google/flan-t5-base`` and the zero-shot prompt
    (``summarizer.prompts.ZERO_SHOT_TEMPLATE``) are the labs'; the rest are ours, sized for a CPU.
    """

    METHOD: ClassVar[str] = ""

    base_model: str = field(default=DEFAULT_BASE_MODEL, metadata={
        "help": "Seq2seq base model: hub id or local folder (FLAN-T5 or BART)."})
    dataset: str | None = field(default=None, metadata={
        "help": "DialogSum hub id or local folder (default: $DIALOGSUM_DIR, else "
                "knkarthick/dialogsum)."})
    train_size: int = field(default=1000, metadata={
        "help": "Number of training dialogues used (the first N of the train split, after the "
                "length filter)."})
    val_size: int = field(default=50, metadata={
        "help": "Number of validation dialogues for the validation loss (0 = no validation)."})
    min_dialogue_chars: int | None = field(default=None, metadata={
        "help": "Keep dialogues longer than this many characters (None = no lower bound)."})
    max_dialogue_chars: int | None = field(default=None, metadata={
        "help": "Keep dialogues of at most this many characters (None = no upper bound)."})
    max_steps: int = field(default=100, metadata={"help": "Number of optimizer steps."})
    batch_size: int = field(default=8, metadata={"help": "Dialogues per step (per process)."})
    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate."})
    max_source_tokens: int = field(default=512, metadata={
        "help": "Prompt tokens kept (FLAN-T5's encoder limit is 512)."})
    max_target_tokens: int = field(default=128, metadata={"help": "Summary tokens kept."})
    seed: int = field(default=42, metadata={"help": "Random seed (data order, sampling, init)."})
    runs_dir: str | None = field(default=None, metadata={
        "help": "Folder holding run folders (default: $STUDIO_RUNS_DIR, else ./runs)."})
    run_dir: str | None = field(default=None, metadata={
        "help": "This run's folder (default: a new <runs_dir>/<method>-<time> folder). The job "
                "runner sets it."})

    def __post_init__(self):
        from training import settings

        self.dataset = self.dataset or default_dataset()
        errors = settings.type_errors(self)  # first: the range checks compare numbers
        if not errors:
            errors = self.errors() + settings.bound_errors(self)
        if not errors:  # paths last: they read the disk (and, for target modules, a config)
            errors = settings.path_errors(self)
        if errors:
            raise ValueError(f"Invalid {self.METHOD} config: " + "; ".join(errors) + ".")

    def errors(self) -> list[str]:
        """Messages for every out-of-range field (methods extend this list)."""
        checks = [
            (bool(str(self.base_model).strip()), "base_model is empty: give a hub id or model folder"),
            (self.train_size >= 1, f"train_size must be at least 1, got {self.train_size}"),
            (self.val_size >= 0, f"val_size must be 0 or more, got {self.val_size}"),
            (self.max_steps >= 1, f"max_steps must be at least 1, got {self.max_steps}"),
            (self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}"),
            (0 < self.learning_rate < 1, f"learning_rate must be in (0, 1), got {self.learning_rate}"),
            (1 <= self.max_source_tokens <= 4096, f"max_source_tokens must be 1..4096, got {self.max_source_tokens}"),
            (1 <= self.max_target_tokens <= 1024, f"max_target_tokens must be 1..1024, got {self.max_target_tokens}"),
            (self.min_dialogue_chars is None or self.max_dialogue_chars is None
             or self.min_dialogue_chars < self.max_dialogue_chars,
             "min_dialogue_chars must be below max_dialogue_chars"),
        ]
        return [msg for ok, msg in checks if not ok]

    def to_dict(self) -> dict:
        return asdict(self)


def parser_for(config_cls):
    from transformers import HfArgumentParser

    return HfArgumentParser(config_cls, description=(config_cls.__doc__ or "").split("\n\n")[0])


def parse_config(config_cls, argv: Sequence[str] | None = None):
    """Parse flags, or ``--config file.json`` (flags given as well override the file).

    Raises:
        SystemExit: bad flags or an invalid config (with the message), before any model loads.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = parser_for(config_cls)
    parser.add_argument("--config", help="JSON file with config fields (flags override it)")
    names = {f.name for f in fields(config_cls)}
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            parser.error("--config needs a JSON file path")
        path = argv.pop(i + 1)
        argv.pop(i)
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            parser.error(f"cannot read config file {path}: {err}")
        unknown = sorted(set(values) - names)
        if unknown:
            parser.error(f"unknown field(s) in {path}: {', '.join(unknown)}")
        parser.set_defaults(**values)
        for action in parser._actions:  # a field given in the file is no longer required
            if action.dest in values:
                action.required = False
    try:
        config = parser.parse_args_into_dataclasses(args=argv)[0]  # [1] is the --config namespace
    except ValueError as err:
        parser.error(str(err))
    return config


# ---- run folder ------------------------------------------------------------------------------
def write_json(path: Path, obj) -> None:
    """Write ``obj`` as JSON atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=2, default=str))
        os.replace(tmp, path)
    except BaseException:  # a full disk: leave no half-written temporary file behind
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):
        return default


def new_run_id(method: str) -> str:
    """``<method>-YYYYmmdd-HHMMSS-<ms>``: sortable and unique enough for one machine."""
    now = time.time()
    return f"{method}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}-{int(now * 1000) % 1000:03d}"


class RunFolder:
    """Reads and writes one run folder (see the module docstring for its layout)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    config_file = property(lambda self: self.path / "config.json")
    status_file = property(lambda self: self.path / "status.json")
    metrics_file = property(lambda self: self.path / "metrics.jsonl")
    log_file = property(lambda self: self.path / "train.log")
    model_tmp = property(lambda self: self.path / "model.tmp")
    model_dir = property(lambda self: self.path / "model")
    cancel_file = property(lambda self: self.path / "cancel")

    @property
    def run_id(self) -> str:
        return self.path.name

    def status(self) -> dict:
        """The parsed status.json (``{}`` when missing, unreadable or not a JSON object)."""
        status = read_json(self.status_file, {})
        return status if isinstance(status, dict) else {}

    def update_status(self, **values) -> dict:
        """Merge ``values`` into ``status.json`` (atomic write) and return the new status."""
        status = {**self.status(), **values}
        write_json(self.status_file, status)
        return status

    def append_metrics(self, row: dict) -> None:
        """Append one JSON line to ``metrics.jsonl`` (one ``write`` call, so readers see whole lines)."""
        with open(self.metrics_file, "a") as f:
            f.write(json.dumps(row, default=float) + "\n")

    def metrics(self) -> list[dict]:
        rows = []
        try:
            lines = self.metrics_file.read_text().splitlines()
        except OSError:
            return rows
        for line in lines:
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line being written right now
                continue
        return rows

    def log_tail(self, chars: int = 20_000) -> str:
        try:
            with open(self.log_file, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - chars))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def finalize(self, config: RunConfig, final_metrics: dict) -> None:
        """Rename ``model.tmp`` to ``model``, write the model card, mark completed."""
        if self.model_dir.exists():
            shutil.rmtree(self.model_dir)
        os.replace(self.model_tmp, self.model_dir)
        (self.path / "README.md").write_text(model_card(self.run_id, config, final_metrics))
        self.update_status(state="completed", finished=time.time(), metrics=final_metrics,
                           step=self.status().get("step", config.max_steps))

    def discard_model(self) -> None:
        shutil.rmtree(self.model_tmp, ignore_errors=True)


def model_card(run_id: str, config: RunConfig, metrics: dict) -> str:
    """A short model card: what it is, how to load it, the config and the final metrics."""
    adapter = config.METHOD in ("lora", "ppo")
    load = (f"from peft import PeftModel\nfrom transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
            f"base = AutoModelForSeq2SeqLM.from_pretrained({config.base_model!r})\n"
            f"model = PeftModel.from_pretrained(base, \"{run_id}/model\")\n"
            f"tokenizer = AutoTokenizer.from_pretrained({config.base_model!r})" if adapter else
            f"from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
            f"model = AutoModelForSeq2SeqLM.from_pretrained(\"{run_id}/model\")\n"
            f"tokenizer = AutoTokenizer.from_pretrained(\"{run_id}/model\")")
    what = {"full": "a fully fine-tuned", "lora": "a LoRA adapter (peft) for",
            "ppo": "a PPO-detoxified LoRA adapter (peft) for"}[config.METHOD]
    lines = [f"# {run_id}", "",
             f"This is {what} `{config.base_model}` trained by Dialogue Summarization Studio "
             f"(`python -m training.{config.METHOD}`) to summarize DialogSum dialogues with the prompt "
             "`Summarize the following conversation.\\n\\n{dialogue}\\n\\nSummary: `.", "",
             "DialogSum is licensed CC BY-NC-SA 4.0: this model is for non-commercial use.", "",
             "## Load", "", "```python", load, "```", "", "## Final metrics", "",
             "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
    lines += ["", "## Config", "", "```json", json.dumps(config.to_dict(), indent=2), "```", ""]
    return "\n".join(lines)


def prepare_run(config: RunConfig) -> RunFolder:
    """The run folder for ``config`` (made if new), with ``config.json`` written."""
    if not config.run_dir:
        config.run_dir = str(default_runs_dir(config.runs_dir) / new_run_id(config.METHOD))
    run = RunFolder(config.run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    write_json(run.config_file, config.to_dict())
    if not run.status_file.exists():
        run.update_status(state="queued", method=config.METHOD, run_id=run.run_id, created=time.time(),
                          total_steps=config.max_steps)
    return run


# ---- graceful stop ---------------------------------------------------------------------------
class StopFlag:
    """Set by SIGTERM/SIGINT or by a ``cancel`` file in the run folder.

    The training loops check :meth:`requested` once per step, so a stop takes effect at the
    next step boundary (LLaMA-Factory's callbacks do the same). A second Ctrl-C stops at once.
    """

    def __init__(self, run: RunFolder | None = None):
        self.run = run
        self._event = threading.Event()

    def install(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        return self

    def _on_signal(self, signum, frame):
        if self._event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.warning("Received %s: stopping after the current step.", signal.Signals(signum).name)
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def requested(self) -> bool:
        if not self._event.is_set() and self.run is not None and self.run.cancel_file.exists():
            log.warning("Cancel file found: stopping after the current step.")
            self._event.set()
        return self._event.is_set()


def agreed_stop(stop: StopFlag) -> bool:
    """``stop.requested()`` agreed over all processes (max), so every rank stops at the same step."""
    import torch
    import torch.distributed as dist

    flag = stop.requested()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        flag = bool(t.item())
        if flag:
            stop.set()
    return flag


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


# ---- data ------------------------------------------------------------------------------------
def load_rows(config: RunConfig, split: str, limit: int):
    """``limit`` DialogSum dialogues of ``split`` as (prompt, summary, references) rows."""
    length = LengthFilter(config.min_dialogue_chars, config.max_dialogue_chars)
    rows = load_split(config.dataset, split, length=length, limit=limit)
    return rows.map(lambda r: {"prompt": zero_shot(r["dialogue"]), "summary": r["references"][0]})


def tokenize_pairs(rows, tokenizer, config: RunConfig):
    """Token ids of prompts and summaries (unpadded: the collator pads labels with -100)."""
    def encode(batch):
        enc = tokenizer(batch["prompt"], max_length=config.max_source_tokens, truncation=True)
        enc["labels"] = tokenizer(text_target=batch["summary"], max_length=config.max_target_tokens,
                                  truncation=True)["input_ids"]
        return enc
    return rows.map(encode, batched=True, remove_columns=rows.column_names)


# ---- fine-tuning loop (full and LoRA) ---------------------------------------------------------
def rouge_on_sample(model, tokenizer, rows, max_new_tokens: int = 64) -> dict[str, float]:
    """Greedy summaries of ``rows`` scored with ``summarizer.rouge`` (×100, best reference)."""
    from summarizer.generation import GenerationSettings, generate_texts
    from summarizer.rouge import score_corpus

    was_training = model.training
    model.eval()
    preds = generate_texts(model, tokenizer, rows["prompt"],
                           GenerationSettings(max_new_tokens=max_new_tokens), batch_size=8)
    if was_training:
        model.train()
    return score_corpus(preds, rows["references"])


def _trainer_callback(run: RunFolder, stop: StopFlag, rouge_rows, tokenizer, started: float):
    from transformers import TrainerCallback

    class RunCallback(TrainerCallback):
        """Writes metrics.jsonl and status step; turns a stop request into should_training_stop."""

        def on_step_end(self, args, state, control, **kwargs):
            if agreed_stop(stop):
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            row = {"step": state.global_step, "elapsed": round(time.time() - started, 2), **logs}
            run.append_metrics(row)
            run.update_status(step=state.global_step, total_steps=state.max_steps)

        def on_evaluate(self, args, state, control, model=None, **kwargs):
            if rouge_rows is None or not state.is_world_process_zero or model is None:
                return
            scores = rouge_on_sample(model, tokenizer, rouge_rows)
            run.append_metrics({"step": state.global_step, "elapsed": round(time.time() - started, 2),
                                **{f"eval_{k}": round(v, 3) for k, v in scores.items()}})

    return RunCallback()


def train_seq2seq(config, model, tokenizer, run: RunFolder, stop: StopFlag,
                  rouge_samples: int = 0, eval_steps: int = 10) -> dict | None:
    """Train ``model`` with ``Seq2SeqTrainer`` and save it (safetensors) to ``run.model_tmp``.

    Returns the final metrics, or None when stopped early (nothing saved).
    """
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

    started = time.time()
    train_rows = load_rows(config, "train", config.train_size)
    val_rows = load_rows(config, "validation", config.val_size) if config.val_size else None
    rouge_rows = val_rows.select(range(min(rouge_samples, len(val_rows)))) \
        if rouge_samples and val_rows is not None else None
    log.info("Training on %d dialogues, validating on %d.", len(train_rows), len(val_rows or []))
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.path / "tensorboard")
    args = Seq2SeqTrainingArguments(
        output_dir=str(run.path / "trainer"), max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate, weight_decay=0.01,  # the labs' weight decay
        logging_steps=1, eval_strategy="steps" if val_rows is not None else "no",
        eval_steps=eval_steps, save_strategy="no", report_to=["tensorboard"], seed=config.seed,
        gradient_checkpointing=getattr(config, "gradient_checkpointing", False),
        gradient_checkpointing_kwargs={"use_reentrant": False},  # peft: frozen inputs need no grad
        disable_tqdm=True, dataloader_num_workers=0, ddp_backend="gloo" if _cpu_only() and _world_size() > 1 else None)
    trainer = Seq2SeqTrainer(
        model=model, args=args, train_dataset=tokenize_pairs(train_rows, tokenizer, config),
        eval_dataset=tokenize_pairs(val_rows, tokenizer, config) if val_rows is not None else None,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
        processing_class=tokenizer,
        callbacks=[_trainer_callback(run, stop, rouge_rows, tokenizer, started)])
    trainer.train()
    if stop.requested():
        return None
    history = trainer.state.log_history
    evals = [h for h in history if "eval_loss" in h]
    if val_rows is not None and (not evals or evals[-1].get("step") != trainer.state.global_step):
        evals.append(trainer.evaluate())
    final = {"steps": trainer.state.global_step}
    losses = [h["loss"] for h in history if "loss" in h]
    if losses:
        final["train_loss"] = round(losses[-1], 4)
    if evals:
        final["eval_loss"] = round(evals[-1]["eval_loss"], 4)
    if trainer.is_world_process_zero():
        trainer.save_model(str(run.model_tmp))  # safetensors; a peft model saves its adapter only
        tokenizer.save_pretrained(str(run.model_tmp))
        (run.model_tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle; config.json says it all
        shutil.rmtree(run.path / "trainer", ignore_errors=True)  # save_strategy="no": only empty dirs
    return final


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _cpu_only() -> bool:
    import torch

    return not torch.cuda.is_available()


# ---- cost estimate ---------------------------------------------------------------------------
# Measured figure (the project brief): a flan-t5-small (77M parameters) full fine-tuning step with
# batch 8, 512 source / 128 target tokens takes about 10 s on 2 CPU threads; flan-t5-base
# (248M) takes 3-4x that, i.e. cost grows about linearly with parameters.
REFERENCE_STEP_S = 10.0
REFERENCE_TOKENS = 8 * (512 + 128)
REFERENCE_PARAMS = 77e6
REFERENCE_THREADS = 2
# LoRA skips weight gradients and optimizer state of the frozen base (~2/3 of a full step).
METHOD_FACTOR = {"full": 1.0, "lora": 0.7}
KNOWN_PARAMS = {"flan-t5-small": 77e6, "flan-t5-base": 248e6, "flan-t5-large": 783e6,
                "t5-small": 60e6, "t5-base": 223e6, "bart-base": 140e6, "bart-large": 406e6}


@functools.lru_cache(maxsize=64)  # the Train tab asks again on every form change
def parameter_count(base_model: str) -> float:
    """Parameters of ``base_model``: counted from a local config (no weights read), else a
    table of known hub models, else flan-t5-base's."""
    path = Path(str(base_model)).expanduser()
    if (path / "config.json").is_file():
        try:
            import torch
            from transformers import AutoConfig, AutoModelForSeq2SeqLM

            with torch.device("meta"):
                model = AutoModelForSeq2SeqLM.from_config(AutoConfig.from_pretrained(path))
            return float(sum(p.numel() for p in model.parameters()))
        except (OSError, ValueError):
            pass
    name = str(base_model).rsplit("/", 1)[-1].lower()
    return KNOWN_PARAMS.get(name, KNOWN_PARAMS["flan-t5-base"])


def estimate_seconds(method: str, base_model: str, steps: int, batch_size: int,
                     source_tokens: int = 512, target_tokens: int = 128,
                     threads: int | None = None, ppo_epochs: int = 1) -> float:
    """Rough wall-clock seconds for a run on CPU, from the calibrated figure above.

    Cost per step = reference step × (tokens / reference tokens) × (parameters / 77M)
    × method factor × (2 / threads). For PPO a step also generates the summaries token by token
    and runs the policy and the reference forward: counted as ``2 + ppo_epochs`` passes over the
    batch's source + output tokens. An upper-bound guide (token counts are the maxima), not a promise.
    """
    import torch

    threads = threads or torch.get_num_threads()
    per_token = REFERENCE_STEP_S / REFERENCE_TOKENS * parameter_count(base_model) / REFERENCE_PARAMS
    tokens = batch_size * (source_tokens + target_tokens)
    factor = METHOD_FACTOR.get(method, (2 + ppo_epochs) / 3)
    return steps * tokens * per_token * factor * REFERENCE_THREADS / max(1, threads)


def failure_cause(err: BaseException) -> str:
    """One line for the user: the exception's type and message, without the traceback."""
    if isinstance(err, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    text = " ".join(str(err).split())[:500]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


# ---- entry point -----------------------------------------------------------------------------
def setup_logging(run: RunFolder) -> None:
    """Log to stderr; when not started by the job runner (which redirects output to
    train.log), also to train.log."""
    handlers = [logging.StreamHandler()]
    if not os.environ.get("STUDIO_JOB_RUNNER"):
        handlers.append(logging.FileHandler(run.log_file))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(config_cls, train: Callable, argv: Sequence[str] | None = None) -> int:
    """Parse the config, run ``train(config, run, stop)``, record the outcome in status.json.

    ``train`` writes the model into ``run.model_tmp`` and returns final metrics, or returns None
    when it stopped early. Exit status: 0 completed or cancelled, 1 failed.
    """
    config = parse_config(config_cls, argv)
    if _world_size() > 1 and not config.run_dir:
        raise SystemExit("With several processes (accelerate launch) give --run_dir so that every "
                         "process writes to the same run folder.")
    run = prepare_run(config) if is_main_process() else RunFolder(config.run_dir)
    setup_logging(run)
    stop = StopFlag(run).install()
    main_proc = is_main_process()
    if _world_size() > 1:
        log.info("Process rank %s of %d.", os.environ.get("RANK"), _world_size())
    if main_proc:
        status = run.status()
        run.update_status(state="running", method=config.METHOD, started=time.time(), step=0,
                          total_steps=config.max_steps, worker_pid=os.getpid(),
                          pid=status.get("pid") or os.getpid(), error=None)
        log.info("Run %s (%s) in %s", run.run_id, config.METHOD, run.path)
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
    run.finalize(config, final)
    log.info("Run %s completed: %s", run.run_id, final)
    return 0
