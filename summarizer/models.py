"""The four model slots (base, full, lora, detox) with one shared base in memory.

* ``base``: a seq2seq model (default ``google/flan-t5-base``), hub id or local folder.
* ``full``: a fully fine-tuned checkpoint (a complete model folder); its own copy in memory.
* ``lora`` and ``detox``: peft adapters loaded **onto the one base model** as named adapters
  (``PeftModel.load_adapter``), so the four slots cost about two models of memory.

peft injects LoRA layers into the base network in place, so after adapters load the "base"
output is always produced with the adapters switched off (peft's ``"__base__"`` adapter name in
a mixed batch): the base slot stays pristine, unlike the course lab, which wrapped its base.

A slot source may be a hub id, a model or adapter folder, or a finished run folder (its model
is in ``<run>/model``). Loading is lazy, cached and guarded by one lock.

The slot names and :class:`SlotConfig` live in :mod:`summarizer.slot_config`, source checks and
safe weight loading in :mod:`summarizer.model_sources`; both are re-exported here.

The inference engine is chosen per ``ModelSlots`` (``backend``): ``torch`` (the default, above)
or ``ct2``, where every slot runs on its own cached CTranslate2 conversion
(:mod:`summarizer.ct2_backend`); callers of :meth:`ModelSlots.generate` do not see which.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from . import ct2_backend
from .devices import pick_device, pick_dtype
from .preflight import explain_load_error, loading_note
from .slots_ct2 import CT2SlotsMixin
from .generation import GenerationSettings, generate_texts
# Re-exported so ``from summarizer.models import ...`` keeps working for every caller.
from .model_sources import (PICKLE_SUFFIXES, _PICKLE_ERRORS, _check_kind, _is_run_folder,  # noqa: F401
                            has_only_pickle_weights, is_adapter, pickle_refusal, resolve_source,
                            weights_kwargs)
from .slot_config import (ADAPTER_SLOTS, BASE_ADAPTER, DEFAULT_BASE_MODEL, EMPTY_SLOT_HELP,  # noqa: F401
                          SLOT_LABELS, SLOTS, SlotConfig, SlotError)


@dataclass
class _Loaded:
    model: object
    tokenizer: object


class ModelSlots(CT2SlotsMixin):
    """Lazily loaded, thread-safe model slots sharing one base model.

    Args:
        config: slot sources.
        device: torch device name (default: CUDA if available, else CPU).
        dtype: weights dtype (default: bf16 on capable GPUs, else fp32).
        backend: inference engine, ``torch`` (default) or ``ct2`` (CTranslate2).
        compute_type: CTranslate2 weights/compute type, ``auto`` (int8 on CPU, int8_float16 on
            CUDA), ``int8``, ``float32`` or ``int8_float16``; ignored by the torch backend.
        on_progress: called with one line per conversion stage (ct2 backend); default: logging.

    All public methods may be called from several threads; model work is serialised by one lock.
    The CTranslate2 methods (``set_backend`` and the ``ct2`` generation) come from
    :class:`summarizer.slots_ct2.CT2SlotsMixin`.

    Raises:
        SlotError: unknown backend or compute type.
    """

    def __init__(self, config: SlotConfig | None = None, device: str | None = None,
                 dtype: torch.dtype | None = None, backend: str = "torch", compute_type: str = "auto",
                 on_progress: Callable[[str], None] | None = None):
        self.config = config or SlotConfig()
        self.device = pick_device(device)
        self.dtype = dtype or pick_dtype(self.device)
        self._lock = threading.RLock()
        self._base: _Loaded | None = None  # base model, wrapped by peft once adapters load
        self._full: _Loaded | None = None
        self._adapters: dict[str, str] = {}  # slot -> source loaded as that adapter
        self._ct2: dict[str, tuple[tuple, ct2_backend.CT2Model]] = {}  # slot -> (key, model)
        self._ct2_tokenizer: tuple[str, object] | None = None  # (base source, tokenizer)
        self.on_progress = on_progress
        # Full model beside the shared base in Compare: None = when there are >= 2 cores.
        self.parallel_full: bool | None = None
        self.backend, self.compute_type = "torch", "auto"
        self.set_backend(backend, compute_type)

    # ---- configuration -------------------------------------------------------------------
    def source(self, slot: str) -> str | None:
        self._check_slot(slot)
        return getattr(self.config, slot)

    def set_source(self, slot: str, source: str | None) -> None:
        """Point ``slot`` at a new source (``None`` or "" empties it); reloads lazily.

        Raises:
            SlotError: unknown slot, missing folder, wrong kind of model, or an empty base.
        """
        self._check_slot(slot)
        source = resolve_source(source) if source and str(source).strip() else None
        if source is None and slot == "base":
            raise SlotError(EMPTY_SLOT_HELP["base"])
        if source:
            _check_kind(slot, source)
        with self._lock:
            if source == getattr(self.config, slot):
                return
            setattr(self.config, slot, source)
            self._drop_ct2(slot)
            if slot == "base":
                self._base, self._adapters = None, {}
            elif slot == "full":
                self._full = None
            elif slot in self._adapters:
                self._base.model.delete_adapter(slot)
                del self._adapters[slot]

    def is_filled(self, slot: str) -> bool:
        return bool(self.source(slot))

    def is_loaded(self, slot: str) -> bool:
        """True when ``slot``'s model is in memory for the current backend (no load on next use)."""
        if self.backend == "ct2":
            return slot in self._ct2
        return {"base": self._base is not None, "full": self._full is not None}.get(slot, slot in self._adapters)

    def loading_note(self, slots: Sequence[str] = ("base",)) -> str:
        """A progress line for the first of ``slots`` not yet loaded (saying when it is a
        first-use download, see :func:`summarizer.preflight.loading_note`), else "generating"."""
        for slot in slots:
            if self.is_filled(slot) and not self.is_loaded(slot):
                return loading_note(f"{slot} model", self.source(slot))
        return "generating"

    def describe(self, slot: str) -> str:
        """One line for the UI: the slot's source and whether it is loaded, or how to fill it."""
        src = self.source(slot)
        if not src:
            return EMPTY_SLOT_HELP[slot]
        return f"{src} ({'loaded' if self.is_loaded(slot) else 'loads on first use'})"

    @staticmethod
    def _check_slot(slot: str) -> None:
        if slot not in SLOTS:
            raise SlotError(f"Unknown slot {slot!r}; slots are {', '.join(SLOTS)}.")

    # ---- loading -------------------------------------------------------------------------
    def _load_seq2seq(self, source: str, slot: str) -> _Loaded:
        _check_kind(slot, source)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForSeq2SeqLM.from_pretrained(source, dtype=self.dtype, **weights_kwargs(source))
        except (OSError, ValueError) as err:
            raise SlotError(explain_load_error(f"{slot} model", source, err, f"--{slot}-model")) from err
        except _PICKLE_ERRORS as err:
            if has_only_pickle_weights(source):
                raise pickle_refusal(source) from err
            raise
        return _Loaded(model.to(self.device).eval(), tokenizer)

    def base(self) -> _Loaded:
        """The shared base (a ``PeftModel`` once an adapter is loaded) and its tokenizer."""
        with self._lock:
            if self._base is None:
                self._base = self._load_seq2seq(self.config.base, "base")
            return self._base

    @property
    def tokenizer(self):
        """The base model's tokenizer (loads the base if needed; only the tokenizer with ct2)."""
        if self.backend == "ct2":
            return self.base_tokenizer()
        return self.base().tokenizer

    def tokenizer_of(self, slot: str):
        """The tokenizer that reads ``slot``'s prompts and counts its summary tokens.

        The full slot may carry its own tokenizer; every other slot shares the base's. With the
        ct2 backend only the tokenizer (and the CTranslate2 model) are loaded, never the torch model.

        Raises:
            SlotError: the slot is empty or fails to load.
        """
        if slot != "full":
            return self.tokenizer
        if self.backend == "ct2":
            return self._ct2_model("full").tokenizer
        return self.full().tokenizer

    def _ensure_adapter(self, slot: str) -> None:
        from peft import PeftModel  # imported here: the app starts faster without peft

        source = self.source(slot)
        if not source:
            raise SlotError(EMPTY_SLOT_HELP[slot])
        base = self.base()
        if self._adapters.get(slot) == source:
            return
        _check_kind(slot, source)
        try:
            if isinstance(base.model, PeftModel):
                base.model.load_adapter(source, adapter_name=slot)
            else:
                base.model = PeftModel.from_pretrained(base.model, source, adapter_name=slot)
            base.model.eval()
        except _PICKLE_ERRORS + (OSError, ValueError) as err:
            if has_only_pickle_weights(source):
                raise pickle_refusal(source) from err
            raise SlotError(f"Could not load the {slot} adapter from {source!r} onto base "
                            f"{self.config.base!r}: {err}") from err
        self._adapters[slot] = source

    def load(self, slots: Sequence[str] = SLOTS) -> None:
        """Load the given filled slots now (empty ones are skipped).

        Raises:
            SlotError: a slot's model is missing or of the wrong kind.
        """
        with self._lock:
            for slot in slots:
                if not self.is_filled(slot):
                    continue
                if self.backend == "ct2":
                    self._ct2_model(slot)
                elif slot == "base":
                    self.base()
                elif slot == "full":
                    self.full()
                else:
                    self._ensure_adapter(slot)

    def full(self) -> _Loaded:
        """The fully fine-tuned model and its tokenizer (the base's if it has none)."""
        with self._lock:
            if not self.config.full:
                raise SlotError(EMPTY_SLOT_HELP["full"])
            if self._full is None:
                self._full = self._load_seq2seq(self.config.full, "full")
            return self._full

    def trainable_parameters(self, slot: str) -> tuple[int, int]:
        """(parameters the slot trained, total parameters the slot runs with).

        For adapter slots the first number counts only that adapter's parameters. With the ct2
        backend the counts come from shapes alone, so no torch model is loaded for them.
        """
        counted = self._ct2_parameters(slot) if self.backend == "ct2" else None
        if counted is not None:
            return counted
        with self._lock:
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

    # ---- generation ----------------------------------------------------------------------
    def generate(self, slots: Sequence[str], prompts: Sequence[str], settings: GenerationSettings,
                 batch_size: int = 8, on_batch: Callable[[int, int], None] | None = None
                 ) -> dict[str, list[str]]:
        """Summaries of every prompt from every requested slot.

        Base and adapter slots run together in mixed batches on the shared base (peft's
        ``adapter_names``); the full slot runs on its own model.

        Args:
            slots: filled slot names, e.g. ``["base", "lora"]``.
            prompts: N prompt strings.
            settings: decoding settings shared by all slots.

        Returns:
            ``{slot: [N summaries]}``.

        Raises:
            SlotError: a requested slot is empty or its model cannot be loaded.
        """
        for slot in slots:
            self._check_slot(slot)
        with self._lock:
            if self.backend == "ct2":
                return self._generate_ct2(slots, prompts, settings, batch_size, on_batch)
            out: dict[str, list[str]] = {}
            shared = [s for s in slots if s != "full"]
            # Sampling stays sequential: both threads would draw from torch's one global generator.
            if "full" in slots and shared and settings.strategy != "sampling" and self._parallel_full():
                return self._generate_full_alongside(slots, shared, prompts, settings, batch_size, on_batch)
            if shared:
                out.update(self._generate_shared(shared, prompts, settings, batch_size, on_batch))
            if "full" in slots:
                full = self.full()
                out["full"] = generate_texts(full.model, full.tokenizer, prompts, settings,
                                             batch_size=batch_size, on_batch=on_batch)
            return {s: out[s] for s in slots}

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
        progress = _SummedProgress(on_batch, {"full": len(prompts), "shared": len(prompts) * len(shared)})
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="full-slot") as pool:
            future = pool.submit(generate_texts, full.model, full.tokenizer, prompts, settings,
                                 batch_size=batch_size, on_batch=progress.part("full"))
            out = self._generate_shared(shared, prompts, settings, batch_size, progress.part("shared"))
            out["full"] = future.result()
        return {s: out[s] for s in slots}

    def _generate_shared(self, slots, prompts, settings, batch_size, on_batch) -> dict[str, list[str]]:
        """Generate for base/adapter slots on the shared base model."""
        for slot in slots:
            if slot in ADAPTER_SLOTS:
                self._ensure_adapter(slot)
        base = self.base()
        if not self._adapters:  # plain model: only the base slot can be asked for here
            return {"base": generate_texts(base.model, base.tokenizer, prompts, settings,
                                           batch_size=batch_size, on_batch=on_batch)}
        if settings.strategy != "beam":
            # One mixed batch: each row runs with its own adapter (peft mixed-batch inference).
            names = [BASE_ADAPTER if s == "base" else s for s in slots for _ in prompts]
            texts = generate_texts(base.model, base.tokenizer, list(prompts) * len(slots), settings,
                                   batch_size=batch_size * len(slots), adapter_names=names,
                                   on_batch=on_batch)
            n = len(prompts)
            return {s: texts[k * n:(k + 1) * n] for k, s in enumerate(slots)}
        # peft's mixed batches do not expand adapter names over beams, so beams run per slot.
        out = {}
        for slot in slots:
            if slot == "base":
                with base.model.disable_adapter():
                    out[slot] = generate_texts(base.model, base.tokenizer, prompts, settings,
                                               batch_size=batch_size, on_batch=on_batch)
            else:
                base.model.set_adapter(slot)
                out[slot] = generate_texts(base.model, base.tokenizer, prompts, settings,
                                           batch_size=batch_size, on_batch=on_batch)
        return out


class _SummedProgress:
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
