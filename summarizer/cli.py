"""Command-line pieces shared by ``app.py``, ``python -m summarizer.evaluation`` and ``python -m
summarizer.prompt_lab``.

The model flags (which model fills each slot, the toxicity classifier, the device), the dataset
flag and the offline switch are defined here once, so the app and the CLIs accept the
same spelling, defaults and help. Nothing here imports torch, transformers, datasets or gradio:
:func:`set_offline_env` must run before they are imported, because they read the offline
variables at import time.
"""
from __future__ import annotations

import argparse
import os

from summarizer.inference.slot_config import DEFAULT_BASE_MODEL  # no torch there: --help stays fast

DEFAULT_TOXICITY_MODEL = "facebook/roberta-hate-speech-dynabench-r4-target"  # the labs' reward model
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
OFFLINE_HELP = ("never contact the internet: sets HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1, "
                "TRANSFORMERS_OFFLINE=1 and GRADIO_ANALYTICS_ENABLED=False")


def new_parser(module: str, description: str) -> argparse.ArgumentParser:
    """The parser of ``python -m <module>`` with its ``--help`` description; the CLIs add their
    groups to it.

    Write a percent sign in ``description`` as is (``95%``): argparse %-formats a description only
    when it holds ``%(prog)``. A flag's ``help`` is always %-formatted: write ``%%`` there.
    """
    return argparse.ArgumentParser(prog=f"python -m {module}", description=description)


def add_model_flags(parser: argparse.ArgumentParser, title: str,
                    toxicity: bool = True) -> argparse._ArgumentGroup:
    """Add ``--base-model``, ``--full-model``, ``--lora-model``, ``--detox-model``,
    ``--toxicity-model`` (unless ``toxicity`` is False), ``--device``, ``--backend`` and
    ``--compute-type`` in a group named
    ``title``; returns the group so a caller can add its own model flags (e.g. ``--run``)."""
    m = parser.add_argument_group(title)
    m.add_argument("--base-model", default=DEFAULT_BASE_MODEL, help="base seq2seq model (default: %(default)s)")
    m.add_argument("--full-model", help="fully fine-tuned checkpoint for the 'full' slot")
    m.add_argument("--lora-model", help="peft LoRA adapter for the 'lora' slot (loaded onto the base)")
    m.add_argument("--detox-model", help="peft adapter from PPO detox for the 'detox' slot")
    if toxicity:
        m.add_argument("--toxicity-model", default=DEFAULT_TOXICITY_MODEL,
                       help="hate-speech classifier with nothate/hate labels (default: %(default)s)")
    m.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: $STUDIO_DEVICE, "
                                    "else CUDA if available, else CPU)")
    m.add_argument("--backend", choices=("torch", "ct2"), default="torch",
                   help="inference engine: torch (transformers) or ct2 (CTranslate2, converted and cached "
                        "on first use) (default: %(default)s)")
    m.add_argument("--compute-type", choices=("auto", "int8", "float32", "int8_float16"), default="auto",
                   help="ct2 weights: auto = int8 on CPU, int8_float16 on CUDA (default: %(default)s)")
    return m


def add_dataset_flag(group) -> None:
    """Add ``--dataset`` (default None: :func:`summarizer.data.default_dataset` decides)."""
    group.add_argument("--dataset", default=None,
                       help="DialogSum hub id or local folder (CSV or official JSONL layout) "
                            "(default: $DIALOGSUM_DIR, else knkarthick/dialogsum)")


def add_offline_flag(group) -> None:
    """Add ``--offline``; the caller runs :func:`set_offline_env` when it is given."""
    group.add_argument("--offline", action="store_true", help=OFFLINE_HELP)


def add_generation_flags(g) -> None:
    """Add the decoding flags (``--strategy`` .. ``--seed``) with :class:`GenerationSettings`'
    defaults; :func:`settings_from_args` turns them back into settings."""
    from summarizer.inference.generation import (GenerationSettings, STRATEGIES)  # imports torch: only for the CLIs

    d = GenerationSettings()
    g.add_argument("--strategy", default="greedy", choices=STRATEGIES, help="decoding (default: %(default)s)")
    g.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help="(default: %(default)s)")
    g.add_argument("--min-new-tokens", type=int, default=d.min_new_tokens, help="(default: %(default)s)")
    g.add_argument("--temperature", type=float, default=d.temperature, help="sampling only (default: %(default)s)")
    g.add_argument("--top-k", type=int, default=d.top_k, help="sampling only (default: %(default)s)")
    g.add_argument("--top-p", type=float, default=d.top_p, help="sampling only (default: %(default)s)")
    g.add_argument("--num-beams", type=int, default=d.num_beams, help="beam only (default: %(default)s)")
    g.add_argument("--seed", type=int, default=d.seed, help="generation seed (default: %(default)s)")


def add_bootstrap_flags(group, confidence: bool = True) -> None:
    """Add ``--bootstrap`` (resamples, at least 1) and, unless ``confidence`` is False,
    ``--confidence`` (the interval level, strictly between 0 and 1).

    Both are checked while parsing, so a bad value exits with status 2 and the flag named before
    any model is loaded or any summary generated.
    """
    from summarizer.evaluation.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES

    group.add_argument("--bootstrap", type=_resamples, default=DEFAULT_RESAMPLES,
                       help="bootstrap resamples, at least 1 (default: %(default)s)")
    if confidence:
        group.add_argument("--confidence", type=_level, default=DEFAULT_CONFIDENCE,
                           help="interval level, between 0 and 1 (default: %(default)s)")


def _resamples(text: str) -> int:
    """``--bootstrap``'s value; argparse prefixes the message with the flag."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of resamples, at least 1; got {text!r}")
    return value


def _level(text: str) -> float:
    """``--confidence``'s value; NaN and values outside (0, 1) are refused."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"must be a level between 0 and 1; got {text!r}")
    return value


def settings_from_args(args: argparse.Namespace):
    """The :class:`summarizer.inference.generation.GenerationSettings` of the decoding flags.

    Raises:
        ValueError: a setting out of range, naming it.
    """
    from summarizer.inference.generation import GenerationSettings

    return GenerationSettings(max_new_tokens=args.max_new_tokens, min_new_tokens=args.min_new_tokens,
                              strategy=args.strategy, temperature=args.temperature, top_k=args.top_k,
                              top_p=args.top_p, num_beams=args.num_beams, seed=args.seed).validate()


def set_offline_env() -> None:
    """Switch the hub, datasets, transformers and Gradio's analytics off for this process.

    Best run before transformers, datasets or gradio are imported: they read these at import. When
    huggingface_hub or datasets was imported already (the CLIs' flag parsing imports transformers,
    app.py's login parsing gradio), their switches read at import are set too; otherwise every
    load would still retry the hub five times (about a minute) before failing.
    """
    import sys

    for var in OFFLINE_VARS:
        os.environ[var] = "1"
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    hub = sys.modules.get("huggingface_hub.constants")  # what transformers' is_offline_mode() returns
    if hub is not None:
        hub.HF_HUB_OFFLINE = True
    data = sys.modules.get("datasets.config")
    if data is not None:
        data.HF_HUB_OFFLINE = data.HF_DATASETS_OFFLINE = True


def slot_config(args: argparse.Namespace, sources: dict[str, str | None] | None = None):
    """The :class:`summarizer.inference.slots.SlotConfig` named by the model flags.

    ``sources`` overrides ``{"full": --full-model, "lora": --lora-model, "detox": --detox-model}``
    (the evaluation CLI adds ``--run`` folders). Each source goes through
    :func:`summarizer.inference.slots.resolve_source` (a finished run folder -> its model folder).

    Raises:
        summarizer.inference.slots.SlotError: a source cannot be resolved.
    """
    from summarizer.inference.slot_config import SlotConfig
    from summarizer.inference.model_sources import resolve_source

    if sources is None:
        sources = {"full": args.full_model, "lora": args.lora_model, "detox": args.detox_model}
    return SlotConfig(base=resolve_source(args.base_model),
                      **{s: resolve_source(v) if v else None for s, v in sources.items()})
