"""The evaluation's command line: ``python -m summarizer.evaluation`` (this module's :func:`main`).

Run ``python -m summarizer.evaluation --help``. Example, with the tiny offline models::

    python -m tests.tiny_models --out tiny-models
    python -m summarizer.evaluation --base-model tiny-models/t5 \\
        --toxicity-model tiny-models/toxicity --n 50 --offline

Parse the flags, load the slots and the dialogues, call :func:`summarizer.evaluation.evaluate`
(or score a ``--predictions`` file), print the table and write the files. The model flags, the
dataset flag and ``--offline`` come from :mod:`summarizer.cli`, shared with ``app.py``. Bad flags,
models or a dataset that cannot be loaded print ``error: ...`` and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Sequence

from summarizer.cli import (add_bootstrap_flags, add_dataset_flag, add_generation_flags, add_model_flags,
                            add_offline_flag, new_parser, set_offline_env, settings_from_args, slot_config)
from summarizer.data import default_dataset
from summarizer.evaluation.rouge import LAB_PROTOCOL, MULTI_REFERENCE_RULE, RULES
from summarizer.evaluation.results import EvaluationResult, TOXICITY_PROTOCOL, display_table
from summarizer.inference.slot_config import SLOTS
from summarizer.limits import DEFAULT_MAX_INPUT_TOKENS
from summarizer.tasks import DEFAULT_TASK, TASKS

DESCRIPTION = ("Evaluate summarization models on DialogSum: ROUGE (best and mean over references), BLEU, "
               "toxicity of the summary alone, bootstrap 95% intervals, length, trainable parameters and "
               "speed. Writes results.csv, results.json and predictions.csv.")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The CLI's flags; ``--help`` lists them. Exits with status 2 on a bad value."""
    p = new_parser("summarizer.evaluation", DESCRIPTION)
    m = add_model_flags(p, "models (hub id, local folder, or finished training-run folder)")
    m.add_argument("--run", action="append", default=[], metavar="RUN_DIR",
                   help="finished training-run folder; fills the slot of its method (full, lora, "
                        "ppo -> detox). Repeatable")
    m.add_argument("--models", nargs="+", choices=SLOTS,
                   help="slots to evaluate (default: every filled slot)")
    _add_data_flags(p.add_argument_group("data"))
    _add_generation_flags(p.add_argument_group("generation (one configuration shared by every model)"))
    _add_statistics_flags(p.add_argument_group("statistics"))
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, help="results folder (default: results/<timestamp>)")
    add_offline_flag(o)
    o.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    _add_predictions_flags(p.add_argument_group("summaries produced elsewhere (no summarizer is loaded)"))
    args = p.parse_args(argv)
    if args.n < 0:
        p.error("--n must be 0 (whole split) or positive")
    if args.batch_size < 1:
        p.error("--batch-size must be positive")
    if args.max_input_tokens < 1:
        p.error("--max-input-tokens must be positive")
    return args


def _add_data_flags(data) -> None:
    add_dataset_flag(data)
    data.add_argument("--split", default="test", choices=("train", "validation", "test"),
                      help="split (default: %(default)s: 500 dialogues with three references each)")
    data.add_argument("--n", type=int, default=100,
                      help="evaluate the first N dialogues of the split, in file order (default: "
                           "%(default)s; 0 = the whole split); for --task response the first N with "
                           "at least three turns")
    data.add_argument("--task", default=DEFAULT_TASK, choices=TASKS,
                      help="summary: the dialogue and its human summaries; response: the dialogue "
                           "cut after turn k (k >= 2, fixed per dialogue id) and turn k+1 as the "
                           "reference, scored by the same ROUGE, BLEU and reward (summarizer.tasks; "
                           "default: %(default)s)")


def _add_generation_flags(g) -> None:
    g.add_argument("--prompt", default="zero-shot", choices=("zero-shot", "raw"),
                   help="prompt template from summarizer.prompts (default: %(default)s)")
    add_generation_flags(g)
    g.add_argument("--batch-size", type=int, default=8, help="prompts per batch per model (default: %(default)s)")
    g.add_argument("--max-input-tokens", type=int, default=DEFAULT_MAX_INPUT_TOKENS,
                   help="fit prompts to this many tokens, cutting the dialogue's end; both engines read "
                        "that many; refused above the base model's own limit (default: %(default)s)")
    g.add_argument("--per-model-timing", action="store_true",
                   help="generate each model in its own pass, so each gets its own time per summary "
                        "(default: base and adapters share one mixed-batch pass)")


def _add_statistics_flags(s) -> None:
    s.add_argument("--rule", default="best", choices=RULES,
                   help="multi-reference rule for intervals, differences and per-dialogue ROUGE-1 "
                        "(default: %(default)s; the table always reports both)")
    add_bootstrap_flags(s)
    s.add_argument("--bootstrap-seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")


def _add_predictions_flags(f) -> None:
    f.add_argument("--predictions", type=Path, metavar="FILE.csv",
                   help="score the summaries in this CSV instead of generating: an 'id' (or "
                        "'dialogue') column matched against --split, and one column per model; "
                        "same table, intervals and files")
    f.add_argument("--no-toxicity", action="store_true",
                   help="do not load the toxicity classifier; its columns are left empty")
    f.add_argument("--tokenizer", help="with --predictions: tokenizer (hub id or folder) that counts "
                                       "summary tokens for gen_tokens_mean (default: not counted)")


def slot_config_from_args(args: argparse.Namespace):
    """The :class:`SlotConfig` named by the model flags and ``--run`` folders.

    Raises:
        summarizer.inference.slots.SlotError: a ``--run`` folder has no known method, or a source is missing.
    """
    from summarizer.inference.slot_config import SlotError
    from summarizer.runs import read_status, run_slot

    sources = {"full": args.full_model, "lora": args.lora_model, "detox": args.detox_model}
    for run in args.run:
        status = read_status(Path(run))
        slot = run_slot(status) if status else None
        if slot is None:
            raise SlotError(f"{run} is not a training-run folder with a known method in status.json.")
        sources[slot] = run
    return slot_config(args, sources)


def _scorer(args: argparse.Namespace):
    """The toxicity scorer of ``--toxicity-model``, or None with ``--no-toxicity``.

    Raises:
        ValueError: offline and the classifier is not in the Hugging Face cache (said before any
            summary is generated, with the command that fixes it).
    """
    from summarizer.inference.model_sources import offline_problem
    from summarizer.toxicity import ToxicityScorer

    if args.no_toxicity:
        return None
    problem = offline_problem(args.toxicity_model, "toxicity model", "--toxicity-model")
    if problem:
        raise ValueError(problem)
    return ToxicityScorer(args.toxicity_model, device=args.device)


def _out_dir(args: argparse.Namespace) -> Path:
    return args.out or Path("results") / datetime.now().strftime("%Y%m%d-%H%M%S")


def _main_predictions(args: argparse.Namespace) -> int:
    """``--predictions FILE.csv``: score summaries produced elsewhere; print and write as usual."""
    from summarizer.evaluation.evaluate import score_predictions_file
    from summarizer.evaluation.predictions_file import PredictionsFileError

    tokenizer = None
    if args.tokenizer:  # before the classifier loads: a bad path fails fast
        from transformers import AutoTokenizer
        try:
            tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
        except (OSError, ValueError) as err:  # missing folder, unknown hub id, or not a tokenizer
            print(f"error: --tokenizer {args.tokenizer}: cannot load a tokenizer ({err}). Give a local "
                  "model folder or a hub id, or leave --tokenizer out to skip token counts.", file=sys.stderr)
            return 2
    dataset = args.dataset or default_dataset()
    try:
        scorer = _scorer(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        result = score_predictions_file(args.predictions, dataset, args.split, scorer, tokenizer,
                                        task=args.task, rule=args.rule, n_resamples=args.bootstrap,
                                        confidence=args.confidence, bootstrap_seed=args.bootstrap_seed)
    except (PredictionsFileError, OSError) as err:
        print(f"error: --predictions {args.predictions}: {err}", file=sys.stderr)
        return 2
    paths = result.write(_out_dir(args))
    print(f"{result.meta['n_dialogues']} dialogues of {dataset} ({args.split}) from {args.predictions}; "
          f"models: {', '.join(result.models)}")
    _print_report(result, args.rule, paths)
    return 0


def _print_report(result: EvaluationResult, rule: str, paths: dict) -> None:
    print(display_table(result).T.to_string(header=False))
    print(f"\n{MULTI_REFERENCE_RULE} Intervals and differences use '{rule}'.")
    print(LAB_PROTOCOL)
    print(TOXICITY_PROTOCOL)
    print(result.meta["bootstrap"]["method"])
    for name, path in paths.items():
        print(f"{name}: {path}")


def load_rows(dataset: str, split: str, n: int, task: str = DEFAULT_TASK) -> list[dict]:
    """The first ``n`` examples (0: all) of ``task`` from ``split`` (:func:`summarizer.tasks.load_examples`).

    Raises:
        ValueError: the dataset cannot be loaded, with its name and what to do (the loader's
            ConnectionError, OSError or ValueError, reworded).
    """
    from summarizer.tasks import load_examples

    try:
        return list(load_examples(dataset, split, task, limit=n or None))
    except (ConnectionError, OSError, ValueError) as err:
        raise ValueError(f"--dataset {dataset}: cannot load its {split} split ({err}). Give a local "
                         "DialogSum folder with --dataset or $DIALOGSUM_DIR, or a reachable hub id.") from err


def _progress(quiet: bool):
    def progress(frac: float, message: str) -> None:
        if not quiet:
            print(f"\r[{frac:6.1%}] {message}", end="", file=sys.stderr, flush=True)
    return progress


def _evaluate(args: argparse.Namespace, dataset: str) -> EvaluationResult:
    """Load the slots, rows and scorer named by ``args`` and run the evaluation.

    Raises:
        ValueError, summarizer.inference.slots.SlotError: bad settings, models or dataset.
    """
    from summarizer.evaluation.evaluate import evaluate
    from summarizer.inference.slots import ModelSlots

    settings = settings_from_args(args)
    slots = ModelSlots(slot_config_from_args(args), device=args.device, backend=args.backend,
                       compute_type=args.compute_type)
    slots.set_max_input_tokens(args.max_input_tokens, "--max-input-tokens")  # the model's limit, before any load
    models = args.models or [m for m in SLOTS if slots.is_filled(m)]
    scorer = _scorer(args)
    rows = load_rows(dataset, args.split, args.n, args.task)
    result = evaluate(slots, scorer, rows, settings, models, batch_size=args.batch_size,
                      max_input_tokens=args.max_input_tokens, prompt_mode=args.prompt, rule=args.rule,
                      n_resamples=args.bootstrap, confidence=args.confidence,
                      bootstrap_seed=args.bootstrap_seed, per_model_timing=args.per_model_timing,
                      task=args.task, on_progress=_progress(args.quiet))
    result.meta.update(dataset=str(dataset), split=args.split, backend=slots.backend,
                       compute_type=args.compute_type if slots.backend == "ct2" else None)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 done, 2 bad flags, models or dataset)."""
    args = parse_args(argv)
    if args.offline:
        set_offline_env()
    if args.predictions:
        return _main_predictions(args)
    from summarizer.inference.slot_config import SlotError

    dataset = args.dataset or default_dataset()
    try:
        result = _evaluate(args, dataset)
    except (ValueError, SlotError, OSError) as err:  # OSError: the toxicity classifier cannot be read
        print(f"\nerror: {err}", file=sys.stderr)
        return 2
    paths = result.write(_out_dir(args))
    if not args.quiet:
        print(file=sys.stderr)
    print(f"{result.meta['n_dialogues']} dialogues of {dataset} ({args.split}); generation: "
          f"{result.meta['generation']}; prompt: {args.prompt}; task: {args.task}")
    _print_report(result, args.rule, paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
