"""PPO detoxification of a LoRA adapter with trl 0.11.4 (the last trl with encoder-decoder PPO).

    python -m training.ppo --help
    python -m training.ppo --start_adapter runs/<lora-run> --max_steps 10
    python -m training.ppo --config runs/<run>/config.json

The policy is a LoRA adapter on the base (a finished LoRA run's adapter, or a fresh one) with a
value head (``AutoModelForSeq2SeqLMWithValueHead``). The reference for the KL penalty is the
same network with its adapters disabled: ``ref_model=None`` with a peft model makes trl use
``disable_adapter()``, so there is no second copy of the base. The reward of a summary is the
toxicity classifier's ``nothate`` logit on the generated summary alone
(``summarizer.toxicity.ToxicityScorer.rewards``). trl is imported only in this module.
"""
from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from statistics import fmean

from summarizer.toxicity import DEFAULT_TOXICITY_MODEL
from summarizer.runs import RunFolder
from training.config import RunConfig
from training.ranks import StopFlag, cpu_only, log
from training.seq2seq import load_rows
from training import run_life
from training.registry import ChartPanel, FormField, MethodSpec, RunPicker


@dataclass
class PPORunConfig(RunConfig):
    """PPO detox settings.

    Defaults follow the course lab "Fine-tune FLAN-T5 with reinforcement learning (PPO) and
    PEFT to generate less-toxic summaries": dialogues of 200 < length <= 1000 characters,
    learning rate 1.41e-5, batch size 16, mini-batch 4, 1 PPO epoch, adaptive KL control
    starting at 0.2 (trl's target 6, horizon 10000), output lengths sampled uniformly in
    [100, 400) tokens (trl ``LengthSampler``), sampling with top_k 0, top_p 1.0 and at least 5
    tokens, 10 steps, toxicity measured on 10 test dialogues; a fresh adapter uses the LoRA
    lab's r=32, alpha=32, dropout 0.05 (the PPO lab started from its trained LoRA adapter, which
    ``start_adapter`` does). Reward: ``nothate`` logit of
    ``facebook/roberta-hate-speech-dynabench-r4-target`` on the summary alone (the lab scored
    prompt + summary).
    """

    METHOD = "ppo"

    learning_rate: float = field(default=1.41e-5, metadata={"help": "Adam learning rate (lab: 1.41e-5)."})
    batch_size: int = field(default=16, metadata={"help": "Dialogues per PPO step (lab: 16)."})
    max_steps: int = field(default=10, metadata={"help": "PPO steps (lab: 10)."})
    min_dialogue_chars: int | None = field(default=200, metadata={
        "help": "Keep dialogues longer than this many characters (lab: 200)."})
    max_dialogue_chars: int | None = field(default=1000, metadata={
        "help": "Keep dialogues of at most this many characters (lab: 1000)."})
    mini_batch_size: int = field(default=4, metadata={
        "help": "PPO mini-batch; must divide batch_size (lab: 4)."})
    ppo_epochs: int = field(default=1, metadata={"help": "Optimisation epochs per batch (lab: 1)."})
    init_kl_coef: float = field(default=0.2, metadata={
        "help": "Initial KL penalty coefficient (lab: 0.2)."})
    adap_kl_ctrl: bool = field(default=True, metadata={
        "help": "Adapt the KL coefficient towards kl_target (Ziegler et al., 2019) (lab: true)."})
    kl_target: float = field(default=6.0, metadata={"help": "Target KL of the adaptive controller (trl: 6)."})
    output_min_length: int = field(default=100, metadata={
        "help": "Lower bound of the sampled output length in tokens (lab: 100)."})
    output_max_length: int = field(default=400, metadata={
        "help": "Upper bound (exclusive) of the sampled output length in tokens (lab: 400)."})
    min_new_tokens: int = field(default=5, metadata={"help": "Every summary has at least this many tokens (lab: 5)."})
    top_k: int = field(default=0, metadata={"help": "Sampling top-k, 0 = off (lab: 0)."})
    top_p: float = field(default=1.0, metadata={"help": "Sampling nucleus mass (lab: 1.0)."})
    start_adapter: str | None = field(default=None, metadata={
        "help": "LoRA adapter to start from: a finished LoRA run folder or adapter folder "
                "(default: a fresh adapter)."})
    lora_r: int = field(default=32, metadata={"help": "Rank of a fresh adapter (lab: 32)."})
    lora_alpha: float = field(default=32, metadata={"help": "Alpha of a fresh adapter (lab: 32)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout of a fresh adapter (lab: 0.05)."})
    target_modules: str | None = field(default=None, metadata={
        "help": "Modules of a fresh adapter, comma-separated (default: by architecture)."})
    toxicity_model: str = field(default=DEFAULT_TOXICITY_MODEL, metadata={
        "help": "Hate-speech classifier with nothate/hate labels; the reward is its nothate logit."})
    toxicity_samples: int = field(default=10, metadata={
        "help": "Test dialogues on which toxicity is measured before and after (lab: 10)."})

    def errors(self) -> list[str]:
        return super().errors() + [m for ok, m in [
            (self.mini_batch_size >= 1 and self.batch_size % self.mini_batch_size == 0,
             f"mini_batch_size ({self.mini_batch_size}) must divide batch_size ({self.batch_size})"),
            (self.train_size >= self.batch_size,
             f"train_size ({self.train_size}) must be at least batch_size ({self.batch_size})"),
            (self.ppo_epochs >= 1, f"ppo_epochs must be at least 1, got {self.ppo_epochs}"),
            (self.init_kl_coef >= 0, f"init_kl_coef must be 0 or more, got {self.init_kl_coef}"),
            (self.kl_target > 0, f"kl_target must be positive, got {self.kl_target}"),
            (1 <= self.output_min_length < self.output_max_length <= 512,
             f"need 1 <= output_min_length < output_max_length <= 512, got "
             f"{self.output_min_length} and {self.output_max_length}"),
            (0 <= self.min_new_tokens < self.output_min_length,
             f"min_new_tokens must be 0..output_min_length-1, got {self.min_new_tokens}"),
            (self.top_k >= 0, f"top_k must be 0 or more, got {self.top_k}"),
            (0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}"),
            (1 <= self.lora_r <= 1024, f"lora_r must be 1..1024, got {self.lora_r}"),
            (self.lora_alpha > 0, f"lora_alpha must be positive, got {self.lora_alpha}"),
            (0 <= self.lora_dropout < 1, f"lora_dropout must be in [0, 1), got {self.lora_dropout}"),
            (self.toxicity_samples >= 0, f"toxicity_samples must be 0 or more, got {self.toxicity_samples}"),
        ] if not ok]


def load_policy(config: PPORunConfig):
    """(policy with value head, tokenizer): the start adapter, or a fresh one, made trainable."""
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
    from trl import AutoModelForSeq2SeqLMWithValueHead

    from summarizer.inference.model_sources import resolve_source
    from training.lora import add_lora

    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    base = AutoModelForSeq2SeqLM.from_pretrained(config.base_model)
    if config.start_adapter:
        peft_model = PeftModel.from_pretrained(base, resolve_source(config.start_adapter), is_trainable=True)
    else:
        peft_model = add_lora(base, config.lora_r, config.lora_alpha, config.lora_dropout,
                              config.target_modules)
    return AutoModelForSeq2SeqLMWithValueHead.from_pretrained(peft_model, is_trainable=True), tokenizer


def toxicity_of(model, tokenizer, scorer, prompts, config: PPORunConfig) -> dict[str, float]:
    """Mean reward (nothate logit) and mean P(hate) of sampled summaries of ``prompts``."""
    from summarizer.inference.generation import GenerationSettings, generate_texts

    settings = GenerationSettings(strategy="sampling", temperature=1.0, top_k=config.top_k,
                                  top_p=config.top_p, max_new_tokens=config.output_max_length,
                                  min_new_tokens=config.min_new_tokens, seed=config.seed)
    model.eval()
    texts = generate_texts(model, tokenizer, prompts, settings, batch_size=config.mini_batch_size,
                           max_input_tokens=config.max_source_tokens)
    scores = scorer.score(texts)
    return {"reward": fmean(s.reward for s in scores), "p_hate": fmean(s.p_hate for s in scores)}


def query_dataset(config: PPORunConfig, tokenizer):
    """The train prompts as token ids (``input_ids``, torch) with their text (``query``)."""
    rows = load_rows(config, "train", config.train_size)
    dataset = rows.map(lambda r: {"input_ids": tokenizer(r["prompt"], truncation=True,
                                                         max_length=config.max_source_tokens)["input_ids"],
                                  "query": r["prompt"]}, remove_columns=rows.column_names)
    dataset.set_format("torch", columns=["input_ids"], output_all_columns=True)
    log.info("PPO on %d dialogues of %s.", len(dataset), config.dataset)
    return dataset


def make_trainer(config: PPORunConfig, policy, tokenizer, dataset, run: RunFolder):
    """trl's ``PPOTrainer`` with the reference = the policy with its adapters disabled."""
    import trl

    trl_config = trl.PPOConfig(
        model_name=config.base_model, learning_rate=config.learning_rate, batch_size=config.batch_size,
        mini_batch_size=config.mini_batch_size, ppo_epochs=config.ppo_epochs,
        init_kl_coef=config.init_kl_coef, adap_kl_ctrl=config.adap_kl_ctrl, target=config.kl_target,
        seed=config.seed, exp_name=f"studio-{run.run_id}")
    return trl.PPOTrainer(config=trl_config, model=policy, ref_model=None, tokenizer=tokenizer,
                          dataset=dataset, data_collator=lambda data: {k: [d[k] for d in data] for k in data[0]})


def ppo_step(config: PPORunConfig, trainer, tokenizer, scorer, batch, lengths) -> dict:
    """One PPO step on ``batch``: sample summaries, reward them, update; returns the metric row."""
    import torch

    generation = {"min_new_tokens": config.min_new_tokens, "top_k": config.top_k, "top_p": config.top_p,
                  "do_sample": True, "pad_token_id": tokenizer.pad_token_id}
    queries = batch["input_ids"]  # list of (T_in,) tensors
    responses = trainer.generate(queries, length_sampler=lengths, batch_size=config.mini_batch_size,
                                 return_prompt=False, **generation)  # list of (T_out,)
    texts = tokenizer.batch_decode(responses, skip_special_tokens=True)
    rewards = scorer.rewards(texts)  # (B,) nothate logits of the summaries alone
    stats = trainer.step(queries, responses, list(rewards))
    return {"reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()),
            "kl": float(stats["objective/kl"]), "kl_coef": float(stats["objective/kl_coef"]),
            "returns_mean": float(stats["ppo/returns/mean"]), "loss": float(stats["ppo/loss/total"]),
            "response_tokens": float(torch.tensor([len(r) for r in responses], dtype=torch.float).mean())}


def measure_sample(model, tokenizer, scorer, sample, config, run, step: int, started: float) -> dict:
    """Toxicity of the test sample (logged as a metric row at ``step``); ``{}`` without a sample."""
    if not sample:
        return {}
    found = toxicity_of(model, tokenizer, scorer, sample, config)
    log.info("Step %d: sample mean reward %.3f, mean P(hate) %.3f", step, found["reward"], found["p_hate"])
    run.append_metrics({"step": step, "elapsed": round(time.time() - started, 2),
                        "sample_reward": found["reward"], "sample_p_hate": found["p_hate"]})
    return found


def train(config: PPORunConfig, run: RunFolder, stop: StopFlag) -> dict | None:
    from trl.core import LengthSampler

    from summarizer.toxicity import ToxicityScorer

    started = time.time()
    policy, tokenizer = load_policy(config)
    trainable, total = policy.pretrained_model.get_nb_trainable_parameters()
    log.info("PPO policy: %d trainable LoRA parameters of %d.", trainable, total)
    scorer = ToxicityScorer(config.toxicity_model, device="cpu" if cpu_only() else None)
    dataset = query_dataset(config, tokenizer)
    sample = load_rows(config, "test", config.toxicity_samples)["prompt"] if config.toxicity_samples else []
    before = measure_sample(policy.pretrained_model, tokenizer, scorer, sample, config, run, 0, started)
    trainer = make_trainer(config, policy, tokenizer, dataset, run)
    lengths = LengthSampler(config.output_min_length, config.output_max_length)
    batches = itertools.chain.from_iterable(itertools.repeat(trainer.dataloader))
    for step in range(1, config.max_steps + 1):
        if stop.requested():
            return None
        row = {"step": step, "elapsed": 0.0, **ppo_step(config, trainer, tokenizer, scorer, next(batches), lengths)}
        row["elapsed"] = round(time.time() - started, 2)
        log.info("step %d/%d: reward %.3f, KL %.3f, returns %.3f", step, config.max_steps,
                        row["reward_mean"], row["kl"], row["returns_mean"])
        run.append_metrics(row)
        run.record_step(step, config.max_steps)
    if stop.requested():
        return None
    peft_model = trainer.accelerator.unwrap_model(trainer.model).pretrained_model
    final = {"steps": config.max_steps, "trainable_params": trainable}
    after = measure_sample(peft_model, tokenizer, scorer, sample, config, run, config.max_steps, started)
    if after:
        final.update({"reward_before": round(before["reward"], 4), "reward_after": round(after["reward"], 4),
                      "p_hate_before": round(before["p_hate"], 4), "p_hate_after": round(after["p_hate"], 4)})
    peft_model.save_pretrained(str(run.model_tmp))  # adapter only (safetensors): the detox slot loads it
    tokenizer.save_pretrained(str(run.model_tmp))
    return final


def cost_factor(values: dict) -> float:
    """A PPO step generates the summaries and runs the policy and the reference forward, then
    ``ppo_epochs`` optimisation passes: ``2 + ppo_epochs`` passes over source + output tokens,
    against a fine-tuning step's 3 (forward + backward ≈ 3 forwards)."""
    epochs = values.get("ppo_epochs")
    return (2 + (epochs if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > 0 else 1)) / 3


CONFIG = PPORunConfig
SPEC = MethodSpec(
    name="ppo", title="PPO detox", module=__name__, config=PPORunConfig, slot="detox",
    fields=(FormField("train_size", "Training dialogues"), FormField("max_steps", "PPO steps"),
            FormField("batch_size", "Batch size"), FormField("mini_batch_size", "Mini-batch size"),
            FormField("learning_rate", "Learning rate", float),
            FormField("init_kl_coef", "Initial KL coefficient", float),
            FormField("output_min_length", "Min output tokens"), FormField("output_max_length", "Max output tokens")),
    chart=(ChartPanel("mean reward (nothate logit)", (("reward_mean", "mean reward"),)),
           ChartPanel("KL to reference", (("kl", "KL"),))),
    card_text="a PPO-detoxified LoRA adapter (peft) for", adapter=True, cost_factor=cost_factor,
    target_tokens_field="output_max_length",
    pickers=(RunPicker("start_adapter", "Starting adapter", "lora"),),
    max_processes=1, single_process_reason=(
        "its loop (trl 0.11's PPOTrainer with the reward model scored in the same process) is "
        "not data-parallel here: every process would sample and score its own batch and the "
        "reward statistics would differ per process."))
main = partial(run_life.main, PPORunConfig, train)

if __name__ == "__main__":
    sys.exit(main())
