"""A model's architecture from its config alone, built on the meta device (no weights read, no
memory): its parameter count and module names, for the time estimate, the LoRA target check and
the ct2 backend's parameter counts.

    from summarizer.inference.meta_model import config_parameters, module_names
    config_parameters("google/flan-t5-small")  # 76,961,152

A local config is read again only when its ``config.json`` changes (mtime, size, inode).
"""
from __future__ import annotations

import functools
import os

from summarizer.preflight import offline  # no torch there


def _stamp(source: str):
    """(mtime, size, inode) of a local ``config.json``; None for a hub id (its cached copy does not change)."""
    try:
        st = os.stat(os.path.join(source, "config.json"))
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


@functools.lru_cache(maxsize=16)
def _describe(source: str, stamp) -> tuple[int, frozenset]:
    """(parameters, module names and their last parts) of ``source`` built on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    # torch.device("meta") ties embeddings as a loaded model does; accelerate's init_empty_weights
    # does not, and would count a tied embedding twice.
    with torch.device("meta"):
        model = AutoModelForSeq2SeqLM.from_config(AutoConfig.from_pretrained(source, local_files_only=offline()))
    names = {n for n, _ in model.named_modules()}
    return sum(p.numel() for p in model.parameters()), frozenset(names | {n.rsplit(".", 1)[-1] for n in names})


def config_parameters(source: str) -> int:
    """Parameters of the seq2seq model ``source`` (a folder or hub id) describes.

    Raises:
        OSError, ValueError, KeyError: no readable config, or one transformers does not know.
    """
    return _describe(str(source), _stamp(str(source)))[0]


def module_names(source: str) -> frozenset:
    """Every module name of the seq2seq model ``source`` describes (``encoder.block.0...``), and
    the last part of each (``q``, ``v``, ``wi``): what LoRA's ``target_modules`` may name.

    Raises:
        OSError, ValueError, KeyError: no readable config, or one transformers does not know.
    """
    return _describe(str(source), _stamp(str(source)))[1]


# google/flan-t5-small's parameter count (config_parameters above); a model under a tenth of it
# (the tests' tiny T5 has 261,632, their classifier about 80,000) writes text with no meaning.
FLAN_T5_SMALL_PARAMETERS = 76_961_152
TINY_PARAMETERS = FLAN_T5_SMALL_PARAMETERS // 10


@functools.lru_cache(maxsize=32)
def _size_or_none(source: str, stamp, classifier: bool) -> int | None:
    """Parameters of ``source`` (a seq2seq model, or a sequence classifier), None when its config
    cannot be read. Failures are cached too (per ``stamp``), so a page load never retries the hub."""
    try:
        if not classifier:
            return config_parameters(source)
        import torch
        from transformers import AutoConfig, AutoModelForSequenceClassification

        with torch.device("meta"):
            model = AutoModelForSequenceClassification.from_config(
                AutoConfig.from_pretrained(source, local_files_only=offline()))  # offline: the cache only
        return sum(p.numel() for p in model.parameters())
    except (OSError, ValueError, KeyError):
        return None


def tiny_models(sources: dict[str, str | None], classifiers: tuple[str, ...] = ()) -> dict[str, int]:
    """The models among ``sources`` (name -> folder or hub id; None skipped) with fewer than
    :data:`TINY_PARAMETERS` parameters, name -> count; ``classifiers`` names the sequence
    classifiers among them (the others are seq2seq models). A source whose config cannot be
    read is left out (its size is unknown, not small)."""
    out = {}
    for name, source in sources.items():
        if not source:
            continue
        n = _size_or_none(str(source), _stamp(str(source)), name in classifiers)
        if n is not None and n < TINY_PARAMETERS:
            out[name] = n
    return out
