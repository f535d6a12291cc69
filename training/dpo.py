"""DPO (Direct Preference Optimization) of a LoRA adapter on the class's Arena votes.

    python -m training.dpo --help
    python -m training.dpo --votes runs/arena.sqlite3 --class_session current --max_steps 50
    python -m training.dpo --votes prefs.csv --start_adapter runs/<lora-run> --beta 0.1
    python -m training.dpo --votes runs/arena.sqlite3 --export-preferences prefs.jsonl  # no training

The objective is the sigmoid loss of Rafailov et al. 2023, "Direct Preference Optimization: Your
Language Model is Secretly a Reward Model" (arXiv:2305.18290), eq. 7, written here on
transformers' ``Trainer`` (a ``compute_loss``): trl 0.11.4's ``DPOTrainer`` does not run under
transformers 5 and newer trl has no encoder-decoder DPO (issue 25). The policy is a LoRA adapter
(a fresh one, or a finished LoRA run's); the reference is the same network with its adapters
disabled (peft's ``disable_adapter()``), so one copy of the weights is held. Each prompt is
encoded once and both answers are decoded from that one encoder output (the encoder reads 512
prompt tokens, the decoder ~60 summary tokens). The reference log-probabilities can be computed
once before training (``precompute_reference``, the default).

Pairs come from ``summarizer.arena.preferences`` (the Arena store, its votes export or a plain
``prompt,chosen,rejected`` file); the run keeps the pairs it trains on in
``<run>/preferences.jsonl``, so a resumed attempt trains on the same pairs.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from summarizer.arena.preferences import (MIN_PAIRS, SESSION_CHOICES, PreferenceError, PreferenceSet,
                                          export_preferences, load_preferences)
from summarizer.arena.store import DB_NAME
from summarizer.runs import RunFolder, runs_dir as default_runs_dir
from training import run_life
from training.ranks import StopFlag, is_main_process, log
from training.registry import ChartPanel, FormField, MethodSpec, RunPicker
from training.seq2seq import Seq2SeqRunConfig, _final_metrics, _trainer_callback, declare_local_mean_loss, training_arguments

PAIRS_FILE = "preferences.jsonl"  # in the run folder: the pairs this run trains on
MARGIN_SAMPLE = 256  # pairs on which the log-prob margin is measured before and after


@dataclass
class DpoRunConfig(Seq2SeqRunConfig):
    """DPO settings (Rafailov et al. 2023, arXiv:2305.18290; trl's ``DPOConfig`` names).

    ``beta`` 0.1 is the paper's default (and trl's); ``label_smoothing`` is the conservative DPO
    of Mitchell 2023 ("A note on DPO with noisy preferences"; trl's sigmoid loss), for votes
    believed flipped with that probability. A fresh adapter uses the LoRA lab's r=32, alpha=32
    on q and v. The learning rate (ours, 1e-4) is above the paper's 1e-6 because only the
    adapter is trained, on a class's few dozen pairs. Dropout is switched off in the whole
    network, as trl does (``disable_dropout``): with it the policy and the reference would
    differ by noise and the margin would not start at 0.
    """

    METHOD = "dpo"

    votes: str | None = field(default=None, metadata={
        "help": "Preference data: the Arena store (default: <runs_dir>/arena.sqlite3, the app's), its "
                "votes export CSV, or a prompt,chosen,rejected CSV/JSONL file."})
    class_session: str = field(default="current", metadata={
        "help": "Which Arena votes: 'current' (the newest class session), 'all', or a class session "
                "id or name (ignored for a plain prompt,chosen,rejected file)."})
    export_preferences: str | None = field(default=None, metadata={
        "help": "Write the preference pairs to this JSONL file (datasets-loadable: load_dataset('json', "
                "data_files=...)) and exit without training."})
    train_size: int = field(default=1000, metadata={"help": "The most preference pairs used (the first N)."})
    val_size: int = field(default=0, metadata={"help": "Unused by DPO (the votes are the data)."})
    max_steps: int = field(default=50, metadata={"help": "Optimizer steps."})
    batch_size: int = field(default=8, metadata={"help": "Preference pairs per step."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate of the adapter."})
    beta: float = field(default=0.1, metadata={
        "help": "Strength of the pull towards the reference (eq. 7's beta; paper and trl: 0.1). "
                "Smaller lets the policy move further from the base."})
    label_smoothing: float = field(default=0.0, metadata={
        "help": "Assumed probability that a vote is flipped (conservative DPO; 0 = plain eq. 7)."})
    precompute_reference: bool = field(default=True, metadata={
        "help": "Compute the reference log-probabilities once before training (one pass over the "
                "pairs) instead of at every step. --no_precompute_reference turns it off."})
    start_adapter: str | None = field(default=None, metadata={
        "help": "LoRA adapter to start from: a finished LoRA run folder (default: a fresh adapter). "
                "The reference is still the base model (adapters disabled)."})
    lora_r: int = field(default=32, metadata={"help": "Rank of a fresh adapter (lab: 32)."})
    lora_alpha: float = field(default=32, metadata={"help": "Alpha of a fresh adapter (lab: 32)."})
    target_modules: str | None = field(default=None, metadata={
        "help": "Modules of a fresh adapter, comma-separated (default: by architecture; t5: q,v)."})
    gradient_checkpointing: bool = field(default=True, metadata={
        "help": "Recompute activations in the backward pass (as LoRA runs do), less memory."})

    def errors(self) -> list[str]:
        return super().errors() + [m for ok, m in [
            (0 < self.beta <= 100, f"beta must be in (0, 100], got {self.beta}"),
            (0 <= self.label_smoothing < 0.5, f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}"),
            (1 <= self.lora_r <= 1024, f"lora_r must be 1..1024, got {self.lora_r}"),
            (self.lora_alpha > 0, f"lora_alpha must be positive, got {self.lora_alpha}"),
            (bool(self.class_session.strip()), "class_session is empty: give 'current', 'all' or a session id"),
        ] if not ok]

    def __post_init__(self):
        super().__post_init__()
        from training.runner.settings import local_path

        try:
            self.votes = str(local_path(self.votes, "votes")) if self.votes else None
            if self.run_dir and (Path(self.run_dir) / PAIRS_FILE).is_file():
                return  # a resumed run trains on the pairs it kept, whatever the votes are now
            found = self.preferences()  # refused here, before a run folder is made or a process starts
            if not self.export_preferences:
                found.require()
        except (PreferenceError, ValueError) as err:
            raise ValueError(f"Invalid {self.METHOD} config: {err}") from None

    def votes_path(self) -> Path:
        """The votes file: ``votes``, else the Arena store of the runs folder."""
        return Path(self.votes) if self.votes else default_runs_dir(self.runs_dir) / DB_NAME

    def preferences(self) -> PreferenceSet:
        """The pairs of :meth:`votes_path` (at most ``train_size``). Raises PreferenceError."""
        found = load_preferences(self.votes_path(), self.class_session)
        found.pairs = found.pairs[:self.train_size]
        return found


# ---- the loss ----------------------------------------------------------------------------------
def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float, label_smoothing: float = 0.0):
    """The sigmoid DPO loss, Rafailov et al. 2023 (arXiv:2305.18290) eq. 7, mean over the batch.

    ``L = -log σ(β [(log πθ(y_w|x) - log π_ref(y_w|x)) - (log πθ(y_l|x) - log π_ref(y_l|x))])``;
    with label smoothing ε (conservative DPO, Mitchell 2023, as trl's ``sigmoid`` loss):
    ``-(1-ε) log σ(β h) - ε log σ(-β h)``.

    Args:
        policy_chosen, policy_rejected, ref_chosen, ref_rejected: (B,) summed log-probabilities
            of each answer given its prompt (nats).
        beta: eq. 7's β > 0. label_smoothing: ε in [0, 0.5).

    Returns:
        (loss scalar, stats): stats are floats: ``reward_chosen``/``reward_rejected`` (mean
        implicit reward β·log-ratio, eq. 5), ``reward_margin`` (their difference),
        ``reward_accuracy`` (share of pairs whose chosen reward is higher), ``logp_chosen``,
        ``logp_rejected`` (policy means).
    """
    import torch.nn.functional as F

    chosen_ratio = policy_chosen - ref_chosen  # (B,) log πθ/π_ref of the preferred answer
    rejected_ratio = policy_rejected - ref_rejected  # (B,)
    logits = beta * (chosen_ratio - rejected_ratio)  # (B,)
    losses = -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    reward_chosen, reward_rejected = beta * chosen_ratio.detach(), beta * rejected_ratio.detach()
    stats = {"reward_chosen": reward_chosen.mean().item(), "reward_rejected": reward_rejected.mean().item(),
             "reward_margin": (reward_chosen - reward_rejected).mean().item(),
             "reward_accuracy": (reward_chosen > reward_rejected).float().mean().item(),
             "logp_chosen": policy_chosen.detach().mean().item(),
             "logp_rejected": policy_rejected.detach().mean().item()}
    return losses.mean(), stats


def sequence_logps(logits, labels):
    """(N,) summed log-probabilities of ``labels`` (N, T; -100 = padding) under ``logits`` (N, T, V)."""
    import torch

    mask = labels != -100  # (N, T)
    safe = labels.masked_fill(~mask, 0)
    token_logps = torch.gather(logits.log_softmax(-1), 2, safe.unsqueeze(-1)).squeeze(-1)  # (N, T)
    return (token_logps * mask).sum(-1)


def _seq2seq(model):
    """The transformers model under a peft wrapper (its LoRA layers are inside it), or ``model``."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decode_logps(model, hidden, attention_mask, labels):
    """(N,) log-probabilities of ``labels`` (N, T) decoded from encoder states ``hidden`` (N, S, d)."""
    from transformers.modeling_outputs import BaseModelOutput

    net = _seq2seq(model)
    out = net(encoder_outputs=BaseModelOutput(last_hidden_state=hidden), attention_mask=attention_mask,
              decoder_input_ids=net.prepare_decoder_input_ids_from_labels(labels=labels), use_cache=False)
    return sequence_logps(out.logits, labels)  # logits (N, T, V)


def pair_logps(model, batch):
    """(chosen, rejected) log-probabilities, each (B,), from ONE encoder pass per prompt.

    ``batch``: ``input_ids``/``attention_mask`` (B, S) and ``chosen_labels``/``rejected_labels``
    (B, T, padded alike with -100). The encoder output is reused for both answers, which are
    decoded together as one batch of 2B (an encoder-decoder needs the prompt only in the encoder).
    """
    import torch

    mask = batch["attention_mask"]
    hidden = _seq2seq(model).get_encoder()(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]])  # (2B, T)
    logps = decode_logps(model, torch.cat([hidden, hidden]), torch.cat([mask, mask]), labels)  # (2B,)
    return logps.chunk(2)


def pair_logps_twice(model, batch):
    """The same as :func:`pair_logps` with the prompt encoded once per answer (what a decoder-only
    recipe such as trl's does); for tests and ``benchmarks/bench_dpo.py``."""
    hidden = lambda: _seq2seq(model).get_encoder()(input_ids=batch["input_ids"],  # noqa: E731
                                                  attention_mask=batch["attention_mask"]).last_hidden_state
    return (decode_logps(model, hidden(), batch["attention_mask"], batch["chosen_labels"]),
            decode_logps(model, hidden(), batch["attention_mask"], batch["rejected_labels"]))


def reference_logps(model, batch):
    """:func:`pair_logps` of the reference: the same network with its adapters disabled, no grad."""
    import torch

    with torch.no_grad(), model.disable_adapter():
        return pair_logps(model, batch)


def no_dropout_config(base_model: str):
    """The base's config with every ``*dropout*`` rate 0 (T5's ``dropout_rate``, BART's
    ``dropout``, ``attention_dropout``, ...): T5's attention reads its rate from the config as a
    float, not from an ``nn.Dropout`` module, so :func:`disable_dropout` alone would miss it."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(base_model)
    for name, value in vars(config).items():
        if "dropout" in name and isinstance(value, float):
            setattr(config, name, 0.0)
    return config


def disable_dropout(model) -> None:
    """Set every ``nn.Dropout`` probability to 0 (trl's ``disable_dropout_in_model``), LoRA's included."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


# ---- data --------------------------------------------------------------------------------------
def tokenize_preferences(pairs, tokenizer, config: DpoRunConfig):
    """A ``datasets.Dataset`` of ``input_ids`` (the prompt), ``chosen_labels``, ``rejected_labels``."""
    from datasets import Dataset

    rows = Dataset.from_list([{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs])

    def encode(batch):
        enc = tokenizer(batch["prompt"], max_length=config.max_source_tokens, truncation=True)
        for side in ("chosen", "rejected"):
            enc[f"{side}_labels"] = tokenizer(text_target=batch[side], max_length=config.max_target_tokens,
                                              truncation=True)["input_ids"]
        return {k: enc[k] for k in ("input_ids", "chosen_labels", "rejected_labels")}
    return rows.map(encode, batched=True, remove_columns=rows.column_names)


class PairCollator:
    """Pads prompts with the pad id (mask 0) and both answers to one length with -100."""

    def __init__(self, pad_token_id: int):
        self.pad = pad_token_id

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        length = max(len(r[k]) for r in rows for k in ("chosen_labels", "rejected_labels"))
        pad = lambda seq, n, v: list(seq) + [v] * (n - len(seq))  # noqa: E731
        batch = {"input_ids": torch.tensor([pad(r["input_ids"], width, self.pad) for r in rows]),
                 "attention_mask": torch.tensor([pad([1] * len(r["input_ids"]), width, 0) for r in rows])}
        for k in ("chosen_labels", "rejected_labels"):
            batch[k] = torch.tensor([pad(r[k], length, -100) for r in rows])
        for k in ("ref_chosen", "ref_rejected"):
            if k in rows[0]:
                batch[k] = torch.tensor([r[k] for r in rows], dtype=torch.float32)
        return batch


def precompute_reference(model, dataset, collator, batch_size: int):
    """``dataset`` with ``ref_chosen``/``ref_rejected`` columns: the reference log-probabilities,
    computed once (adapters disabled, no grad)."""
    chosen, rejected = [], []
    was_training = model.training
    model.eval()
    for start in range(0, len(dataset), batch_size):
        rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        c, r = reference_logps(model, _to(collator(rows), model))
        chosen += c.tolist()
        rejected += r.tolist()
    model.train(was_training)
    return dataset.add_column("ref_chosen", chosen).add_column("ref_rejected", rejected)


def _to(batch: dict, model) -> dict:
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in batch.items()}


def margin_on(model, dataset, collator, batch_size: int = 16) -> dict[str, float]:
    """Mean policy log-prob margin (chosen - rejected, nats) and the share of pairs with margin
    > 0, on the first :data:`MARGIN_SAMPLE` pairs of ``dataset``, no grad."""
    import torch

    margins = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, min(len(dataset), MARGIN_SAMPLE), batch_size):
            rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset), MARGIN_SAMPLE))]
            c, r = pair_logps(model, _to(collator(rows), model))
            margins += (c - r).tolist()
    model.train(was_training)
    return {"logp_margin": sum(margins) / len(margins), "pairs_ranked_right": sum(m > 0 for m in margins) / len(margins)}


def dpo_trainer_class():
    """``DpoTrainer``: transformers' ``Trainer`` whose ``compute_loss`` is :func:`dpo_loss` (defined
    in a function so importing this module needs no torch)."""
    from transformers import Trainer

    class DpoTrainer(Trainer):
        """Trainer with the DPO loss; logs the mean reward statistics of each logging window."""

        def __init__(self, *args, beta: float, label_smoothing: float, **kwargs):
            super().__init__(*args, **kwargs)
            self.beta, self.label_smoothing, self._stats = beta, label_smoothing, []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            policy_c, policy_r = pair_logps(model, inputs)
            if "ref_chosen" in inputs:
                ref_c, ref_r = inputs["ref_chosen"], inputs["ref_rejected"]
            else:
                ref_c, ref_r = reference_logps(self.accelerator.unwrap_model(model), inputs)
            loss, stats = dpo_loss(policy_c, policy_r, ref_c, ref_r, self.beta, self.label_smoothing)
            self._stats.append(stats)
            return (loss, {}) if return_outputs else loss

        def log(self, logs, start_time=None):
            if self._stats and "loss" in logs:  # a training row: add the window's mean statistics
                logs = {**logs, **{k: round(sum(s[k] for s in self._stats) / len(self._stats), 5)
                                   for k in self._stats[0]}}
                self._stats = []
            super().log(logs, start_time)

    return DpoTrainer


# ---- the run -----------------------------------------------------------------------------------
def load_policy(config: DpoRunConfig):
    """(peft model with a trainable LoRA adapter, tokenizer): the start adapter or a fresh one,
    every dropout off (in the config and in the modules)."""
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from summarizer.inference.model_sources import resolve_source
    from training.lora import add_lora

    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    base = AutoModelForSeq2SeqLM.from_pretrained(config.base_model, config=no_dropout_config(config.base_model))
    if config.start_adapter:
        model = PeftModel.from_pretrained(base, resolve_source(config.start_adapter), is_trainable=True)
    else:
        model = add_lora(base, config.lora_r, config.lora_alpha, 0.0, config.target_modules)
    disable_dropout(model)
    return model, tokenizer


def run_pairs(config: DpoRunConfig, run: RunFolder):
    """The pairs this run trains on: those kept in the run folder (a resumed attempt), else
    loaded from the votes and kept there."""
    kept = run.path / PAIRS_FILE
    if kept.is_file():
        found = load_preferences(kept)
        log.info("Resumed: %d preference pairs kept in %s.", len(found.pairs), kept)
        return found.pairs
    found = config.preferences().require()
    log.info("%s", found.describe())
    if is_main_process():
        export_preferences(found.pairs, kept)
        run.update_status(preference_pairs=len(found.pairs), left_out=dict(found.left_out))
    return found.pairs


def train(config: DpoRunConfig, run: RunFolder, stop: StopFlag) -> dict | None:
    from transformers import set_seed

    started = time.time()
    set_seed(config.seed)  # before the fresh adapter's random A: a run is repeatable
    model, tokenizer = load_policy(config)
    trainable, total = model.get_nb_trainable_parameters()
    log.info("DPO policy: %d trainable LoRA parameters of %d.", trainable, total)
    data = tokenize_preferences(run_pairs(config, run), tokenizer, config)
    collator = PairCollator(tokenizer.pad_token_id)
    resuming = run.last_checkpoint() is not None
    before = None if resuming else margin_on(model, data, collator)
    if config.precompute_reference:
        data = precompute_reference(model, data, collator, config.batch_size)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.path / "tensorboard")
    declare_local_mean_loss(model)
    args = training_arguments(config, run, False, 1)
    args.remove_unused_columns = False  # the pairs' columns are not the model's forward arguments
    trainer = dpo_trainer_class()(model=model, args=args, train_dataset=data, data_collator=collator,
                                  processing_class=tokenizer, beta=config.beta, label_smoothing=config.label_smoothing,
                                  callbacks=[_trainer_callback(run, stop, None, tokenizer, started)])
    checkpoint = run.last_checkpoint()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if stop.requested():
        return None
    after = margin_on(model, data, collator)
    final = {**_final_metrics(trainer, False), "pairs": len(data), "trainable_params": trainable,
             "logp_margin_after": round(after["logp_margin"], 4),
             "pairs_ranked_right_after": round(after["pairs_ranked_right"], 4)}
    if before:
        final.update(logp_margin_before=round(before["logp_margin"], 4),
                     pairs_ranked_right_before=round(before["pairs_ranked_right"], 4))
    if trainer.is_world_process_zero():
        trainer.save_model(str(run.model_tmp))  # the adapter only, safetensors
        tokenizer.save_pretrained(str(run.model_tmp))
        (run.model_tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle; config.json says it all
        shutil.rmtree(run.checkpoints, ignore_errors=True)
    return final


def main(argv=None) -> int:
    """``run_life.main`` for a training run; with ``--export_preferences OUT`` only write the pairs."""
    from training.config import parse_config

    config = parse_config(DpoRunConfig, argv)
    if config.export_preferences:
        found = config.preferences()
        out = export_preferences(found.pairs, config.export_preferences)
        print(f"{found.describe()} Written to {out}.")
        return 0
    return run_life.main(DpoRunConfig, train, argv)


def data_note(values: dict, runs_root: Path) -> str:
    """The Train form's line about the data: how many pairs the chosen class session's votes give
    (and what was left out), or why there are none yet. Reads the Arena store; never raises."""
    path = Path(values.get("votes") or Path(runs_root) / DB_NAME)
    if not values.get("votes") and not path.is_file():
        return (f"**Data:** no Arena votes yet ({path} does not exist): the class votes in the Arena tab "
                f"first; DPO needs at least {MIN_PAIRS} A/B votes.")
    try:
        found = load_preferences(path, str(values.get("class_session") or "current"))
    except (PreferenceError, OSError) as err:
        return f"**Data:** {err}"
    enough = "" if len(found.pairs) >= MIN_PAIRS else f" **Not enough to start: at least {MIN_PAIRS} are needed.**"
    return f"**Data:** {found.describe()}{enough}"


def cost_factor(values: dict) -> float:
    """A DPO step against a LoRA step of the same tokens: the encoder once, the decoder twice
    (chosen and rejected), plus the reference forward (encoder + 2 decodes, no backward) unless
    precomputed. Measured on the flan-t5-base shape: see benchmarks/bench_dpo.py (docs/dpo.md)."""
    return 0.7 * (1.3 if values.get("precompute_reference", True) is not False else 1.6)


CONFIG = DpoRunConfig
SPEC = MethodSpec(
    name="dpo", title="DPO (class votes)", module=__name__, config=DpoRunConfig, slot="detox",
    fields=(FormField("class_session", "The class's votes: class session", str, SESSION_CHOICES),
            FormField("max_steps", "Max steps"), FormField("batch_size", "Pairs per step"),
            FormField("learning_rate", "Learning rate", float), FormField("beta", "beta (pull to the reference)", float),
            FormField("label_smoothing", "Label smoothing (share of flipped votes)", float),
            FormField("lora_r", "LoRA r"), FormField("lora_alpha", "LoRA alpha", float),
            FormField("save_steps", "Checkpoint every N steps")),
    chart=(ChartPanel("loss", (("loss", "training loss"),)),
           ChartPanel("reward margin (chosen - rejected)", (("reward_margin", "reward margin"),)),
           ChartPanel("chosen ranked higher", (("reward_accuracy", "reward accuracy"),))),
    card_text="a DPO-trained LoRA adapter (peft, on the class's Arena votes) for", adapter=True,
    cost_factor=cost_factor, pickers=(RunPicker("start_adapter", "Starting adapter", "lora"),),
    resumable=True, data_note=data_note, max_processes=1, single_process_reason=(
        "its loss calls the encoder and the decoder separately (to encode each prompt once), "
        "outside DistributedDataParallel's forward, which would not average the gradients."))

if __name__ == "__main__":
    sys.exit(main())
