"""CTranslate2 inference for the model slots: convert once, cache, generate with the same settings.

The studio's default engine is PyTorch (``transformers``). With ``--backend ct2`` every slot runs
on its own CTranslate2 model (OpenNMT's C++ inference engine for Transformers, the engine behind
faster-whisper; https://opennmt.net/CTranslate2):

* ``base`` and ``full``: the model folder (or hub snapshot) converted by
  ``ctranslate2.converters.TransformersConverter``;
* ``lora`` and ``detox``: the peft adapter merged into a fresh copy of the base
  (``PeftModel.merge_and_unload``) and that merged model converted, so each slot has its own
  CTranslate2 model and nothing is shared with the torch path.

Conversions are cached, keyed by what they were made from (hub id + commit, or a SHA-256 of the
folder's files) and the weight type (``int8`` or ``float32``):

* a training run's model (``<run>/model``): ``<run>/ct2/<key>``;
* a hub model or any other folder: ``$HF_HOME/studio-ct2/<key>`` (``$STUDIO_CT2_CACHE`` overrides).

A conversion is written to a temporary folder beside the cache entry and renamed into place when
complete, so a failed or interrupted conversion never leaves an entry that would be reused.

Tokens: CTranslate2 takes the tokenizer's *tokens* (strings), so a prompt goes in as
``tokenizer.convert_ids_to_tokens(tokenizer.encode(text))`` (with T5's ``</s>``) and a result
comes back through ``tokenizer.decode(tokenizer.convert_tokens_to_ids(tokens))``. The decoder
start token (T5: ``<pad>``) is written by the converter into the model's ``config.json``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .generation import GenerationSettings, length_sorted_batches

log = logging.getLogger(__name__)

BACKENDS = ("torch", "ct2")
COMPUTE_TYPES = ("auto", "int8", "float32", "int8_float16")
# How a compute type is stored on disk: int8 kinds are quantized at conversion (4x smaller files),
# float32 keeps full precision. CTranslate2 converts between them at load time if needed.
STORED = {"int8": "int8", "int8_float16": "int8", "float32": "float32"}
conversion_count = 0  # conversions done by this process (tests assert cache reuse with it)


class BackendError(ValueError):
    """A backend, compute type or generation setting the chosen engine cannot honour."""


def check_backend(backend: str, compute_type: str = "auto") -> None:
    """Raise :class:`BackendError` naming the field when ``backend``/``compute_type`` is unknown."""
    if backend not in BACKENDS:
        raise BackendError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    if compute_type not in COMPUTE_TYPES:
        raise BackendError(f"compute type must be one of {', '.join(COMPUTE_TYPES)}, got {compute_type!r}.")


def resolve_compute_type(compute_type: str, device: str) -> str:
    """The concrete CTranslate2 compute type for ``compute_type`` on ``device`` ("cpu"/"cuda").

    ``auto`` is int8 on CPU (fastest there: 0.45x of PyTorch's time in the issue's measurement)
    and int8_float16 on CUDA.

    Raises:
        BackendError: unknown type, or one this device does not support (e.g. int8_float16 on CPU).
    """
    check_backend("ct2", compute_type)
    import ctranslate2

    if compute_type == "auto":
        compute_type = "int8_float16" if device == "cuda" else "int8"
    supported = ctranslate2.get_supported_compute_types(device)
    if compute_type not in supported:
        raise BackendError(f"compute type {compute_type!r} is not supported on {device} "
                           f"(supported: {', '.join(sorted(supported))}); choose auto, int8 or float32.")
    return compute_type


def unsupported_settings(settings: GenerationSettings) -> list[str]:
    """Messages for settings CTranslate2 cannot honour exactly (empty: all are honoured).

    Every field of :class:`GenerationSettings` maps onto ``Translator.translate_batch``
    (see :func:`translate_options`); this guards fields added later without a mapping.
    """
    mapped = {"max_new_tokens", "min_new_tokens", "strategy", "temperature", "top_k", "top_p",
              "num_beams", "seed"}
    return [f"generation setting {name!r} has no CTranslate2 equivalent; use --backend torch"
            for name in settings.to_dict() if name not in mapped]


def translate_options(settings: GenerationSettings) -> dict:
    """``Translator.translate_batch`` keyword arguments for ``settings``.

    Lengths: ``max_decoding_length``/``min_decoding_length`` count generated tokens including the
    end token, as transformers' ``max_new_tokens``/``min_new_tokens`` do. Greedy is beam 1 with
    top-k 1; sampling is beam 1 with CTranslate2's top-k (0 = whole vocabulary, as in
    transformers), top-p and temperature.

    Raises:
        BackendError: a setting has no CTranslate2 equivalent.
    """
    settings.validate()
    problems = unsupported_settings(settings)
    if problems:
        raise BackendError("; ".join(problems) + ".")
    opts = dict(max_decoding_length=settings.max_new_tokens, min_decoding_length=settings.min_new_tokens,
                max_input_length=0)  # prompts are truncated by the tokenizer, as on the torch path
    if settings.strategy == "beam":
        return {**opts, "beam_size": settings.num_beams}
    if settings.strategy == "sampling":
        return {**opts, "beam_size": 1, "sampling_topk": settings.top_k, "sampling_topp": settings.top_p,
                "sampling_temperature": settings.temperature}
    return {**opts, "beam_size": 1, "sampling_topk": 1}


# ---- cache keys --------------------------------------------------------------------------------
def _hub_snapshot(source: str) -> Path | None:
    """The local snapshot folder of hub id ``source`` (``.../snapshots/<commit>``), if cached."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the cache (or not a hub id): the converter says why
        return None


def _folder_digest(folder: Path) -> str:
    """SHA-256 over the names and contents of the model files in ``folder`` (not sub-folders)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        h.update(path.name.encode() + b"\0")
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def source_key(source: str) -> str:
    """A stable identity for a model source: the folder's file digest or ``hub:<id>@<commit>``."""
    path = Path(source)
    if path.is_dir():
        return "dir:" + _folder_digest(path)
    snapshot = _hub_snapshot(source)
    return f"hub:{source}@{snapshot.name if snapshot else 'unknown'}"


def _run_folder(source: str) -> Path | None:
    """The training run that ``source`` (``<run>/model``) belongs to, if it is one."""
    path = Path(source)
    return path.parent if path.name == "model" and (path.parent / "status.json").is_file() else None


def cache_entry(source: str, stored: str, base: str | None = None) -> Path:
    """Where the conversion of ``source`` (merged into ``base`` when an adapter) is cached."""
    key = json.dumps({"source": source_key(source), "base": base and source_key(base), "weights": stored})
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    name = f"{stored}-{digest}"
    run = _run_folder(source)
    if run is not None:
        return run / "ct2" / name
    from huggingface_hub import constants

    root = os.environ.get("STUDIO_CT2_CACHE") or Path(constants.HF_HOME) / "studio-ct2"
    return Path(root) / name


# ---- conversion --------------------------------------------------------------------------------
def _converter(source: str, base: str | None):
    """A TransformersConverter for ``source``, or for the adapter ``source`` merged into ``base``.

    Weights load as the torch path loads them (:func:`summarizer.model_sources.weights_kwargs`:
    a local folder with safetensors never has a pickle beside them read).
    """
    from ctranslate2.converters import TransformersConverter

    from .model_sources import weights_kwargs

    class SafeConverter(TransformersConverter):
        """Loads with :func:`weights_kwargs`; with ``base``, merges the adapter (peft ``merge_and_unload``)."""

        def load_model(self, model_class, model_name_or_path, **kwargs):
            model = model_class.from_pretrained(model_name_or_path, **kwargs, **weights_kwargs(model_name_or_path))
            if base is None:
                return model
            from peft import PeftModel

            return PeftModel.from_pretrained(model, source).merge_and_unload()

    return SafeConverter(base or source)


def convert(source: str, stored: str, base: str | None = None,
            progress: Callable[[str], None] | None = None) -> Path:
    """The cached CTranslate2 model folder for ``source``, converting it first if needed.

    Args:
        source: model folder or hub id; with ``base``, a peft adapter folder or hub id.
        stored: weight type on disk, ``int8`` or ``float32``.
        base: the base model the adapter is merged into (``None`` for a complete model).
        progress: called with one line per stage (e.g. for a progress bar or a log).

    Returns:
        The cache entry folder (``model.bin``, ``config.json``, vocabulary).

    Raises:
        BackendError: the conversion failed (the message names the source); nothing is cached.
    """
    global conversion_count
    entry = cache_entry(source, stored, base)
    if (entry / "model.bin").is_file():
        return entry
    say = progress or (lambda line: log.info(line))
    what = f"adapter {source} merged into {base}" if base else source
    say(f"Converting {what} to CTranslate2 ({stored}) -> {entry} ...")
    started = time.time()
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        _converter(source, base).convert(str(tmp / "model"), quantization=stored)
        conversion_count += 1
        # A hub model the conversion downloaded now has its commit: key it by that (not "@unknown"),
        # so the next start finds this entry instead of converting again.
        entry = cache_entry(source, stored, base)
        try:
            (tmp / "model").rename(entry)
        except OSError:  # another process finished the same conversion first: use that one
            if not (entry / "model.bin").is_file():
                raise
    except Exception as err:
        raise BackendError(f"Could not convert {what} to CTranslate2: {err}") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"Converted {what} in {time.time() - started:.1f} s.")
    return entry


# ---- generation --------------------------------------------------------------------------------
@dataclass
class CT2Model:
    """One slot's CTranslate2 translator and the tokenizer its tokens come from."""

    translator: object
    tokenizer: object
    folder: Path
    device: str
    compute_type: str
    threads: int

    @classmethod
    def load(cls, folder: Path, tokenizer, device: str, compute_type: str, threads: int) -> "CT2Model":
        """Load the converted model in ``folder`` with ``threads`` CPU threads per batch."""
        return cls(cls._translator(folder, device, compute_type, threads), tokenizer, folder,
                   device, compute_type, threads)

    @staticmethod
    def _translator(folder, device, compute_type, threads):
        import ctranslate2

        return ctranslate2.Translator(str(folder), device=device, compute_type=compute_type,
                                      intra_threads=threads)

    def _seeded_translator(self, settings: GenerationSettings):
        """A translator whose sampling starts from ``settings.seed``.

        CTranslate2 seeds each worker thread's generator once, when that thread first samples
        (``set_random_seed`` only sets the seed for generators created later), so a translator
        that has sampled before cannot be re-seeded. Sampling therefore gets a fresh translator
        (a reload from the cache: ~0.1 s for flan-t5-small int8); greedy and beam reuse the loaded one.
        """
        import ctranslate2

        if settings.strategy != "sampling":
            return self.translator
        ctranslate2.set_random_seed(settings.seed)
        return self._translator(self.folder, self.device, self.compute_type, self.threads)

    def generate(self, prompts: Sequence[str], settings: GenerationSettings, batch_size: int = 8,
                 max_input_tokens: int = 512, on_batch: Callable[[int, int], None] | None = None) -> list[str]:
        """One summary per prompt (same contract as :func:`summarizer.generation.generate_texts`).

        Prompts are tokenized and truncated to ``max_input_tokens`` as on the torch path, grouped
        in length-sorted batches of ``batch_size``; the seed applies from the first batch.

        Raises:
            BackendError: a setting CTranslate2 cannot honour.
        """
        opts = translate_options(settings)
        translator = self._seeded_translator(settings)
        tok = self.tokenizer
        sources = [tok.convert_ids_to_tokens(tok.encode(p, truncation=True, max_length=max_input_tokens))
                   for p in prompts]
        results = [""] * len(prompts)
        done = 0
        for batch in length_sorted_batches([len(s) for s in sources], batch_size):
            out = translator.translate_batch([sources[i] for i in batch], **opts)
            for i, r in zip(batch, out):
                ids = tok.convert_tokens_to_ids(r.hypotheses[0])
                results[i] = tok.decode(ids, skip_special_tokens=True).strip()
            done += len(batch)
            if on_batch:
                on_batch(done, len(prompts))
        return results
