"""Config parsing: the settings every method shares (:class:`RunConfig`) and the command line.

A method's config dataclass extends :class:`RunConfig`. The job runner hands a child the
complete config as one JSON file (``--config run/config.json``), read with transformers'
``HfArgumentParser.parse_dict``; a human may add flags, which override the file's values.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import ClassVar, Sequence

from summarizer.data import default_dataset
from summarizer.inference.slot_config import DEFAULT_BASE_MODEL
from summarizer.limits import DEFAULT_MAX_INPUT_TOKENS
from summarizer.tasks import DEFAULT_TASK, TASKS

MAX_CONFIG_BYTES = 1_000_000  # a real config.json is about 2 KB


@dataclass
class RunConfig:
    """Settings every method shares. Defaults follow the course labs where they set one.

    Sources: base model ``google/flan-t5-base`` and the zero-shot prompt
    (``summarizer.prompts.ZERO_SHOT_TEMPLATE``) are the labs'; the rest are ours, sized for a CPU.
    ``task`` (``summarizer.tasks``) changes only how examples and prompts are built.
    """

    METHOD: ClassVar[str] = ""

    base_model: str = field(default=DEFAULT_BASE_MODEL, metadata={
        "help": "Seq2seq base model: hub id or local folder (FLAN-T5 or BART)."})
    dataset: str | None = field(default=None, metadata={
        "help": "DialogSum hub id or local folder (default: $DIALOGSUM_DIR, else "
                "knkarthick/dialogsum)."})
    task: str = field(default=DEFAULT_TASK, metadata={
        "help": "What the model learns (summarizer.tasks): 'summary' (the dialogue -> its human "
                "summary, the course prompt) or 'response' (the dialogue cut after turn k >= 2 -> "
                "turn k+1, prompt 'Continue the following conversation with the next turn.').",
        "choices": list(TASKS)})
    train_size: int = field(default=1000, metadata={
        "help": "Number of training dialogues used (the first N of the train split, after the "
                "length filter)."})
    val_size: int = field(default=50, metadata={
        "help": "Number of validation dialogues for the validation loss (0 = no validation)."})
    min_dialogue_chars: int | None = field(default=None, metadata={
        "help": "Keep dialogues longer than this many characters (None = no lower bound)."})
    max_dialogue_chars: int | None = field(default=None, metadata={
        "help": "Keep dialogues of at most this many characters (None = no upper bound)."})
    max_steps: int = field(default=100, metadata={"help": "Number of optimizer steps."})
    batch_size: int = field(default=8, metadata={"help": "Dialogues per step (per process)."})
    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate."})
    max_source_tokens: int = field(default=DEFAULT_MAX_INPUT_TOKENS, metadata={
        "help": "Prompt tokens kept (FLAN-T5's encoder limit is 512, summarizer.limits)."})
    max_target_tokens: int = field(default=128, metadata={"help": "Summary tokens kept."})
    seed: int = field(default=42, metadata={"help": "Random seed (data order, sampling, init)."})
    runs_dir: str | None = field(default=None, metadata={
        "help": "Folder holding run folders (default: $STUDIO_RUNS_DIR, else ./runs)."})
    run_dir: str | None = field(default=None, metadata={
        "help": "This run's folder (default: a new <runs_dir>/<method>-<time> folder). The job "
                "runner sets it."})

    def __post_init__(self):
        from training.runner import settings

        self.dataset = self.dataset or default_dataset()
        errors = settings.type_errors(self)  # first: the range checks compare numbers
        if not errors:
            errors = self.errors() + settings.bound_errors(self)
        if not errors:  # paths last: they read the disk (and, for target modules, a config)
            errors = settings.path_errors(self)
        if errors:
            raise ValueError(f"Invalid {self.METHOD} config: " + "; ".join(errors) + ".")

    def errors(self) -> list[str]:
        """Messages for every out-of-range field (methods extend this list)."""
        checks = [
            (self.task in TASKS, f"task must be one of {', '.join(TASKS)}, got {str(self.task)[:40]!r}"),
            (bool(str(self.base_model).strip()), "base_model is empty: give a hub id or model folder"),
            (self.train_size >= 1, f"train_size must be at least 1, got {self.train_size}"),
            (self.val_size >= 0, f"val_size must be 0 or more, got {self.val_size}"),
            (self.max_steps >= 1, f"max_steps must be at least 1, got {self.max_steps}"),
            (self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}"),
            (0 < self.learning_rate < 1, f"learning_rate must be in (0, 1), got {self.learning_rate}"),
            (1 <= self.max_source_tokens <= 4096, f"max_source_tokens must be 1..4096, got {self.max_source_tokens}"),
            (1 <= self.max_target_tokens <= 1024, f"max_target_tokens must be 1..1024, got {self.max_target_tokens}"),
            (self.min_dialogue_chars is None or self.max_dialogue_chars is None
             or self.min_dialogue_chars < self.max_dialogue_chars,
             "min_dialogue_chars must be below max_dialogue_chars"),
        ]
        return [msg for ok, msg in checks if not ok]

    def to_dict(self) -> dict:
        return asdict(self)


def parser_for(config_cls):
    """An ``HfArgumentParser`` of ``config_cls`` (its first docstring paragraph as description)."""
    from transformers import HfArgumentParser

    return HfArgumentParser(config_cls, description=(config_cls.__doc__ or "").split("\n\n")[0])


def parse_config(config_cls, argv: Sequence[str] | None = None):
    """The config from ``--config file.json`` and/or flags; flags given override the file.

    Raises:
        SystemExit: unreadable file, unknown field, bad flags or an invalid config (with the
            message), before any model loads.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = parser_for(config_cls)
    parser.add_argument("--config", help="JSON file with config fields (flags override it)")
    # Only the flags actually given override the file: argparse fills in a default only for a
    # name the namespace lacks, so a namespace holding a marker for every field tells them apart.
    unset = object()
    parsed = parser.parse_args(argv, namespace=argparse.Namespace(**{f.name: unset for f in fields(config_cls)}))
    given = {k: v for k, v in vars(parsed).items() if v is not unset}
    path = given.pop("config", None)
    values = _read_config_file(parser, path) if path else {}
    try:
        return parser.parse_dict({**values, **given})[0]
    except ValueError as err:  # unknown keys (parse_dict) or the config's own checks
        parser.error(f"{path}: {err}" if path and "not used" in str(err) else str(err))


def _read_config_file(parser, path: str) -> dict:
    """The JSON object in ``path`` (at most :data:`MAX_CONFIG_BYTES`); ``parser.error`` otherwise."""
    try:
        if Path(path).stat().st_size > MAX_CONFIG_BYTES:
            parser.error(f"config file {path} is over {MAX_CONFIG_BYTES:,} bytes")
        values = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError) as err:
        parser.error(f"cannot read config file {path}: {err}")
    if not isinstance(values, dict):
        parser.error(f"config file {path} must hold one JSON object of field: value pairs")
    return values
