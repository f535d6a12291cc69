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

The inference engine is chosen per ``ModelSlots`` (``backend``): ``torch`` (the default, above)
or ``ct2``, where every slot runs on its own cached CTranslate2 conversion
(:mod:`summarizer.ct2_backend`); callers of :meth:`ModelSlots.generate` do not see which.
"""
from __future__ import annotations

import json
import os
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Sequence

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from . import ct2_backend
from .devices import pick_device, pick_dtype
from .preflight import explain_load_error, loading_note
from .generation import GenerationSettings, generate_texts

DEFAULT_BASE_MODEL = "google/flan-t5-base"
SLOTS = ("base", "full", "lora", "detox")
ADAPTER_SLOTS = ("lora", "detox")
BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch
SLOT_LABELS = {"base": "Base (original)", "full": "Full fine-tune", "lora": "LoRA (peft)",
               "detox": "PPO detox"}
# Weight files torch.load would unpickle; we never trust them to hold only tensors.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
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
    """Where each slot's model comes from (hub id, folder, or run folder); ``None`` = empty."""

    base: str = DEFAULT_BASE_MODEL
    full: str | None = None
    lora: str | None = None
    detox: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _is_run_folder(path: Path) -> bool:
    """A training run folder: ``status.json`` and no model files of its own.

    A run folder also holds the run's ``config.json`` (training settings, not a model config):
    a transformers config always has ``model_type``, a run config never does.
    """
    if not (path / "status.json").is_file() or (path / "adapter_config.json").is_file():
        return False
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return True
    return not (isinstance(config, dict) and "model_type" in config)


def resolve_source(source: str) -> str:
    """Map a run folder to its model folder (``<run>/model``); other sources unchanged.

    Raises:
        SlotError: the path looks local but does not exist, or the run has no finished model.
    """
    source = str(source).strip()
    path = Path(source).expanduser()
    if path.is_file():
        raise SlotError(f"{source} is a file, expected a model folder (with config.json, or a "
                        f"peft adapter folder with adapter_config.json).")
    if path.is_dir():
        if _is_run_folder(path):
            model = path / "model"
            if not model.is_dir():
                raise SlotError(f"Run folder {path} has no finished model (no model/ folder).")
            return str(model)
        return str(path)
    if path.is_absolute() or source.startswith((".", "~")) or source.count("/") > 1:
        raise SlotError(f"Model folder {source} does not exist.")
    return source


def is_adapter(source: str) -> bool:
    """True when a local ``source`` folder holds a peft adapter (``adapter_config.json``)."""
    return (Path(source) / "adapter_config.json").is_file()


def _check_kind(slot: str, source: str) -> None:
    """Raise :class:`SlotError` when a local folder holds the wrong kind of model for ``slot``."""
    path = Path(source)
    if not path.is_dir():
        return  # hub ids are checked when loaded
    if slot in ADAPTER_SLOTS and not is_adapter(source):
        kind = "a full model" if (path / "config.json").is_file() else "no model files"
        raise SlotError(f"The {slot} slot needs a peft adapter folder (with adapter_config.json), "
                        f"but {source} holds {kind}." + (" Put it in the full slot." if kind == "a full model" else ""))
    if slot not in ADAPTER_SLOTS and not (path / "config.json").is_file():
        hint = " It is a peft adapter: put it in the lora or detox slot." if is_adapter(source) else ""
        raise SlotError(f"The {slot} slot needs a model folder with config.json; {source} has none.{hint}")


def weights_kwargs(source: str) -> dict:
    """``from_pretrained`` keyword arguments that keep pickles out of a local folder.

    A local folder with ``*.safetensors`` weights loads them only (``use_safetensors=True``), so a
    stray pickle beside them is never read. Hub ids keep transformers' own preference for
    safetensors (``{}``). A folder with only pickle weights is tried with transformers' restricted
    ``torch.load(weights_only=True)``; see :func:`pickle_refusal` for what happens when that fails.
    """
    path = Path(source)
    if path.is_dir() and any(path.glob("*.safetensors")):
        return {"use_safetensors": True}
    return {}


def has_only_pickle_weights(source: str) -> bool:
    """True for a local folder whose weight files are all pickles (``*.bin``, ``*.pt``, ...)."""
    path = Path(source)
    if not path.is_dir() or any(path.glob("*.safetensors")):
        return False
    return any(p.suffix in PICKLE_SUFFIXES for p in path.iterdir())


def pickle_refusal(source: str) -> SlotError:
    """The error for a folder whose pickle weights the restricted unpickler refused."""
    return SlotError(f"{source} holds pickle weights that cannot be loaded safely; give a folder "
                     f"with model.safetensors (save it with save_pretrained(..., safe_serialization=True)).")


# What a refused or broken pickle raises from torch.load(weights_only=True).
_PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, RuntimeError, AttributeError, ImportError,
                  TypeError, KeyError, IndexError)


@dataclass
class _Loaded:
    model: object
    tokenizer: object


class ModelSlots:
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
            return self._base_tokenizer()
        return self.base().tokenizer

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

        For adapter slots the first number counts only that adapter's parameters.
        """
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
            if "full" in slots and shared and self._parallel_full():
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
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="full-slot") as pool:
            future = pool.submit(generate_texts, full.model, full.tokenizer, prompts, settings,
                                 batch_size=batch_size, on_batch=on_batch)
            out = self._generate_shared(shared, prompts, settings, batch_size, on_batch)
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

    # ---- CTranslate2 backend ---------------------------------------------------------------
    def set_backend(self, backend: str, compute_type: str = "auto") -> None:
        """Switch the inference engine for every slot (``torch`` or ``ct2``) and its compute type.

        Models load lazily on the next use; switching back to torch keeps loaded torch models.

        Raises:
            SlotError: unknown backend or compute type, or a type this device lacks (the
                message names the field and its allowed values).
        """
        try:
            ct2_backend.check_backend(backend, compute_type)
            if backend == "ct2":
                ct2_backend.resolve_compute_type(compute_type, self.device.type)
        except ct2_backend.BackendError as err:
            raise SlotError(str(err)) from err
        with self._lock:
            if (backend, compute_type) != (self.backend, self.compute_type):
                self._ct2 = {}
            self.backend, self.compute_type = backend, compute_type

    def _drop_ct2(self, slot: str) -> None:
        """Forget CTranslate2 models made from ``slot``'s old source (adapters too for the base)."""
        for name in ([slot] + list(ADAPTER_SLOTS) if slot == "base" else [slot]):
            self._ct2.pop(name, None)

    def _base_tokenizer(self):
        with self._lock:
            if self._base is not None:
                return self._base.tokenizer
            if self._ct2_tokenizer is None or self._ct2_tokenizer[0] != self.config.base:
                self._ct2_tokenizer = (self.config.base, self._load_tokenizer(self.config.base, "base"))
            return self._ct2_tokenizer[1]

    @staticmethod
    def _load_tokenizer(source: str, slot: str):
        try:
            return AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError) as err:
            raise SlotError(f"Could not load the {slot} tokenizer from {source!r}: {err}") from err

    def _ct2_model(self, slot: str) -> ct2_backend.CT2Model:
        """``slot``'s CTranslate2 model, converted (cached on disk) and loaded on first use.

        Raises:
            SlotError: empty slot, wrong kind of model, or a failed conversion.
        """
        source = self.source(slot)
        if not source:
            raise SlotError(EMPTY_SLOT_HELP[slot])
        base = self.config.base if slot in ADAPTER_SLOTS else None
        compute = ct2_backend.resolve_compute_type(self.compute_type, self.device.type)
        key = (source, base, compute)
        if slot in self._ct2 and self._ct2[slot][0] == key:
            return self._ct2[slot][1]
        _check_kind(slot, source)
        try:
            folder = ct2_backend.convert(source, ct2_backend.STORED[compute], base, self.on_progress)
        except ct2_backend.BackendError as err:
            raise SlotError(f"The {slot} slot: {err}") from err
        tokenizer = self._base_tokenizer() if slot != "full" else self._load_tokenizer(source, slot)
        model = ct2_backend.CT2Model.load(folder, tokenizer, self.device.type, compute, torch.get_num_threads())
        self._ct2[slot] = (key, model)
        return model

    def _generate_ct2(self, slots, prompts, settings, batch_size, on_batch) -> dict[str, list[str]]:
        """Each slot on its own CTranslate2 model, one after the other."""
        try:
            ct2_backend.translate_options(settings)  # refuse unsupported settings before loading
        except ct2_backend.BackendError as err:
            raise SlotError(str(err)) from err
        models = {slot: self._ct2_model(slot) for slot in slots}
        return {slot: model.generate(prompts, settings, batch_size=batch_size, on_batch=on_batch)
                for slot, model in models.items()}
