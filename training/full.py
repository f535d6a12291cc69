"""Full fine-tuning of a seq2seq model on DialogSum: every weight is trained.

    python -m training.full --help
    python -m training.full --base_model google/flan-t5-base --train_size 1000 --max_steps 100
    python -m training.full --config runs/<run>/config.json

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
from summarizer.tasks import TASKS
from training.registry import ChartPanel, FormField, MethodSpec, fixed_factor


@dataclass
class FullRunConfig(Seq2SeqRunConfig):
    """Full fine-tuning settings.

    Defaults follow the course lab "Fine-tune a generative AI model for dialogue summarization":
    ``google/flan-t5-base``, the zero-shot prompt, learning rate 1e-5, weight decay 0.01. The lab
    trained one step (``max_steps=1``) as a demonstration; our default is 100 steps of batch 8.
    """

    METHOD = "full"

    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate (lab: 1e-5)."})
    eval_steps: int = field(default=10, metadata={"help": "Validation loss every N steps."})
    rouge_samples: int = field(default=0, metadata={
        "help": "Also log validation ROUGE on this many dialogues at each evaluation (0 = off; "
                "generation is slow on CPU)."})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute activations in the backward pass instead of keeping them: less memory, "
                "about one more forward pass per step (off by default: full fine-tuning's memory "
                "is dominated by weights, gradients and optimizer state too)."})

    def errors(self) -> list[str]:
        return super().errors() + [m for ok, m in [
            (self.eval_steps >= 1, f"eval_steps must be at least 1, got {self.eval_steps}"),
            (self.rouge_samples >= 0, f"rouge_samples must be 0 or more, got {self.rouge_samples}"),
        ] if not ok]


def train(config: FullRunConfig, run: RunFolder, stop: StopFlag) -> dict | None:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    model = AutoModelForSeq2SeqLM.from_pretrained(config.base_model)
    n = sum(p.numel() for p in model.parameters())
    log.info("Full fine-tuning: %d trainable parameters (100%%).", n)
    if is_main_process():
        run.update_status(trainable_params=n, total_params=n, trainable_percent=100.0)
    final = train_seq2seq(config, model, tokenizer, run, stop,
                                 rouge_samples=config.rouge_samples, eval_steps=config.eval_steps)
    return final and {**final, "trainable_params": n}


# The form fields and chart every fine-tuning method shows (LoRA adds its own fields).
TUNING_FIELDS = (FormField("train_size", "Training dialogues"), FormField("val_size", "Validation dialogues"),
                 FormField("eval_steps", "Validate every N steps"), FormField("max_steps", "Max steps"),
                 FormField("batch_size", "Batch size"), FormField("learning_rate", "Learning rate", float),
                 FormField("save_steps", "Checkpoint every N steps"),
                 FormField("task", "Task (summary, or the next turn: response)", str, TASKS))
LOSS_CHART = (ChartPanel("loss", (("loss", "training loss"), ("eval_loss", "validation loss"))),)

CONFIG = FullRunConfig
SPEC = MethodSpec(name="full", title="Full fine-tune", module=__name__, config=FullRunConfig, slot="full",
                  fields=TUNING_FIELDS, chart=LOSS_CHART, card_text="a fully fine-tuned", adapter=False,
                  cost_factor=fixed_factor(1.0), resumable=True)
main = partial(run_life.main, FullRunConfig, train)

if __name__ == "__main__":
    sys.exit(main())
