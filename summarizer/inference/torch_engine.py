"""The PyTorch engine of the model slots (``backend="torch"``, the default): one shared base in memory.

* ``base``: a seq2seq model loaded with ``AutoModelForSeq2SeqLM``.
* ``full``: a fully fine-tuned checkpoint (a complete model folder); its own copy in memory.
* ``lora`` and ``detox``: peft adapters loaded **onto the one base model** as named adapters
  (``PeftModel.load_adapter``), so the four slots cost about two models of memory.

peft injects LoRA layers into the base network in place, so after adapters load the "base"
output is always produced with the adapters switched off (peft's ``"__base__"`` adapter name in
a mixed batch): the base slot stays pristine, unlike the course lab, which wrapped its base.
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from summarizer.inference.generation import GenerationSettings, generate_texts
from summarizer.inference.model_sources import (PICKLE_ERRORS, check_kind, has_only_pickle_weights, hub_kwargs,
                                                pickle_refusal, weights_kwargs)
from summarizer.inference.slot_config import (ADAPTER_SLOTS, BASE_ADAPTER, EMPTY_SLOT_HELP, SlotConfig,
                                              SlotError)
from summarizer.preflight import explain_load_error


@dataclass
class Loaded:
    """A loaded torch model (``eval()`` mode, on the engine's device) and its tokenizer."""

    model: object
    tokenizer: object


class TorchEngine:
    """The slots on transformers/peft models, loaded lazily.

    Args:
        config: the slots' sources (shared with :class:`~summarizer.inference.slots.ModelSlots`).
        device: torch device the models run on.
        dtype: weights dtype (bf16 or fp32; never fp16 for T5).

    Attributes:
        parallel_full: run the full model in a thread beside the shared base in one request;
            ``None`` (default) = when the machine has at least two cores.

    Methods are called under the slots' lock (:class:`~summarizer.inference.slots.ModelSlots`).
    """

    name = "torch"

    def __init__(self, config: SlotConfig, device: torch.device, dtype: torch.dtype):
        self.config, self.device, self.dtype = config, device, dtype
        self._base: Loaded | None = None  # base model, wrapped by peft once adapters load
        self._full: Loaded | None = None
        self._adapters: dict[str, str] = {}  # slot -> source loaded as that adapter
        self.parallel_full: bool | None = None

    # ---- state ----------------------------------------------------------------------------
    def is_loaded(self, slot: str) -> bool:
        return {"base": self._base is not None, "full": self._full is not None}.get(slot, slot in self._adapters)

    def drop(self, slot: str) -> None:
        """Forget ``slot``'s model (its source changed); a new base drops the adapters too."""
        if slot == "base":
            self._base, self._adapters = None, {}
        elif slot == "full":
            self._full = None
        elif slot in self._adapters:
            del self._adapters[slot]
            if not self._adapters:  # peft keeps the deleted adapter active: the base reloads clean
                self._base = None
                return
            self._base.model.delete_adapter(slot)
            self._base.model.set_adapter(next(iter(self._adapters)))

    def loaded_base_tokenizer(self):
        """The loaded base's tokenizer, or None when the base is not loaded."""
        return self.loaded_tokenizer("base")

    def loaded_tokenizer(self, slot: str):
        """The tokenizer of ``slot`` (``base`` or ``full``) if its model is loaded, else None;
        never loads (safe without the slots' lock: it reads one attribute)."""
        model = self._full if slot == "full" else self._base
        return model.tokenizer if model is not None else None

    def load(self, slot: str) -> None:
        if slot == "base":
            self.base()
        elif slot == "full":
            self.full()
        else:
            self._ensure_adapter(slot)

    def tokenizer_of(self, slot: str):
        return (self.full() if slot == "full" else self.base()).tokenizer

    # ---- loading --------------------------------------------------------------------------
    def _load_seq2seq(self, source: str, slot: str) -> Loaded:
        check_kind(slot, source)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **hub_kwargs())
            model = AutoModelForSeq2SeqLM.from_pretrained(source, dtype=self.dtype, **weights_kwargs(source),
                                                          **hub_kwargs())
        except (OSError, ValueError) as err:
            raise SlotError(explain_load_error(f"{slot} model", source, err, f"--{slot}-model")) from err
        except PICKLE_ERRORS as err:
            if has_only_pickle_weights(source):
                raise pickle_refusal(source) from err
            raise
        return Loaded(model.to(self.device).eval(), tokenizer)

    def base(self) -> Loaded:
        """The shared base (a ``PeftModel`` once an adapter is loaded) and its tokenizer."""
        if self._base is None:
            self._base = self._load_seq2seq(self.config.base, "base")
        return self._base

    def full(self) -> Loaded:
        """The fully fine-tuned model and its tokenizer.

        Raises:
            SlotError: the full slot is empty or fails to load.
        """
        if not self.config.full:
            raise SlotError(EMPTY_SLOT_HELP["full"])
        if self._full is None:
            self._full = self._load_seq2seq(self.config.full, "full")
        return self._full

    def _ensure_adapter(self, slot: str) -> None:
        from peft import PeftModel  # imported here: the app starts faster without peft

        source = getattr(self.config, slot)
        if not source:
            raise SlotError(EMPTY_SLOT_HELP[slot])
        base = self.base()
        if self._adapters.get(slot) == source:
            return
        check_kind(slot, source)
        try:
            if isinstance(base.model, PeftModel):
                base.model.load_adapter(source, adapter_name=slot)
            else:
                base.model = PeftModel.from_pretrained(base.model, source, adapter_name=slot)
            base.model.eval()
        except PICKLE_ERRORS + (OSError, ValueError) as err:
            if has_only_pickle_weights(source):
                raise pickle_refusal(source) from err
            raise SlotError(f"Could not load the {slot} adapter from {source!r} onto base "
                            f"{self.config.base!r}: {err}") from err
        self._adapters[slot] = source

    def parameters(self, slot: str) -> tuple[int, int]:
        """(parameters the slot trained, total parameters the slot runs with); an adapter slot
        counts only its own adapter's parameters as trained."""
        if slot in ADAPTER_SLOTS:
            self._ensure_adapter(slot)
            model = self.base().model
            total = sum(p.numel() for n, p in model.named_parameters()
                        if "lora_" not in n and "modules_to_save" not in n)
            own = sum(p.numel() for n, p in model.named_parameters() if f".{slot}." in n)
            return own, total + own
        model = (self.full() if slot == "full" else self.base()).model
        n = sum(p.numel() for n_, p in model.named_parameters() if "lora_" not in n_)
        return n, n

    # ---- generation -----------------------------------------------------------------------
    def generate(self, slots: Sequence[str], prompts: Sequence[str], settings: GenerationSettings,
                 batch_size: int, on_batch: Callable[[int, int], None] | None) -> dict[str, list[str]]:
        """Base and adapter slots together in mixed batches on the shared base (peft's
        ``adapter_names``), the full slot on its own model (contract of
        :meth:`summarizer.inference.slots.ModelSlots.generate`)."""
        out: dict[str, list[str]] = {}
        shared = [s for s in slots if s != "full"]
        # Sampling stays sequential: both threads would draw from torch's one global generator.
        if "full" in slots and shared and settings.strategy != "sampling" and self._parallel_full():
            return self._generate_full_alongside(slots, shared, prompts, settings, batch_size, on_batch)
        if shared:
            out.update(self._generate_shared(shared, prompts, settings, batch_size, on_batch))
        if "full" in slots:
            full = self.full()
            out["full"] = self._texts(full.model, full.tokenizer, prompts, settings,
                                         batch_size=batch_size, on_batch=on_batch)
        return {s: out[s] for s in slots}

    def _texts(self, model, tokenizer, prompts, settings, **kwargs) -> list[str]:
        """:func:`generate_texts`, prompts cut at the configured input limit (``config.max_input_tokens``)."""
        return generate_texts(model, tokenizer, prompts, settings, max_input_tokens=self.config.max_input_tokens,
                              **kwargs)

    def _parallel_full(self) -> bool:
        """Run the full model beside the shared base when there is a core for each (CPU)."""
        return self.parallel_full if self.parallel_full is not None else (os.cpu_count() or 1) >= 2

    def _generate_full_alongside(self, slots, shared, prompts, settings, batch_size, on_batch):
        """The full model's generation in a thread while the shared base runs its mixed batch.

        torch releases the GIL inside its kernels, so the two models' decoding loops overlap;
        before this the slot lock ran them one after the other. Both models are loaded first,
        in this thread, since loading needs the lock.
        """
        full = self.full()
        for slot in shared:
            if slot in ADAPTER_SLOTS:
                self._ensure_adapter(slot)
        progress = SummedProgress(on_batch, {"full": len(prompts), "shared": len(prompts) * len(shared)})
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="full-slot") as pool:
            future = pool.submit(self._texts, full.model, full.tokenizer, prompts, settings,
                                 batch_size=batch_size, on_batch=progress.part("full"))
            out = self._generate_shared(shared, prompts, settings, batch_size, progress.part("shared"))
            out["full"] = future.result()
        return {s: out[s] for s in slots}

    def _generate_shared(self, slots, prompts, settings, batch_size, on_batch) -> dict[str, list[str]]:
        """Generate for base/adapter slots on the shared base model, every slot for every prompt."""
        rows = [(s, p) for s in slots for p in prompts]
        texts = self._shared_rows(rows, settings, batch_size, on_batch)
        n = len(prompts)
        return {s: texts[k * n:(k + 1) * n] for k, s in enumerate(slots)}

    def _shared_rows(self, rows, settings, batch_size, on_batch=None, streams=None) -> list[str]:
        """One text per (base or adapter slot, prompt) row on the shared base, in row order.

        ``batch_size`` counts prompts per slot: a mixed batch holds that many rows per slot.
        """
        slots = list(dict.fromkeys(s for s, _ in rows))
        for slot in slots:
            if slot in ADAPTER_SLOTS:
                self._ensure_adapter(slot)
        base = self.base()
        prompts = [p for _, p in rows]
        if not self._adapters:  # plain model: only the base slot can be asked for here
            return self._texts(base.model, base.tokenizer, prompts, settings, batch_size=batch_size,
                                  on_batch=on_batch, streams=streams)
        if settings.strategy != "beam":
            # One mixed batch: each row runs with its own adapter (peft mixed-batch inference).
            names = [BASE_ADAPTER if s == "base" else s for s, _ in rows]
            return self._texts(base.model, base.tokenizer, prompts, settings,
                                  batch_size=batch_size * len(slots), adapter_names=names,
                                  on_batch=on_batch, streams=streams)
        # peft's mixed batches do not expand adapter names over beams, so beams run per slot.
        out = [""] * len(rows)
        for slot in slots:
            index = [i for i, (s, _) in enumerate(rows) if s == slot]
            context = base.model.disable_adapter() if slot == "base" else contextlib.nullcontext()
            if slot != "base":
                base.model.set_adapter(slot)
            with context:
                texts = self._texts(base.model, base.tokenizer, [prompts[i] for i in index], settings,
                                       batch_size=batch_size, on_batch=on_batch)
            for i, text in zip(index, texts):
                out[i] = text
        return out

    def generate_rows(self, rows: Sequence[tuple[str, str]], settings: GenerationSettings,
                      streams: dict[int, Callable[[str], None]] | None = None) -> list[str]:
        """One text per ``(slot, prompt)`` row, in row order, all rows in as few batches as the
        engine allows: base and adapter rows in one mixed batch on the shared base, full rows on
        the full model (in a thread beside them, as :meth:`generate` does). Used by
        :class:`~summarizer.inference.batcher.RequestBatcher` for rows of several requests.

        Args:
            rows: (slot, prompt) pairs; slots filled.
            settings: shared decoding settings (one :func:`~summarizer.inference.generation.batch_key`).
            streams: row index -> called with that row's text so far (greedy and sampling).

        Raises:
            SlotError: a slot is empty or cannot be loaded.
        """
        streams = streams or {}
        full = [i for i, (s, _) in enumerate(rows) if s == "full"]
        shared = [i for i, (s, _) in enumerate(rows) if s != "full"]

        def part(index):
            return [rows[i] for i in index], {k: streams[i] for k, i in enumerate(index) if i in streams}

        def run_full():
            model = self.full()
            picked, own = part(full)
            return self._texts(model.model, model.tokenizer, [p for _, p in picked], settings,
                                  batch_size=len(picked), streams=own)

        out = [""] * len(rows)
        texts_full = None
        alongside = full and shared and settings.strategy != "sampling" and self._parallel_full()
        if full and not alongside:
            texts_full = run_full()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="full-slot") as pool:
            if alongside:
                self.full()  # loaded here: loading needs the lock this thread holds
                future = pool.submit(run_full)
            if shared:
                picked, own = part(shared)
                for i, text in zip(shared, self._shared_rows(picked, settings, len(picked), streams=own)):
                    out[i] = text
            if alongside:
                texts_full = future.result()
        for i, text in zip(full, texts_full or []):
            out[i] = text
        return out


class SummedProgress:
    """One ``on_batch(done, total)`` for generations running in parallel: the sums of their parts,
    so a progress bar moves forward instead of jumping between the threads' own counters."""

    def __init__(self, on_batch: Callable[[int, int], None] | None, totals: dict[str, int]):
        self.on_batch, self.lock = on_batch, threading.Lock()
        self.parts = {name: (0, total) for name, total in totals.items()}  # known up front: no 100 % early

    def part(self, name: str) -> Callable[[int, int], None] | None:
        if self.on_batch is None:
            return None

        def report(done: int, total: int) -> None:
            with self.lock:
                self.parts[name] = (done, total)
                done_all = sum(d for d, _ in self.parts.values())
                total_all = sum(t for _, t in self.parts.values())
                self.on_batch(done_all, total_all)
        return report
