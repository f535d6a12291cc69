"""What the four model slots are and where their models come from.

* Slot names (``SLOTS``), which of them are peft adapters on the shared base (``ADAPTER_SLOTS``),
  their UI labels and the help shown for an empty slot (``EMPTY_SLOT_HELP``, naming the Train tab
  and the CLI flag that fills it).
* :class:`SlotConfig`: one source per slot (hub id, model/adapter folder or run folder), and the
  input token limit both engines truncate prompts at (:mod:`summarizer.limits`).
* :class:`SlotError`: the ``ValueError`` every slot problem raises; its message says what to do.

The default base is the course's model, ``google/flan-t5-base`` (hub id). ``BASE_ADAPTER`` is
peft's own name for "no adapter" in a mixed batch (peft ``LoraModel`` mixed-batch inference).
No torch here: the CLI and the UI import these names without loading a model library.
"""
from __future__ import annotations

from dataclasses import dataclass

from summarizer.limits import DEFAULT_MAX_INPUT_TOKENS

DEFAULT_BASE_MODEL = "google/flan-t5-base"
SLOTS = ("base", "full", "lora", "detox")
ADAPTER_SLOTS = ("lora", "detox")
BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch
SLOT_LABELS = {"base": "Base (original)", "full": "Full fine-tune", "lora": "LoRA (peft)",
               "detox": "PPO detox"}
EMPTY_SLOT_HELP = {
    "full": "no model yet: train one in the Train tab (full fine-tune) or give a fine-tuned "
            "checkpoint folder or hub id with --full-model",
    "lora": "no model yet: train one in the Train tab (LoRA) or give a peft adapter folder or "
            "hub id with --lora-model",
    "detox": "no model yet: train one in the Train tab (PPO detox) or give a peft adapter "
             "folder or hub id with --detox-model",
    "base": "no base model: give a hub id or folder with --base-model",
}


class SlotError(ValueError):
    """A slot's source is missing or is the wrong kind of model; the message says what to do."""


@dataclass
class SlotConfig:
    """Where each slot's model comes from (hub id, folder, or run folder); ``None`` = empty.

    ``max_input_tokens`` is where both engines cut a prompt's tokens (a last safeguard: the prompt
    builders fit prompts to it first); set it with
    :meth:`summarizer.inference.slots.ModelSlots.set_max_input_tokens`, which checks the model's limit.
    """

    base: str = DEFAULT_BASE_MODEL
    full: str | None = None
    lora: str | None = None
    detox: str | None = None
    max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS

    def as_dict(self) -> dict[str, str | None]:
        """``{slot: source}`` for the four slots (not the input limit)."""
        return {slot: getattr(self, slot) for slot in SLOTS}
