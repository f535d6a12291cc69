"""The four model slots (base, full, lora, detox) behind one interface, on one inference engine.

A slot source may be a hub id, a model or adapter folder, or a finished run folder (its model
is in ``<run>/model``). Loading is lazy, cached and guarded by one lock.

The engine is chosen per ``ModelSlots`` (``backend``): ``torch`` (the default,
:class:`~summarizer.inference.torch_engine.TorchEngine`: one shared base with the adapters on it)
or ``ct2`` (:class:`~summarizer.inference.ct2_engine.CT2Engine`: every slot on its own cached
CTranslate2 conversion). Both engines answer the same methods (``is_loaded``, ``drop``, ``load``,
``tokenizer_of``, ``parameters``, ``generate``), so callers of :meth:`ModelSlots.generate` do not
see which one runs.

Two ways to generate: :meth:`ModelSlots.generate` runs one caller's prompts now (Evaluate, the
Prompt Lab, the CLIs); :meth:`ModelSlots.answer` is for interactive requests (Prompting, Compare,
the Arena): it merges requests that arrive together into one batch
(:mod:`summarizer.inference.batcher`) and answers identical ones once
(:mod:`summarizer.inference.answer_cache`).
"""
from __future__ import annotations

import threading
from typing import Callable, Sequence

import torch

from summarizer.inference.answer_cache import AnswerCache
from summarizer.inference.batcher import BatchLimits, Request, RequestBatcher
from summarizer.inference.ct2_engine import BackendError, COMPUTE_TYPES, CT2Engine, load_tokenizer
from summarizer.inference.devices import pick_device, pick_dtype
from summarizer.inference.generation import GenerationSettings, batch_key
from summarizer.inference.model_sources import check_kind, check_weights, resolve_source
from summarizer.inference.slot_config import EMPTY_SLOT_HELP, SLOTS, SlotConfig, SlotError
from summarizer.inference.torch_engine import TorchEngine
from summarizer.limits import check_max_input_tokens, model_input_limit
from summarizer.preflight import loading_note

BACKENDS = ("torch", "ct2")


class ModelSlots:
    """Lazily loaded, thread-safe model slots on one engine.

    Args:
        config: slot sources.
        device: torch device name (default: CUDA if available, else CPU).
        dtype: weights dtype (default: bf16 on capable GPUs, else fp32).
        backend: inference engine, ``torch`` (default) or ``ct2`` (CTranslate2).
        compute_type: CTranslate2 weights/compute type, ``auto`` (int8 on CPU, int8_float16 on
            CUDA), ``int8``, ``float32`` or ``int8_float16``; ignored by the torch backend.
        on_progress: called with one line per conversion stage (ct2 backend); default: logging.
        limits: how :meth:`answer` merges concurrent requests (window, rows and tokens per batch).

    Attributes:
        torch_engine: the PyTorch engine (kept when switching to ct2, so switching back reloads nothing).
        ct2_engine: the CTranslate2 engine while ``backend == "ct2"``, else None.
        batcher: the :class:`~summarizer.inference.batcher.RequestBatcher` behind :meth:`answer`.
        answers: the :class:`~summarizer.inference.answer_cache.AnswerCache` behind :meth:`answer`.

    All public methods may be called from several threads; model work is serialised by one lock.

    Raises:
        SlotError: unknown backend or compute type.
    """

    def __init__(self, config: SlotConfig | None = None, device: str | None = None,
                 dtype: torch.dtype | None = None, backend: str = "torch", compute_type: str = "auto",
                 on_progress: Callable[[str], None] | None = None, limits: BatchLimits | None = None):
        self.config = config or SlotConfig()
        self.device = pick_device(device)
        self.dtype = dtype or pick_dtype(self.device)
        self._lock = threading.RLock()
        self._state_lock = threading.Lock()  # sources, versions and the engine change under it too
        self.on_progress = on_progress
        self.torch_engine = TorchEngine(self.config, self.device, self.dtype)
        self.ct2_engine: CT2Engine | None = None
        self._tokenizer: tuple[str, object] | None = None  # (base source, tokenizer) without a model
        self._versions = dict.fromkeys(SLOTS, 0)  # bumped on every change of a slot (answer keys)
        self.batcher = RequestBatcher(self._generate_rows, limits)
        self.answers = AnswerCache()
        self.backend, self.compute_type = "torch", "auto"
        self.set_backend(backend, compute_type)

    @property
    def engine(self) -> TorchEngine | CT2Engine:
        """The engine every slot runs on now."""
        return self.ct2_engine if self.ct2_engine is not None else self.torch_engine

    # ---- configuration -------------------------------------------------------------------
    def set_backend(self, backend: str, compute_type: str = "auto") -> None:
        """Switch the inference engine for every slot (``torch`` or ``ct2``) and its compute type.

        Models load lazily on the next use; switching back to torch keeps loaded torch models.

        Raises:
            SlotError: unknown backend or compute type, or a type this device lacks (the
                message names the field and its allowed values).
        """
        if backend not in BACKENDS:
            raise SlotError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
        if compute_type not in COMPUTE_TYPES:
            raise SlotError(f"compute type must be one of {', '.join(COMPUTE_TYPES)}, got {compute_type!r}.")
        with self._lock:
            if (backend, compute_type) == (self.backend, self.compute_type):
                return
            try:
                engine = (CT2Engine(self.config, self.device, compute_type, self.base_tokenizer, self.on_progress)
                          if backend == "ct2" else None)
            except BackendError as err:
                raise SlotError(str(err)) from err
            with self._state_lock:
                self.ct2_engine, self.backend, self.compute_type = engine, backend, compute_type

    def source(self, slot: str) -> str | None:
        self._check_slot(slot)
        return getattr(self.config, slot)

    def set_source(self, slot: str, source: str | None) -> None:
        """Point ``slot`` at a new source (``None`` or "" empties it); reloads lazily.

        Raises:
            SlotError: unknown slot, missing folder, wrong kind of model (pickle weights the
                restricted unpickler refuses included), or an empty base.
        """
        source = self._checked_source(slot, source)
        with self._lock:
            if source == getattr(self.config, slot):
                return
            with self._state_lock:
                setattr(self.config, slot, source)
                self._versions[slot] += 1
            for engine in (self.torch_engine, self.ct2_engine):
                if engine is not None:
                    engine.drop(slot)

    @property
    def max_input_tokens(self) -> int:
        """Where both engines cut a prompt's tokens (``config.max_input_tokens``); see
        :meth:`set_max_input_tokens`."""
        return self.config.max_input_tokens

    def input_limit(self) -> int | None:
        """The base model's own input limit in tokens (:func:`summarizer.limits.model_input_limit`
        of its tokenizer: 512 for FLAN-T5), or None when it names none. Loads only the tokenizer."""
        return model_input_limit(self.base_tokenizer())

    def set_max_input_tokens(self, value, field: str = "max input tokens") -> int:
        """Make both engines cut prompts at ``value`` tokens (the prompt builders fit them to it).

        Raises:
            ValueError: not a whole number of at least 1, or above the base model's own limit
                (:meth:`input_limit`); the message names ``field`` and that limit.
            SlotError: the base's tokenizer cannot be loaded.
        """
        value = check_max_input_tokens(value, self.input_limit(), field, f"the base model {self.config.base}")
        with self._lock, self._state_lock:
            self.config.max_input_tokens = value
        return value

    def is_filled(self, slot: str) -> bool:
        return bool(self.source(slot))

    def is_loaded(self, slot: str) -> bool:
        """True when ``slot``'s model is in memory for the current backend (no load on next use)."""
        return self.engine.is_loaded(slot)

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

    def _checked_source(self, slot: str, source: str | None) -> str | None:
        """``source`` resolved and checked for ``slot`` (``None`` empties it); raises :class:`SlotError`
        for an unknown slot, a missing folder, a wrong kind of model, pickle weights the restricted
        unpickler refuses, or an empty base. Shared with the Ray slots, whose replicas must not
        each find the fault."""
        self._check_slot(slot)
        source = resolve_source(source) if source and str(source).strip() else None
        if source is None and slot == "base":
            raise SlotError(EMPTY_SLOT_HELP["base"])
        if source:
            check_kind(slot, source)
            check_weights(source)  # refused now, not at every later load
        return source

    @staticmethod
    def _check_slot(slot: str) -> None:
        if slot not in SLOTS:
            raise SlotError(f"Unknown slot {slot!r}; slots are {', '.join(SLOTS)}.")

    # ---- models and tokenizers -----------------------------------------------------------
    def base_tokenizer(self):
        """The base model's tokenizer without loading a model: the loaded torch base's when there
        is one, else the tokenizer alone, read once per base source and kept (either backend).

        Raises:
            SlotError: the base's tokenizer cannot be loaded (the message names the base source).
        """
        with self._lock:
            loaded = self.torch_engine.loaded_base_tokenizer()
            if loaded is not None:
                return loaded
            if self._tokenizer is None or self._tokenizer[0] != self.config.base:
                check_kind("base", self.config.base)  # offline and not cached: refused now, no hub retries
                self._tokenizer = (self.config.base, load_tokenizer(self.config.base, "base"))
            return self._tokenizer[1]

    @property
    def tokenizer(self):
        """The base model's tokenizer (loads the torch base if needed; only the tokenizer with ct2)."""
        return self.tokenizer_of("base")

    def tokenizer_of(self, slot: str):
        """The tokenizer that reads ``slot``'s prompts and counts its summary tokens.

        The full slot may carry its own tokenizer; every other slot shares the base's. With the
        ct2 backend only the tokenizer (and the CTranslate2 model) are loaded, never the torch model.

        Raises:
            SlotError: the slot is empty or fails to load.
        """
        which = "full" if slot == "full" else "base"
        # Without the lock when already loaded: a running batch holds the lock for seconds, and
        # every request builds its prompt with the tokenizer before it joins the next batch.
        loaded = self.engine.loaded_tokenizer(which)
        cached = self._tokenizer
        if loaded is None and which == "base" and cached is not None and cached[0] == self.config.base:
            loaded = cached[1]
        if loaded is not None:
            return loaded
        with self._lock:
            return self.engine.tokenizer_of(which)

    def load(self, slots: Sequence[str] = SLOTS) -> None:
        """Load the given filled slots now (empty ones are skipped).

        Raises:
            SlotError: a slot's model is missing or of the wrong kind.
        """
        with self._lock:
            for slot in slots:
                if self.is_filled(slot):
                    self.engine.load(slot)

    def trainable_parameters(self, slot: str) -> tuple[int, int]:
        """(parameters the slot trained, total parameters the slot runs with).

        For adapter slots the first number counts only that adapter's parameters. With the ct2
        backend the counts come from shapes alone, so no torch model is loaded for them.
        """
        with self._lock:
            counted = self.ct2_engine.parameters(slot) if self.ct2_engine is not None else None
            return counted if counted is not None else self.torch_engine.parameters(slot)

    # ---- generation ----------------------------------------------------------------------
    def generate(self, slots: Sequence[str], prompts: Sequence[str], settings: GenerationSettings,
                 batch_size: int = 8, on_batch: Callable[[int, int], None] | None = None
                 ) -> dict[str, list[str]]:
        """Summaries of every prompt from every requested slot.

        On torch, base and adapter slots run together in mixed batches on the shared base (peft's
        ``adapter_names``) and the full slot on its own model; on ct2 each slot on its own model.

        Args:
            slots: filled slot names, e.g. ``["base", "lora"]``.
            prompts: N prompt strings.
            settings: decoding settings shared by all slots.
            batch_size: prompts per generation batch and slot.
            on_batch: called with (summaries done, summaries in all) after each batch.

        Returns:
            ``{slot: [N summaries]}``.

        Raises:
            SlotError: a requested slot is empty or its model cannot be loaded.
        """
        for slot in slots:
            self._check_slot(slot)
        with self._lock:
            return self.engine.generate(slots, prompts, settings, batch_size, on_batch)

    def answer(self, slots: Sequence[str], prompts: Sequence[str], settings: GenerationSettings, *,
               cancel: threading.Event | None = None, streams: dict[int, Callable[[str], None]] | None = None,
               on_start: Callable[[int], None] | None = None) -> dict[str, list[str]]:
        """:meth:`generate` for interactive requests: batched with concurrent ones, identical ones
        answered once.

        The request's rows (every slot for every prompt, slot-major: row ``k * N + i`` is slot
        ``k``, prompt ``i``) wait for the next batch of :attr:`batcher`; a request identical to a
        running or recent one (same engine, slot sources and versions, rows and settings) gets
        that answer. Greedy results equal :meth:`generate`'s; a sampled request runs in a batch
        of its own, so its seed reproduces it.

        Args:
            slots, prompts, settings: as for :meth:`generate`.
            cancel: set it to withdraw the request (:class:`~summarizer.inference.batcher.Cancelled`).
            streams: row index -> called with that row's text so far (not with beam search).
            on_start: called with the number of requests in the batch when it starts.

        Returns:
            ``{slot: [N summaries]}``.

        Raises:
            SlotError: a slot is unknown or empty, or its model cannot be loaded.
            ValueError: a setting is out of range.
            Cancelled: ``cancel`` was set first.
        """
        for slot in slots:
            self._check_slot(slot)
            if not self.is_filled(slot):
                raise SlotError(EMPTY_SLOT_HELP[slot])
        settings.validate()
        rows = [(s, p) for s in slots for p in prompts]
        with self._state_lock:  # not the slots' lock, which a running batch holds
            state = (self.backend, self.compute_type, self.config.max_input_tokens,
                     tuple((s, getattr(self.config, s), self._versions[s]) for s in ("base", *slots)))
        key = (state, tuple(rows), batch_key(settings))
        # about 4 characters per token for English text; the cap bounds memory, not exactness
        tokens = sum(len(p) for _, p in rows) // 4 + len(rows)

        def compute(fan_out):
            request = Request(rows, settings, tokens, cancel, fan_out, on_start)
            return self.batcher.submit(request)

        texts = self.answers.get(key, len(rows), compute, streams, cancel)
        n = len(prompts)
        return {s: texts[k * n:(k + 1) * n] for k, s in enumerate(slots)}

    def _generate_rows(self, rows, settings, streams) -> list[str]:
        """One batch of :attr:`batcher`: the engine's ``generate_rows`` under the slots' lock."""
        with self._lock:
            return self.engine.generate_rows(rows, settings, streams)
