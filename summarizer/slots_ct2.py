"""The CTranslate2 half of :class:`summarizer.models.ModelSlots` (``backend="ct2"``).

:class:`CT2SlotsMixin` holds the methods that switch the engine and run every slot on its own
cached CTranslate2 conversion (:mod:`summarizer.ct2_backend`: conversion, compute types, and
the settings CTranslate2 supports). It keeps no state of its own: it reads and writes the
attributes :class:`~summarizer.models.ModelSlots` sets up (``_lock``, ``_ct2``, ``_ct2_tokenizer``
(:meth:`~CT2SlotsMixin.base_tokenizer`'s cache), ``_base``, ``config``, ``device``, ``backend``,
``compute_type``, ``on_progress``).
Adapter slots are converted merged onto the base (the key includes the base source), so a new
base drops them; the compute type is resolved per device (int8 on CPU, int8_float16 on CUDA).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from transformers import AutoTokenizer

from . import ct2_backend
from .meta_model import config_parameters
from .model_sources import _check_kind
from .slot_config import ADAPTER_SLOTS, EMPTY_SLOT_HELP, SlotError


class CT2SlotsMixin:
    """Engine switching and CTranslate2 generation for :class:`summarizer.models.ModelSlots`."""

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

    def base_tokenizer(self):
        """The base model's tokenizer without loading a model: the loaded base's when there is
        one, else the tokenizer alone, read once per base source and kept (either backend).

        Raises:
            SlotError: the base's tokenizer cannot be loaded (the message names the base source).
        """
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
            SlotError: empty slot, wrong kind of model, a failed conversion, or a cached
                conversion that does not load (the message names the folder to delete).
        """
        with self._lock:  # conversions and the model table change only under the slots' lock
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
            tokenizer = self.base_tokenizer() if slot != "full" else self._load_tokenizer(source, slot)
            try:
                model = ct2_backend.CT2Model.load(folder, tokenizer, self.device.type, compute,
                                                  torch.get_num_threads())
            except (RuntimeError, ValueError, OSError) as err:  # ctranslate2 says RuntimeError for a bad file
                raise SlotError(f"The {slot} slot: could not load its CTranslate2 model from the cache folder "
                                f"{folder}: {err}. Delete that folder and try again (it is converted anew)."
                                ) from err
            self._ct2[slot] = (key, model)
            return model

    def _ct2_parameters(self, slot: str) -> tuple[int, int] | None:
        """:meth:`trainable_parameters` without loading torch weights, or None to load them.

        Counts come from the config on the meta device (no memory) and, for an adapter, from the
        tensor shapes in its ``adapter_model.safetensors`` header; None when that file is absent.
        """
        model = self.source("full") if slot == "full" else self.config.base
        total = config_parameters(model)
        if slot not in ADAPTER_SLOTS:
            return total, total
        own = _adapter_parameters(self.source(slot))
        return None if own is None else (own, total + own)

    def _generate_ct2(self, slots, prompts, settings, batch_size, on_batch) -> dict[str, list[str]]:
        """Each slot on its own CTranslate2 model, one after the other."""
        try:
            ct2_backend.translate_options(settings)  # refuse unsupported settings before loading
        except ct2_backend.BackendError as err:
            raise SlotError(str(err)) from err
        models = {slot: self._ct2_model(slot) for slot in slots}
        return {slot: model.generate(prompts, settings, batch_size=batch_size, on_batch=on_batch)
                for slot, model in models.items()}


def _adapter_parameters(source: str) -> int | None:
    """Elements in a peft adapter's ``adapter_model.safetensors`` (read from its header), or None."""
    from huggingface_hub import hf_hub_download
    from safetensors import safe_open

    path = Path(source) / "adapter_model.safetensors"
    if not path.is_file():
        try:
            path = Path(hf_hub_download(source, "adapter_model.safetensors"))
        except (OSError, ValueError):  # not a hub id, or the hub copy has only pickles
            return None
    with safe_open(str(path), "pt") as weights:
        return sum(math.prod(weights.get_slice(k).get_shape()) for k in weights.keys())
