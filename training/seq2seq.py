"""The seq2seq fine-tuning loop shared by full fine-tuning and LoRA: DialogSum rows, tokens,
transformers' ``Seq2SeqTrainer`` with a callback writing the run folder, Trainer checkpoints
(every ``save_steps``, the last ``save_total_limit`` kept) and resuming from the newest one.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field

from summarizer.data import LengthFilter
from summarizer.runs import RunFolder
from summarizer.tasks import DEFAULT_TASK, load_examples, prompt
from training.config import RunConfig
from training.ranks import StopFlag, agreed_stop, cpu_only, log, mean_over_processes, world_size


@dataclass
class Seq2SeqRunConfig(RunConfig):
    """Settings of the methods trained with ``Seq2SeqTrainer`` (full, LoRA): checkpoints.

    A failed or cancelled run resumes from its newest checkpoint (model in safetensors,
    optimizer, scheduler and RNG state), so ``save_steps`` bounds the steps lost.
    """

    save_steps: int = field(default=50, metadata={
        "help": "Save a checkpoint every N steps, to resume a failed or cancelled run (0 = never)."})
    save_total_limit: int = field(default=1, metadata={
        "help": "Checkpoints kept (the newest); each holds the model and optimizer state."})

    def errors(self) -> list[str]:
        return super().errors() + [m for ok, m in [
            (self.save_steps >= 0, f"save_steps must be 0 or more, got {self.save_steps}"),
            (self.save_total_limit >= 1, f"save_total_limit must be at least 1, got {self.save_total_limit}"),
        ] if not ok]


def load_rows(config: RunConfig, split: str, limit: int):
    """The first ``limit`` examples of ``config.task`` (:func:`summarizer.tasks.load_examples`) of
    ``split`` as rows with ``prompt`` (the task's zero-shot prompt), ``summary`` (the target: the
    first reference; for ``response`` the next turn) and ``references``."""
    length = LengthFilter(config.min_dialogue_chars, config.max_dialogue_chars)
    task = getattr(config, "task", DEFAULT_TASK)
    rows = load_examples(config.dataset, split, task, length=length, limit=limit)
    return rows.map(lambda r: {"prompt": prompt(task, r["dialogue"]), "summary": r["references"][0]})


def tokenize_pairs(rows, tokenizer, config: RunConfig):
    """Token ids of prompts and summaries (unpadded: the collator pads labels with -100)."""
    def encode(batch):
        enc = tokenizer(batch["prompt"], max_length=config.max_source_tokens, truncation=True)
        enc["labels"] = tokenizer(text_target=batch["summary"], max_length=config.max_target_tokens,
                                  truncation=True)["input_ids"]
        return enc
    return rows.map(encode, batched=True, remove_columns=rows.column_names)


def rouge_on_sample(model, tokenizer, rows, max_new_tokens: int = 64) -> dict[str, float]:
    """Greedy summaries of ``rows`` scored with ``summarizer.evaluation.rouge`` (×100, best reference)."""
    from summarizer.inference.generation import GenerationSettings, generate_texts
    from summarizer.evaluation.rouge import score_corpus

    was_training = model.training
    model.eval()
    preds = generate_texts(model, tokenizer, rows["prompt"],
                           GenerationSettings(max_new_tokens=max_new_tokens), batch_size=8)
    if was_training:
        model.train()
    return score_corpus(preds, rows["references"])


def _trainer_callback(run: RunFolder, stop: StopFlag, rouge_rows, tokenizer, started: float):
    from transformers import TrainerCallback

    attempt = len(run.status().get("attempts") or []) + 1

    class RunCallback(TrainerCallback):
        """Writes metrics.jsonl and status step; turns a stop request into should_training_stop."""

        def on_step_end(self, args, state, control, **kwargs):
            if agreed_stop(stop):
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:  # on every rank: the Trainer logs rank 0's own loss on CPU
                logs = {**logs, "loss": mean_over_processes(logs["loss"])}
            if not state.is_world_process_zero or not logs:
                return
            row = {"step": state.global_step, "elapsed": round(time.time() - started, 2), **logs}
            run.append_metrics({**row, "attempt": attempt} if attempt > 1 else row)
            run.record_step(state.global_step, state.max_steps)

        def on_evaluate(self, args, state, control, model=None, **kwargs):
            if rouge_rows is None or not state.is_world_process_zero or model is None:
                return
            scores = rouge_on_sample(model, tokenizer, rouge_rows)
            run.append_metrics({"step": state.global_step, "elapsed": round(time.time() - started, 2),
                                **{f"eval_{k}": round(v, 3) for k, v in scores.items()}})

    return RunCallback()


def training_arguments(config, run: RunFolder, has_validation: bool, eval_steps: int):
    """``Seq2SeqTrainingArguments`` of a run: batch per process, the labs' weight decay 0.01,
    a log row every step, checkpoints in ``run.checkpoints`` (safetensors), DDP over gloo on CPU."""
    from transformers import Seq2SeqTrainingArguments

    save_steps = getattr(config, "save_steps", 0)
    return Seq2SeqTrainingArguments(
        output_dir=str(run.checkpoints), max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate, weight_decay=0.01,  # the labs' weight decay
        logging_steps=1, eval_strategy="steps" if has_validation else "no", eval_steps=eval_steps,
        save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500,
        save_total_limit=getattr(config, "save_total_limit", 1), save_only_model=False,
        report_to=["tensorboard"], seed=config.seed, disable_tqdm=True, dataloader_num_workers=0,
        # Recompute activations in the backward pass (LoRA's default: activations, not weights,
        # dominate its memory); non-reentrant so peft's frozen inputs need no grad.
        gradient_checkpointing=getattr(config, "gradient_checkpointing", False),
        gradient_checkpointing_kwargs={"use_reentrant": False},
        # On a CPU-only machine both are needed for data parallelism: without use_cpu the Trainer
        # sees no distributed state (ParallelMode.NOT_PARALLEL), does not wrap the model in DDP,
        # and each process trains its own copy on its shard (rank 0 saved half-data weights).
        use_cpu=cpu_only(), ddp_backend="gloo" if cpu_only() and world_size() > 1 else None)


def declare_local_mean_loss(model) -> None:
    """Tell the Trainer that ``model``'s loss is the mean over its own batch's tokens.

    Why: T5's and BART's ``forward`` take ``**kwargs`` but compute ``CrossEntropyLoss()`` over the
    local tokens and ignore ``num_items_in_batch``; from the ``**kwargs`` alone transformers 5's
    Trainer concludes the loss is a sum over the global token count and multiplies it by the
    number of processes (``average_tokens_across_devices``). With N processes the logged loss
    and the gradients were N times too large: the doubled loss once seen in a 2-process run
    (the second half of the fix: the logged loss is averaged over processes in the callback).
    ``accepts_loss_kwargs = False`` is the Trainer's own switch for such models (a peft model is
    looked through to its base); the gradients are then DDP's mean of the per-process means.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.accepts_loss_kwargs = False


def train_seq2seq(config, model, tokenizer, run: RunFolder, stop: StopFlag,
                  rouge_samples: int = 0, eval_steps: int = 10) -> dict | None:
    """Train ``model`` with ``Seq2SeqTrainer`` and save it (safetensors) to ``run.model_tmp``;
    resumes from the run's newest checkpoint when it has one (a new attempt of the run).

    Returns the final metrics, or None when stopped early (nothing saved, checkpoints kept).
    """
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer

    started = time.time()
    train_rows = load_rows(config, "train", config.train_size)
    val_rows = load_rows(config, "validation", config.val_size) if config.val_size else None
    rouge_rows = val_rows.select(range(min(rouge_samples, len(val_rows)))) \
        if rouge_samples and val_rows is not None else None
    log.info("Training on %d dialogues, validating on %d.", len(train_rows), len(val_rows or []))
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.path / "tensorboard")
    declare_local_mean_loss(model)
    trainer = Seq2SeqTrainer(
        model=model, args=training_arguments(config, run, val_rows is not None, eval_steps),
        train_dataset=tokenize_pairs(train_rows, tokenizer, config),
        eval_dataset=tokenize_pairs(val_rows, tokenizer, config) if val_rows is not None else None,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
        processing_class=tokenizer,
        callbacks=[_trainer_callback(run, stop, rouge_rows, tokenizer, started)])
    checkpoint = run.last_checkpoint()
    if checkpoint is not None:
        log.info("Resuming from %s.", checkpoint.name)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if stop.requested():
        return None
    final = _final_metrics(trainer, val_rows is not None)
    if trainer.is_world_process_zero():
        trainer.save_model(str(run.model_tmp))  # safetensors; a peft model saves its adapter only
        tokenizer.save_pretrained(str(run.model_tmp))
        (run.model_tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle; config.json says it all
        shutil.rmtree(run.checkpoints, ignore_errors=True)  # finished: nothing left to resume
    return final


def _final_metrics(trainer, has_validation: bool) -> dict:
    """Steps, the last training loss and the final validation loss (evaluated if not yet)."""
    history = trainer.state.log_history
    evals = [h for h in history if "eval_loss" in h]
    if has_validation and (not evals or evals[-1].get("step") != trainer.state.global_step):
        evals.append(trainer.evaluate())
    final = {"steps": trainer.state.global_step}
    losses = [h["loss"] for h in history if "loss" in h]
    if losses:
        final["train_loss"] = round(losses[-1], 4)
    if evals:
        final["eval_loss"] = round(evals[-1]["eval_loss"], 4)
    return final
