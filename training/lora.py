"""LoRA fine-tuning (peft) of a seq2seq model on DialogSum: only the adapter is trained and saved.

    python -m training.lora --help
    python -m training.lora --base_model google/flan-t5-base --lora_r 32 --max_steps 100
    accelerate launch --num_processes 2 --cpu -m training.lora --run_dir runs/my-lora ...

The run folder layout is described in ``summarizer/runs.py``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import partial

from summarizer.runs import RunFolder
from training.ranks import StopFlag, is_main_process, log
from training.seq2seq import Seq2SeqRunConfig, train_seq2seq
from training import run_life
from training.full import LOSS_CHART, TUNING_FIELDS
from training.registry import FormField, MethodSpec, fixed_factor

# Target modules for architectures peft's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
# lacks (peft 0.21.2 has t5, mt5 and bart): the attention query and value projections, as in the
# course lab and the LoRA paper (Hu et al., 2021, §7.1).
LORA_TARGETS = {"umt5": ["q", "v"], "longt5": ["q", "v"], "mbart": ["q_proj", "v_proj"],
                "pegasus": ["q_proj", "v_proj"], "marian": ["q_proj", "v_proj"]}


@dataclass
class LoraRunConfig(Seq2SeqRunConfig):
    """LoRA settings (see peft's ``LoraConfig`` and Hu et al., 2021, "LoRA", arXiv:2106.09685).

    Defaults follow the course lab "Fine-tune a generative AI model for dialogue summarization":
    ``google/flan-t5-base``, the zero-shot prompt, r=32, alpha=32, target modules q and v,
    dropout 0.05, bias none, learning rate 1e-3. Target modules default per architecture from
    the base's ``config.model_type`` (t5: q,v; bart: q_proj,v_proj; peft's mapping, else
    :data:`LORA_TARGETS`).
    """

    METHOD = "lora"

    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate (lab: 1e-3)."})
    lora_r: int = field(default=32, metadata={"help": "Rank of the update matrices (lab: 32)."})
    lora_alpha: float = field(default=32, metadata={
        "help": "Scaling numerator: the update is scaled by alpha/r (lab: 32)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input (lab: 0.05)."})
    target_modules: str | None = field(default=None, metadata={
        "help": "Comma-separated module names to adapt (default: by architecture; t5: q,v; "
                "bart: q_proj,v_proj)."})
    eval_steps: int = field(default=10, metadata={"help": "Validation loss every N steps."})
    rouge_samples: int = field(default=0, metadata={
        "help": "Also log validation ROUGE on this many dialogues at each evaluation (0 = off)."})
    gradient_checkpointing: bool = field(default=True, metadata={
        "help": "Recompute activations in the backward pass instead of keeping them: with LoRA "
                "the activations dominate memory (peak LoRA / full fine-tuning 1.01x without, "
                "see benchmarks/bench_lora_memory.py for the figure with it) at the cost of "
                "about one more forward pass per step. --no_gradient_checkpointing turns it off."})

    def errors(self) -> list[str]:
        return super().errors() + [m for ok, m in [
            (1 <= self.lora_r <= 1024, f"lora_r must be 1..1024, got {self.lora_r}"),
            (self.lora_alpha > 0, f"lora_alpha must be positive, got {self.lora_alpha}"),
            (0 <= self.lora_dropout < 1, f"lora_dropout must be in [0, 1), got {self.lora_dropout}"),
            (self.target_modules is None or bool(self.target_modules.strip(" ,")),
             "target_modules is empty: leave it unset for the architecture default"),
            (self.eval_steps >= 1, f"eval_steps must be at least 1, got {self.eval_steps}"),
            (self.rouge_samples >= 0, f"rouge_samples must be 0 or more, got {self.rouge_samples}"),
        ] if not ok]


def lora_targets(model_type: str, given: str | None = None) -> list[str]:
    """``given`` (comma-separated) or the default for ``model_type``: peft's own mapping, else
    :data:`LORA_TARGETS`.

    Raises:
        ValueError: no default for this architecture and none given.
    """
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

    if given:
        return [m.strip() for m in given.split(",") if m.strip()]
    targets = PEFT_TARGETS.get(model_type) or LORA_TARGETS.get(model_type)
    if not targets:
        raise ValueError(f"No default LoRA target modules for model type {model_type!r}: set "
                         f"target_modules (e.g. the attention query/value projections).")
    return list(targets)


def add_lora(model, r: int, alpha: float, dropout: float, targets: str | None = None):
    """``model`` wrapped by peft with a fresh LoRA adapter (B = 0, so it starts as a no-op)."""
    import peft

    config = peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, bias="none",
                            target_modules=lora_targets(model.config.model_type, targets),
                            task_type=peft.TaskType.SEQ_2_SEQ_LM)
    return peft.get_peft_model(model, config)


def train(config: LoraRunConfig, run: RunFolder, stop: StopFlag) -> dict | None:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    model = AutoModelForSeq2SeqLM.from_pretrained(config.base_model)
    model = add_lora(model, config.lora_r, config.lora_alpha, config.lora_dropout, config.target_modules)
    trainable, total = model.get_nb_trainable_parameters()
    percent = 100 * trainable / total
    log.info("LoRA: %d trainable of %d parameters (%.3f%%).", trainable, total, percent)
    if is_main_process():
        run.update_status(trainable_params=trainable, total_params=total,
                          trainable_percent=round(percent, 4))
    final = train_seq2seq(config, model, tokenizer, run, stop,
                                 rouge_samples=config.rouge_samples, eval_steps=config.eval_steps)
    return final and {**final, "trainable_params": trainable, "trainable_percent": round(percent, 4)}


CONFIG = LoraRunConfig
SPEC = MethodSpec(name="lora", title="LoRA", module=__name__, config=LoraRunConfig, slot="lora",
                  fields=TUNING_FIELDS + (FormField("lora_r", "LoRA r"), FormField("lora_alpha", "LoRA alpha", float)),
                  chart=LOSS_CHART, card_text="a LoRA adapter (peft) for", adapter=True,
                  cost_factor=fixed_factor(0.7),  # no weight gradients or optimizer state for the frozen base
                  resumable=True)
main = partial(run_life.main, LoraRunConfig, train)

if __name__ == "__main__":
    sys.exit(main())
