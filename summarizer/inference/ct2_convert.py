"""CTranslate2 conversions of the slots' models, made once and cached on disk.

With ``--backend ct2`` every slot runs on its own CTranslate2 model (OpenNMT's C++ inference
engine for Transformers, the engine behind faster-whisper; https://opennmt.net/CTranslate2):

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
Running the converted models is :mod:`summarizer.inference.ct2_engine`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

# How a compute type is stored on disk: int8 kinds are quantized at conversion (4x smaller files),
# float32 keeps full precision. CTranslate2 converts between them at load time if needed.
STORED = {"int8": "int8", "int8_float16": "int8", "float32": "float32"}
conversion_count = 0  # conversions done by this process (tests assert cache reuse with it)


class ConversionError(ValueError):
    """A model that could not be converted to CTranslate2 (the message names it); nothing is cached."""


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

    Weights load as the torch path loads them (:func:`summarizer.inference.model_sources.weights_kwargs`:
    a local folder with safetensors never has a pickle beside them read).
    """
    from ctranslate2.converters import TransformersConverter

    from summarizer.inference.model_sources import weights_kwargs

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
        ConversionError: the conversion failed (the message names the source); nothing is cached.
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
        raise ConversionError(f"Could not convert {what} to CTranslate2: {err}") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"Converted {what} in {time.time() - started:.1f} s.")
    return entry
