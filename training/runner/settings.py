"""Checks of training settings that need no model: types, upper bounds, paths, model kind; local
paths are made absolute, so a run's config.json does not depend on the app's working folder.

:class:`training.config.RunConfig` runs these in ``__post_init__``, so a bad setting is refused
before a run folder is written or a process starts, whether it came from the Train tab, the
``/start_run`` endpoint, a ``config.json`` or command-line flags. Every message names the setting,
what it got, and what is allowed.
"""
from __future__ import annotations

import math
import os
import re
import types
import typing
from dataclasses import fields
from pathlib import Path

# Upper bounds (and lower bounds the method checks do not already give). Sources: DialogSum has
# 12,460 train, 500 validation and 1,500 test dialogues (Chen et al., 2021); the other caps keep a
# CPU run within days, not years (100,000 steps of flan-t5-small is about 12 days here).
CAPS = {
    "train_size": (1, 20_000), "val_size": (0, 2_000), "max_steps": (1, 100_000),
    "batch_size": (1, 512), "eval_steps": (1, 100_000), "rouge_samples": (0, 500),
    "seed": (0, 2**32 - 1), "mini_batch_size": (1, 512), "ppo_epochs": (1, 100),
    "toxicity_samples": (0, 1_500), "min_dialogue_chars": (0, 100_000),
    "max_dialogue_chars": (1, 100_000), "top_k": (0, 100_000), "init_kl_coef": (0, 100),
    "kl_target": (0, 1_000), "output_min_length": (1, 512), "output_max_length": (2, 512),
    "min_new_tokens": (0, 511), "lora_alpha": (0, 100_000), "save_steps": (0, 100_000),
    "save_total_limit": (1, 100),
}
MAX_TEXT_CHARS = 1000  # paths and hub ids; a real one is far shorter
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def type_errors(config) -> list[str]:
    """Check (and normalise: 8.0 -> 8) every field of ``config`` against its annotation.

    Returns messages naming each field whose value has the wrong type; empty when all fit.
    """
    errors = []
    hints = typing.get_type_hints(type(config))  # not f.type: HfArgumentParser rewrites it in place
    for f in fields(config):
        base, optional = _kind(hints.get(f.name))
        value = getattr(config, f.name)
        if value is None and optional:
            continue
        fixed, message = _check_type(f.name, base, value, optional)
        if message:
            errors.append(message)
        else:
            setattr(config, f.name, fixed)
    return errors


def _kind(hint) -> tuple[str, bool]:
    """(``"int"``, ``"float"``, ``"str"``, ``"bool"`` or ``""``, whether None is allowed) of a type hint."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    optional = type(None) in args
    named = [a.__name__ for a in args if a in (int, float, str, bool)]
    return (named[0] if len(named) == 1 else ""), optional


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_type(name: str, kind: str, value, optional: bool):
    """(normalised value, None) or (None, message)."""
    what = f"{type(value).__name__} {_shown(value)}"
    if kind == "int":
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        return None, f"{name} must be a whole number{' or null' if optional else ''}, got {what}"
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value), None
        return None, f"{name} must be a finite number, got {what}"
    if kind == "bool":
        if isinstance(value, bool):
            return value, None
        return None, f"{name} must be true or false, got {what}"
    if kind == "str":
        if not isinstance(value, str):
            return None, f"{name} must be text{' or null' if optional else ''}, got {what}"
        return (None, message) if (message := text_problem(name, value)) else (value, None)
    return value, None


def text_problem(name: str, value: str) -> str | None:
    """Why ``value`` cannot be a path or model id (too long, control characters, not UTF-8), or None."""
    if len(value) > MAX_TEXT_CHARS:
        return f"{name} is too long ({len(value):,} characters; at most {MAX_TEXT_CHARS:,})"
    if _CONTROL.search(value):
        return f"{name} contains control characters (such as a newline or NUL); give a plain path or hub id"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{name} contains characters that are not valid text (a lone surrogate); give a plain path or hub id"
    return None


def bound_errors(config) -> list[str]:
    """Messages for fields outside :data:`CAPS` (after :func:`type_errors` passed)."""
    errors = []
    for name, (low, high) in CAPS.items():
        value = getattr(config, name, None)
        if value is None:
            continue
        if value > high:
            errors.append(f"{name} must be at most {high:,}, got {value:,}")
        elif value < low:
            errors.append(f"{name} must be at least {low:,}, got {value:,}")
    return errors


def local_path(value: str, field: str) -> Path:
    """``value`` as an absolute local path: ``~`` expanded, links resolved, relative paths taken
    from the app's working folder (the training child runs elsewhere, so config.json must not
    depend on it).

    Raises:
        ValueError: the path cannot be expanded or resolved (``~nosuchuser``, a symlink loop, an
            unreadable folder on the way); the message names ``field``.
    """
    try:
        return Path(value).expanduser().resolve()
    except (RuntimeError, OSError) as err:  # RuntimeError: no such user, or a loop before 3.13
        raise ValueError(f"{field} {value!r} is not a usable local path ({err}): give a folder "
                         "that exists, as an absolute path or one relative to where the app runs") from None


def looks_local(source: str) -> bool:
    """True when ``source`` names a local path (exists, is a link, or starts like one)."""
    return source.startswith((".", "/", "~")) or os.path.lexists(source)


def model_folder_problem(name: str, source: str, seq2seq: bool) -> str | None:
    """Why ``source`` is not a usable model (a folder with a config.json, of a seq2seq model when
    ``seq2seq``; or a hub id), or None.

    Raises:
        ValueError, OSError: the path cannot be resolved or read (see :func:`local_path`).
    """
    from summarizer.data import is_hub_id

    if not looks_local(source):
        return None if is_hub_id(source) else (
            f"{name} {source!r} is neither a local model folder nor a hub id (namespace/name)")
    path = local_path(source, name)
    if not path.exists():
        return f"{name} folder {source} does not exist"
    if not path.is_dir():
        return f"{name} {source} is a file, expected a model folder (holding config.json)"
    config = read_small_json(path / "config.json")
    if not isinstance(config, dict):
        return f"{name} folder {source} holds no readable config.json: it is not a model folder"
    if seq2seq and not (config.get("is_encoder_decoder") is True):
        kind = config.get("model_type")
        return (f"{name} folder {source} holds a {kind if isinstance(kind, str) else 'non'} model, not a "
                "seq2seq (encoder-decoder) model such as FLAN-T5 or BART")
    return None


def dataset_problem(source: str, splits: list[str]) -> str | None:
    """Why ``source`` is not a DialogSum folder holding ``splits`` (or a hub id), or None.

    Raises:
        ValueError, OSError: the path cannot be resolved or read (see :func:`local_path`).
    """
    from summarizer.data import _local_files, is_hub_id

    if not looks_local(source):
        return None if is_hub_id(source) else (
            f"dataset {source!r} is neither a DialogSum folder nor a hub id such as knkarthick/dialogsum")
    path = local_path(source, "dataset")
    if not path.is_dir():
        return f"dataset {source} {'is a file' if path.exists() else 'does not exist'}: give a DialogSum folder"
    missing = [s for s in splits if _local_files(path, s) is None]
    if missing:
        return (f"dataset folder {source} holds no DialogSum {'/'.join(missing)} file(s): expected "
                f"dialogsum_{missing[0]}.csv (or the official dialogsum.*.jsonl files)")
    return None


def adapter_problem(name: str, source: str) -> str | None:
    """Why ``source`` is not a LoRA adapter folder or a finished run folder, or None.

    Raises:
        ValueError, OSError: the path cannot be resolved or read (see :func:`local_path`).
    """
    path = local_path(source, name)
    if not path.is_dir():
        return f"{name} {source} {'is a file' if path.exists() else 'does not exist'}: give a finished LoRA run folder"
    if not ((path / "adapter_config.json").is_file() or (path / "model" / "adapter_config.json").is_file()):
        return f"{name} folder {source} holds no adapter_config.json: give a finished LoRA run folder"
    return None


def target_module_problem(base_model: str, targets: str) -> str | None:
    """Why ``targets`` (comma-separated) are not module names of ``base_model``, or None.

    Names are always checked for form; against the model only when the base is a local folder
    (its architecture is built on the meta device from config.json, once per version of that
    file: no weights are read).
    """
    from summarizer.inference.meta_model import module_names

    names = [t.strip() for t in targets.split(",") if t.strip()]
    bad = [n for n in names if not _MODULE_NAME.fullmatch(n)]
    if bad:
        return f"target_modules has names that are not module names: {', '.join(map(repr, bad[:5]))}"
    try:
        path = local_path(base_model, "base_model")
        if not (path / "config.json").is_file():
            return None
        leaves = module_names(str(path))
    except (OSError, ValueError, KeyError):
        return None  # the model check above already reports an unreadable base
    unknown = [n for n in names if n not in leaves]
    if unknown:
        sample = ", ".join(sorted(n for n in leaves if n and "." not in n and not n.isdigit() and len(n) <= 8)[:12])
        return (f"target_modules {', '.join(map(repr, unknown[:5]))} not found in {base_model}; "
                f"its module names include: {sample}")
    return None


def read_small_json(path: Path, limit: int = 1_000_000):
    """Parsed JSON of a file of at most ``limit`` bytes, else None."""
    from summarizer.runs import read_json

    return read_json(path, None, limit)


# Path fields: made absolute when local (start_adapter is always a folder; the others may be hub ids).
PATH_FIELDS = ("base_model", "dataset", "toxicity_model", "start_adapter")
ALWAYS_LOCAL = ("start_adapter",)


def absolute_paths(config) -> list[str]:
    """Rewrite each local path field of ``config`` as an absolute path (:func:`local_path`), so
    config.json means the same in the training child, which runs in the project folder; hub ids
    stay as they are. Returns messages for paths that cannot be resolved."""
    errors = []
    for name in PATH_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, str) and value and (name in ALWAYS_LOCAL or looks_local(value)):
            try:
                setattr(config, name, str(local_path(value, name)))
            except ValueError as err:
                errors.append(str(err))
    return errors


def _problem(name: str, source: str, check, *args) -> str | None:
    """``check(*args)``, with a disk error (a folder we may not read) as a message naming ``name``."""
    try:
        return check(*args)
    except ValueError as err:
        return str(err)
    except OSError as err:
        return f"{name} {source} cannot be read ({err.strerror or err}): give a folder this app may read"


def path_errors(config) -> list[str]:
    """Paths and model kinds of ``config`` (base model, dataset, adapter, classifier, targets);
    local paths are first made absolute (:func:`absolute_paths`)."""
    errors = absolute_paths(config)
    if errors:
        return errors
    splits = ["train"] + (["validation"] if getattr(config, "val_size", 0) else []) + \
        (["test"] if getattr(config, "toxicity_samples", 0) else [])
    base, dataset = config.base_model, config.dataset
    problems = [_problem("base_model", base, model_folder_problem, "base_model", base, True),
                _problem("dataset", dataset, dataset_problem, dataset, splits)]
    if toxicity := getattr(config, "toxicity_model", None):
        problems.append(_problem("toxicity_model", toxicity, model_folder_problem, "toxicity_model", toxicity, False))
    if adapter := getattr(config, "start_adapter", None):
        problems.append(_problem("start_adapter", adapter, adapter_problem, "start_adapter", adapter))
    if getattr(config, "target_modules", None) and not problems[0]:
        problems.append(target_module_problem(base, config.target_modules))
    return [p for p in problems if p]
