"""Where a slot's model comes from, and loading its weights without trusting pickles.

* :func:`resolve_source`: a finished training run folder -> its ``model/`` folder; a missing
  local path is refused (hub ids pass through and are checked when loaded).
* :func:`is_adapter`, :func:`check_kind`: a peft adapter folder (``adapter_config.json``) belongs
  in the lora/detox slots, a model folder (``config.json``) in base/full; offline, a hub id that is
  not in the local Hugging Face cache is refused at once (:func:`offline_problem`), naming the
  command that fixes it, instead of a minute of retries against a hub that is not there.
* :func:`hub_kwargs`: ``local_files_only=True`` for ``from_pretrained`` when offline.
* :func:`weights_kwargs`, :func:`has_only_pickle_weights`, :func:`pickle_refusal`,
  ``PICKLE_ERRORS``: safetensors first; pickle weights go only through transformers' restricted
  ``torch.load(weights_only=True)``, and a refusal becomes a :class:`SlotError` that says how to
  re-save the model (``save_pretrained(..., safe_serialization=True)``); :func:`check_weights`
  runs that restricted unpickler on a pickle-only folder's weight files before the folder is
  applied to a slot (Compare's Apply, the API, a lesson), so a folder that would fail every later
  load is refused by kind at once instead of breaking every student's Summarize.

The run-folder test follows the run-folder contract of ``training/`` (``status.json`` beside the
run's own ``config.json``, which never has transformers' ``model_type``). No torch import here.
"""
from __future__ import annotations

import pickle
from pathlib import Path

from summarizer.preflight import offline, offline_refusal
from summarizer.runs import read_json
from summarizer.inference.slot_config import ADAPTER_SLOTS, SlotError

# Weight files torch.load would unpickle; we never trust them to hold only tensors.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def _is_run_folder(path: Path) -> bool:
    """A training run folder: ``status.json`` and no model files of its own.

    A run folder also holds the run's ``config.json`` (training settings, not a model config):
    a transformers config always has ``model_type``, a run config never does.
    """
    if not (path / "status.json").is_file() or (path / "adapter_config.json").is_file():
        return False
    config = read_json(path / "config.json")  # untrusted: size-capped, no symlinks, FIFOs refused
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
    from summarizer.data import (is_hub_id)  # one rule for "folder or hub id", shared with the data and Train checks

    if not is_hub_id(source):
        raise SlotError(f"Model folder {source} does not exist (and it is not a hub id such as "
                        f"google/flan-t5-base).")
    return source


def is_adapter(source: str) -> bool:
    """True when a local ``source`` folder holds a peft adapter (``adapter_config.json``)."""
    return (Path(source) / "adapter_config.json").is_file()


def offline_problem(source: str, what: str, flag: str, filename: str = "config.json") -> str | None:
    """Why ``source`` cannot be loaded offline, or None (online, a local path, or in the cache).

    Offline (:func:`summarizer.preflight.offline`, ``HF_HUB_OFFLINE``), a hub id whose ``filename``
    is not in the local Hugging Face cache (``huggingface_hub.try_to_load_from_cache``: the file
    system only, never the network) cannot load. The message (:func:`summarizer.preflight.offline_refusal`)
    names ``what`` and ``source``, the download command, ``flag`` and the tiny-model line.
    """
    from summarizer.data import is_hub_id

    source = str(source)
    if not offline() or Path(source).expanduser().exists() or not is_hub_id(source):
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(source, filename)
    except (OSError, ValueError):  # a malformed cache entry or id: not usable offline either
        cached = None
    return None if isinstance(cached, str) else offline_refusal(what, source, flag)


def hub_kwargs() -> dict:
    """``from_pretrained`` keyword arguments that keep a load off the network when offline
    (``local_files_only=True``, transformers' own switch), else ``{}``."""
    return {"local_files_only": True} if offline() else {}


def check_kind(slot: str, source: str) -> None:
    """Raise :class:`SlotError` when a local folder holds the wrong kind of model for ``slot``, or
    when offline a hub id is not in the local cache (:func:`offline_problem`, naming ``--<slot>-model``)."""
    path = Path(source)
    if not path.is_dir():
        wanted = "adapter_config.json" if slot in ADAPTER_SLOTS else "config.json"
        problem = offline_problem(source, f"{slot} model", f"--{slot}-model", wanted)
        if problem:
            raise SlotError(problem)
        return  # other hub ids are checked when loaded
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


def check_weights(source: str) -> None:
    """Refuse a local folder whose only weights are pickles the restricted unpickler rejects.

    The weight files transformers and peft read from such a folder (``pytorch_model*.bin``,
    ``adapter_model.bin``) are opened with ``torch.load(weights_only=True)`` (memory-mapped when
    they are zip archives, so only the pickle's structure is read), as a load would. Folders with
    safetensors, hub ids and missing paths pass (they are checked when loaded).

    Raises:
        SlotError: a weight file the unpickler refuses or cannot read (:func:`pickle_refusal`).
    """
    if not has_only_pickle_weights(source):
        return
    import zipfile

    import torch

    weights = [p for p in Path(source).iterdir() if p.suffix == ".bin"
               and (p.name.startswith("pytorch_model") or p.name == "adapter_model.bin")]
    for path in weights:
        try:
            torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
        except PICKLE_ERRORS + (OSError,) as err:
            raise pickle_refusal(source) from err


# What a refused or broken pickle raises from torch.load(weights_only=True).
PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, RuntimeError, AttributeError, ImportError,
                  TypeError, KeyError, IndexError)
