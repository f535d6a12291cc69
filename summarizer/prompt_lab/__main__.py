"""The Prompt Lab's command line: ``python -m summarizer.prompt_lab`` (this module's :func:`main`).

Run ``python -m summarizer.prompt_lab --help``. Example, with the tiny offline models::

    python -m summarizer.prompt_lab --base-model tiny-models/t5 --preset zero-shot \\
        --preset what-was-going-on --n 20 --offline

Parse the flags, read the templates, pick the dialogues, call
:func:`summarizer.prompt_lab.run_lab`, print the table and write the files. The model, dataset,
decoding and offline flags come from :mod:`summarizer.cli`, shared with ``app.py`` and the
evaluation CLI. Bad templates, settings, models or data print ``error: ...`` and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Sequence

from summarizer.cli import (add_bootstrap_flags, add_dataset_flag, add_generation_flags, add_model_flags,
                            add_offline_flag, new_parser, set_offline_env, settings_from_args, slot_config)
from summarizer.prompt_lab.lab import MAX_DIALOGUES, display_table, pick_dialogues, run_lab
from summarizer.prompt_lab.templates import (MAX_TEMPLATES, MAX_TEMPLATE_CHARS, PLACEHOLDER, PRESET_LABELS,
                                             check_templates, preset)
from summarizer.evaluation.rouge import RULES

DESCRIPTION = ("Compare prompt templates on DialogSum: K templates x N dialogues, one model; ROUGE-1/2/L/Lsum "
               "with bootstrap 95% CIs, paired difference to the first template, summary length and prompt "
               "token cost. Writes prompt_lab.csv, prompt_lab_outputs.csv and prompt_lab.json.")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The CLI's flags; ``--help`` lists them. Exits with status 2 on a bad value."""
    p = new_parser("summarizer.prompt_lab", DESCRIPTION)
    t = p.add_argument_group(f"templates (1..{MAX_TEMPLATES}, in order; T1 is the baseline)")
    t.add_argument("--template", action="append", default=[], metavar="TEXT",
                   help=f"a template with a {PLACEHOLDER} placeholder ({{{{ and }}}} for literal braces; "
                        f"at most {MAX_TEMPLATE_CHARS} characters). Repeatable")
    t.add_argument("--template-file", action="append", default=[], type=Path, metavar="FILE",
                   help="a UTF-8 file holding one template. Repeatable (templates come after --template)")
    t.add_argument("--preset", action="append", default=[], choices=list(PRESET_LABELS),
                   help="a preset template: " + "; ".join(f"{k}: {v}" for k, v in PRESET_LABELS.items())
                        + ". Repeatable (presets come first)")
    m = add_model_flags(p, "model", toxicity=False)
    m.add_argument("--model", default="base", choices=("base", "full", "lora", "detox"),
                   help="slot to generate with (default: %(default)s)")
    data = p.add_argument_group("data")
    add_dataset_flag(data)
    data.add_argument("--split", default="test", choices=("train", "validation", "test"), help="(default: %(default)s)")
    data.add_argument("--n", type=int, default=20, help=f"dialogues, 1..{MAX_DIALOGUES} (default: %(default)s)")
    data.add_argument("--dialogue-seed", type=int, default=0, help="seed that picks the dialogues (default: %(default)s)")
    g = p.add_argument_group("generation (as in the Prompting tab)")
    add_generation_flags(g)
    g.add_argument("--batch-size", type=int, default=8, help="prompts per batch (default: %(default)s)")
    s = p.add_argument_group("statistics and output")
    s.add_argument("--rule", default="best", choices=RULES, help="multi-reference rule (default: %(default)s)")
    add_bootstrap_flags(s, confidence=False)  # no --confidence: the lab table labels its intervals 95% CI
    s.add_argument("--out", type=Path, help="output folder (default: results/prompt-lab-<timestamp>)")
    add_offline_flag(s)
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error("--batch-size must be positive")
    return args


def _run(args: argparse.Namespace, dataset: str):
    """Read the templates and dialogues named by ``args`` and run the lab.

    Raises:
        ValueError: bad templates (TemplateError), settings, slots (SlotError) or dataset.
        OSError: a template file or the dataset cannot be read.
    """
    from summarizer.data import load_split
    from summarizer.inference.slots import ModelSlots

    train = load_split(dataset, "train") if {"one-shot", "few-shot"} & set(args.preset) else None
    templates = [preset(name, train) for name in args.preset] + list(args.template)
    templates += [f.read_text(encoding="utf-8") for f in args.template_file]
    templates = check_templates(templates)
    settings = settings_from_args(args)
    split = load_split(dataset, args.split)
    rows = [split[i] for i in pick_dialogues(len(split), args.n, args.dialogue_seed)]
    return run_lab(ModelSlots(slot_config(args), device=args.device, backend=args.backend,
                             compute_type=args.compute_type), args.model, templates, rows, settings,
                   batch_size=args.batch_size, rule=args.rule, n_resamples=args.bootstrap,
                   on_progress=lambda f, msg: print(f"\r[{f:6.1%}] {msg}", end="", file=sys.stderr))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 done, 2 bad flags, templates, models or data)."""
    args = parse_args(argv)
    if args.offline:
        set_offline_env()
    from summarizer.data import default_dataset

    dataset = args.dataset or default_dataset()
    try:
        result = _run(args, dataset)
    except (ValueError, OSError) as err:  # TemplateError and SlotError are ValueErrors
        print(f"\nerror: {err}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    result.meta.update(dataset=str(dataset), split=args.split, dialogue_seed=args.dialogue_seed)
    out = args.out or Path("results") / f"prompt-lab-{datetime.now():%Y%m%d-%H%M%S}"
    paths = result.write(out)
    print(display_table(result).to_string(index=False))
    none = (f"no verdict (N < {result.meta['min_verdict_n']})" if result.meta["verdict"] == "no verdict"
            else "none")
    print(f"\n{result.meta['best_rule']} Best: {result.meta['best'] or none}.")
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
