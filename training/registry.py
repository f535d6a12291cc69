"""The training methods, in one registry that every other part reads.

Each method module (``training/full.py``, ``lora.py``, ``ppo.py``) ends with a :class:`MethodSpec`
named ``SPEC``: its config class, the form fields the Train tab shows, the Compare slot its
result fills, its chart series, its model-card text and its cost factor. The job runner's
allow-list, the Train tab's forms and chart, the run's ``slot`` in status.json, the model card
and the time estimate all come from here.

Adding a method = one new module (config dataclass, ``train``, ``main``, ``SPEC``) and one line in
:data:`METHOD_MODULES`. This module imports no torch and no method module at import time (the
method modules import it), so reading the list of names is cheap.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# The modules that define a method (each has SPEC); the one line to add for a new method.
METHOD_MODULES = ("training.full", "training.lora", "training.ppo", "training.dpo")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,19}")  # the method part of a run id (summarizer.runs.RUN_ID_RE)


@dataclass(frozen=True)
class FormField:
    """A field of a method's Train form: config field ``name``, shown as ``label``; ``kind`` is
    ``int`` or ``float`` (a number box with that precision) or ``str`` with ``choices`` (a dropdown)."""

    name: str
    label: str
    kind: type = int
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunPicker:
    """A dropdown of a method's form whose choices are finished runs filling ``slot`` (plus
    "none"), for config field ``name`` (e.g. PPO's starting adapter)."""

    name: str
    label: str
    slot: str
    none_label: str = "fresh adapter"


@dataclass(frozen=True)
class ChartPanel:
    """One panel of a run's chart: ``series`` are (metric key in metrics.jsonl, legend name),
    drawn against ``step``."""

    title: str
    series: tuple[tuple[str, str], ...]


def fixed_factor(factor: float) -> Callable[[dict], float]:
    """A cost factor that does not depend on the settings."""
    return lambda values: factor


@dataclass(frozen=True)
class MethodSpec:
    """What the rest of the studio knows about one training method.

    Attributes:
        name: the method's name (lower case; the first part of its run ids).
        title: the Train tab's sub-tab title.
        module: the module run as ``python -m <module> --config <run>/config.json``.
        config: the config dataclass (a ``training.config.RunConfig`` subclass).
        slot: the Compare slot its model fills (``summarizer.runs.SLOTS``).
        fields: the number fields of its Train form (defaults from ``config``).
        chart: the panels of its live chart.
        card_text: completes "This is ... `<base>`" in the model card.
        adapter: True when the saved model is a peft adapter (the card's loading code).
        cost_factor: settings -> cost of a step relative to a full fine-tuning step of the same
            tokens (``training.runner.estimate``); LoRA skips the frozen weights' gradients (~0.7).
        target_tokens_field: the config field bounding output tokens (the estimate's tokens).
        pickers: dropdowns of finished runs in its form.
        resumable: a failed or cancelled run can resume from its last Trainer checkpoint.
        max_processes: the most processes it runs with (None = any); ``single_process_reason``
            says why when it is 1.
        data_note: (settings, runs folder) -> a line about the data a run with these settings
            would train on, shown in its form before Start (e.g. DPO's pair count); None = none.
    """

    name: str
    title: str
    module: str
    config: type
    slot: str
    fields: tuple[FormField, ...]
    chart: tuple[ChartPanel, ...]
    card_text: str
    adapter: bool
    cost_factor: Callable[[dict], float] = field(default=fixed_factor(1.0))
    target_tokens_field: str = "max_target_tokens"
    pickers: tuple[RunPicker, ...] = ()
    resumable: bool = False
    max_processes: int | None = None
    single_process_reason: str = ""
    data_note: Callable[[dict, Path], str] | None = None

    def __post_init__(self):
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"method name {self.name!r} must match {_NAME.pattern} (it starts run ids).")


_specs: dict[str, MethodSpec] = {}
_loaded = False


def methods() -> dict[str, MethodSpec]:
    """name -> spec of every method: those of :data:`METHOD_MODULES` (imported on first call),
    then any added with :func:`register`, in that order."""
    global _loaded
    if not _loaded:
        loaded = {}
        for module in METHOD_MODULES:
            spec = importlib.import_module(module).SPEC
            loaded[spec.name] = spec
        merged = {**loaded, **_specs}  # registered before the first call: kept, listed last
        _specs.clear()
        _specs.update(merged)
        _loaded = True
    return dict(_specs)


def spec(method) -> MethodSpec:
    """The spec of ``method``.

    Raises:
        ValueError: not a registered method (the message lists the allowed ones).
    """
    known = methods()
    if not isinstance(method, str) or method not in known:
        raise ValueError(f"method {repr(method)[:40]} is unknown; choose one of {', '.join(known)}.")
    return known[method]


def register(new: MethodSpec) -> MethodSpec:
    """Add ``new`` (e.g. a method defined outside :data:`METHOD_MODULES`, or a test's)."""
    methods()
    _specs[new.name] = new
    return new


def unregister(name: str) -> None:
    """Remove a method added with :func:`register`."""
    _specs.pop(name, None)
