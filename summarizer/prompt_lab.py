"""Prompt Lab: K prompt templates x N dialogues -> ROUGE per template with bootstrap CIs.

Run ``python -m summarizer.prompt_lab --help``. Example, with the tiny offline models::

    python -m summarizer.prompt_lab --base-model tiny-models/t5 --preset zero-shot \\
        --preset what-was-going-on --n 20 --offline

A template is text with one or more ``{dialogue}`` placeholders (``{{`` and ``}}`` write literal
braces, as in ``str.format``). Each template is filled with each of N dialogues of a split
(picked by a seed), every prompt is summarized by one slot with the **same** batched generation
as the Evaluate tab (:func:`summarizer.evaluation.generate_summaries`: length-sorted batches,
cancel between batches) and scored with the same ROUGE and bootstrap code
(:func:`summarizer.evaluation.rouge_table`, :func:`~summarizer.evaluation.interval_columns`,
:func:`~summarizer.evaluation.difference_columns`).

The table has a row per template: ROUGE-1/2/L/Lsum (under the multi-reference rule, ``best`` by
default) with 95% percentile-bootstrap CIs over dialogues, the mean summary length, the prompt's
token cost, and the paired difference to the first template with its CI.

**Best-template rule** (:func:`best_template`): the template with the highest mean of the ranking
metric (ROUGE-1) is marked best only when, for *every* other template, the paired bootstrap CI of
(its per-dialogue score minus the other's) lies entirely above 0. Otherwise no template is marked:
the data do not separate the leader from the runner-up.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from statistics import fmean
from typing import Callable, Sequence

from .generation import STRATEGIES, GenerationSettings
from .prompts import SHOT_TEMPLATE, TARGET_TEMPLATE, ZERO_SHOT_TEMPLATE, count_tokens
from .rouge import MULTI_REFERENCE_RULE, ROUGE_KEYS, RULES
from .stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, paired_difference_ci

MAX_TEMPLATES = 6
MAX_TEMPLATE_CHARS = 2_000  # FLAN-T5 reads 512 tokens, about 2,000 characters of English
MAX_DIALOGUES = 200
PLACEHOLDER = "{dialogue}"
RANK_METRIC = "rouge1"
ONE_SHOT_EXAMPLES = (40,)  # train rows the course lab used for its one-shot prompt
FEW_SHOT_EXAMPLES = (40, 120)  # the lab's 40 and 80 overflow the length cap; 120 is short
PRESETS: dict[str, str] = {
    "zero-shot": ZERO_SHOT_TEMPLATE,  # course lab 1 zero-shot; also the training prompt
    "what-was-going-on": TARGET_TEMPLATE,  # course lab 1 "Dialogue: ... What was going on?"
    "raw": PLACEHOLDER,  # the dialogue alone
}
PRESET_LABELS = {
    "zero-shot": "Course zero-shot: “Summarize the following conversation.” (also the training prompt)",
    "what-was-going-on": "Course “Dialogue: … What was going on?” (zero-shot form of lab 1's shots)",
    "raw": "The dialogue alone, no instruction",
    "one-shot": "Course one-shot: train #40 solved, then the dialogue",
    "few-shot": "Course few-shot: train #40 and #120 solved, then the dialogue",
}
_BRACES = re.compile(r"\{\{|\}\}")

# Column -> meaning, for prompt_lab.csv (one row per template).
TABLE_COLUMNS: dict[str, str] = {
    "template": "template name (T1 = the first template, the baseline of the differences)",
    "best": "True for the template whose paired ROUGE-1 CI vs every other template excludes 0 (see best_rule)",
    "n_dialogues": "dialogues summarized",
    **{k: f"mean {k} F-measure x100 over dialogues (multi-reference rule: rule)" for k in ROUGE_KEYS},
    **{f"{k}_ci_{e}": f"{'lower' if e == 'low' else 'upper'} end of the bootstrap CI of mean {k}"
       for k in ROUGE_KEYS for e in ("low", "high")},
    "rouge1_diff_vs_first": "mean paired difference of ROUGE-1 (x100) this template minus the first; 0 for the first",
    "rouge1_diff_ci_low": "lower end of the paired bootstrap CI of rouge1_diff_vs_first",
    "rouge1_diff_ci_high": "upper end of the paired bootstrap CI of rouge1_diff_vs_first",
    "summary_words_mean": "mean summary length in whitespace-separated words",
    "summary_tokens_mean": "mean summary length in tokens of the model's tokenizer",
    "template_tokens": "tokens of the template itself with an empty dialogue (instruction and examples, </s> included)",
    "prompt_tokens_mean": "mean tokens of the filled prompt the model read (after fitting to the input limit)",
    "prompts_cut": "prompts whose dialogue end was cut to fit the input limit",
    "rule": "multi-reference rule of the ROUGE columns (best or mean)",
    "text": "the template text",
}
TABLE_COLUMN_ORDER = list(TABLE_COLUMNS)


class TemplateError(ValueError):
    """A template is invalid; the message names the template (T1..T6) and what to change."""


@dataclass
class LabResult:
    """What one Prompt Lab run produced.

    Attributes:
        table: one dict per template with the keys of :data:`TABLE_COLUMNS`.
        outputs: one dict per dialogue: id, references, then per template its summary and
            ROUGE-1 (``T1_summary``, ``T1_rouge1``...), then the dialogue.
        meta: settings, dialogue ids, rules (written to ``prompt_lab.json``).
    """

    table: list[dict]
    outputs: list[dict]
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return _json_safe({**self.meta, "templates": self.table, "columns": TABLE_COLUMNS})

    def write(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write ``prompt_lab.csv`` (the table), ``prompt_lab_outputs.csv`` and ``prompt_lab.json``."""
        import pandas as pd

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"table_csv": out / "prompt_lab.csv", "outputs_csv": out / "prompt_lab_outputs.csv",
                 "json": out / "prompt_lab.json"}
        pd.DataFrame(self.table, columns=TABLE_COLUMN_ORDER).to_csv(paths["table_csv"], index=False)
        pd.DataFrame(self.outputs).to_csv(paths["outputs_csv"], index=False)
        paths["json"].write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return paths


def _json_safe(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


# ---- templates ----------------------------------------------------------------------------
def escape(text: str) -> str:
    """``text`` with braces doubled, so it stays literal inside a template."""
    return text.replace("{", "{{").replace("}", "}}")


def shots_template(examples: Sequence[tuple[str, str]]) -> str:
    """A one-/few-shot template: the course's solved-dialogue blocks, then the target block."""
    shots = "".join(SHOT_TEMPLATE.format(dialogue=escape(d), summary=escape(s)) for d, s in examples)
    return shots + TARGET_TEMPLATE


def preset(name: str, train_rows=None) -> str:
    """The template of preset ``name`` (:data:`PRESET_LABELS`); shot presets need the train split.

    Raises:
        ValueError: unknown preset, or a shot preset without ``train_rows``.
    """
    if name in PRESETS:
        return PRESETS[name]
    if name in ("one-shot", "few-shot"):
        if train_rows is None:
            raise ValueError(f"The {name} preset needs the DialogSum train split for its examples.")
        idx = ONE_SHOT_EXAMPLES if name == "one-shot" else FEW_SHOT_EXAMPLES
        return shots_template([(train_rows[i]["dialogue"], train_rows[i]["references"][0]) for i in idx])
    raise ValueError(f"Unknown preset {name!r}; presets are {', '.join(PRESET_LABELS)}.")


def check_template(text: str, name: str) -> str:
    """``text`` if it is a valid template, else :class:`TemplateError` naming ``name``.

    Valid: at most :data:`MAX_TEMPLATE_CHARS` characters, at least one ``{dialogue}``, and no
    other brace except the escapes ``{{`` and ``}}``.
    """
    if not isinstance(text, str) or not text.strip():
        raise TemplateError(f"Template {name} is empty: write a prompt with a {PLACEHOLDER} placeholder, or clear the slot.")
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"Template {name} has {len(text):,} characters, over the limit of "
                            f"{MAX_TEMPLATE_CHARS:,}: shorten it (FLAN-T5 reads 512 tokens in all).")
    if PLACEHOLDER not in text:
        raise TemplateError(f"Template {name} has no {PLACEHOLDER} placeholder: add it where the dialogue goes.")
    rest = _BRACES.sub("", text.replace(PLACEHOLDER, ""))
    if "{" in rest or "}" in rest:
        bad = re.search(r"\{[^{}]{0,30}\}?|\}", rest).group(0)
        raise TemplateError(f"Template {name} has a brace other than {PLACEHOLDER}: {bad!r}. Only "
                            f"{PLACEHOLDER} is filled in; write a literal brace as {{{{ or }}}}.")
    return text


def check_templates(templates: Sequence[str], names: Sequence[str] | None = None) -> list[str]:
    """Validate 1..:data:`MAX_TEMPLATES` templates named ``names`` (default T1, T2...).

    Raises:
        TemplateError: none, too many, or an invalid one (named).
    """
    templates = list(templates)
    names = list(names or [f"T{i + 1}" for i in range(len(templates))])
    if not templates:
        raise TemplateError(f"Give at least one template (with a {PLACEHOLDER} placeholder).")
    if len(templates) > MAX_TEMPLATES:
        raise TemplateError(f"{len(templates)} templates given; at most {MAX_TEMPLATES} are compared at once.")
    if len(names) != len(templates) or len(set(names)) != len(names):
        raise TemplateError(f"Template names must be distinct, one per template; got {names}.")
    return [check_template(t, name) for t, name in zip(templates, names)]


def fill(template: str, dialogue: str) -> str:
    """The template with every ``{dialogue}`` replaced (the dialogue's own braces stay as they are)."""
    return template.format(dialogue=dialogue)


def fit(template: str, dialogue: str, tokenizer, max_tokens: int) -> tuple[str, int, int]:
    """(prompt, its token count, characters cut from the dialogue's end) fitting ``max_tokens``.

    As :func:`summarizer.prompts.build_prompt` does for the course templates: the longest
    token-boundary prefix of the dialogue whose filled prompt fits (binary search).
    """
    text = fill(template, dialogue)
    n = count_tokens(tokenizer, text)
    if n <= max_tokens:
        return text, n, 0
    ends = [e for _, e in tokenizer(dialogue, add_special_tokens=False,
                                    return_offsets_mapping=True)["offset_mapping"]]
    prefix = lambda k: dialogue[: ends[k - 1]] if k else ""
    lo, hi = 0, len(ends)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(tokenizer, fill(template, prefix(mid))) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    text = fill(template, prefix(lo))
    return text, count_tokens(tokenizer, text), len(dialogue) - len(prefix(lo))


def pick_dialogues(n_rows: int, n: int, seed: int) -> list[int]:
    """``n`` distinct row numbers of a split of ``n_rows``, chosen by ``random.Random(seed)``, sorted.

    Raises:
        ValueError: ``n`` outside 1..min(:data:`MAX_DIALOGUES`, n_rows), or a negative seed.
    """
    limit = min(MAX_DIALOGUES, n_rows)
    if not 1 <= n <= limit:
        raise ValueError(f"Dialogues (N) must be 1..{limit}, got {n}.")
    if seed < 0:
        raise ValueError(f"The dialogue seed must be 0 or more, got {seed}.")
    return sorted(random.Random(seed).sample(range(n_rows), n))


# ---- statistics ---------------------------------------------------------------------------
def best_template(per: Sequence[Sequence[float]], bootstrap: dict) -> int | None:
    """Index of the template that beats every other one, or None (see the module docstring).

    Args:
        per: K lists of N per-dialogue scores (the same dialogues in the same order).
        bootstrap: ``n_resamples``, ``confidence``, ``seed`` for :func:`paired_difference_ci`.

    Returns:
        The index of the highest mean when its paired CI against every other template has a
        lower end above 0; None otherwise, or when K < 2.
    """
    if len(per) < 2:
        return None
    means = [fmean(p) for p in per]
    top = max(range(len(per)), key=means.__getitem__)
    for j in range(len(per)):
        if j != top and paired_difference_ci(per[top], per[j], **bootstrap).low <= 0:
            return None
    return top


# ---- the run ------------------------------------------------------------------------------
def run_lab(slots, model: str, templates: Sequence[str], rows: Sequence[dict],
            settings: GenerationSettings, *, names: Sequence[str] | None = None, batch_size: int = 8, max_input_tokens: int = 512,
            rule: str = "best", n_resamples: int = DEFAULT_RESAMPLES,
            confidence: float = DEFAULT_CONFIDENCE, bootstrap_seed: int = 0,
            on_progress: Callable[[float, str], None] | None = None,
            should_stop: Callable[[], bool] | None = None, take_turns: bool = True) -> LabResult:
    """Summarize every (template, dialogue) with one slot and compare the templates.

    Args:
        slots: a :class:`summarizer.models.ModelSlots` (or anything with ``generate``,
            ``tokenizer``, ``is_filled``, ``load``; the tests use a fake).
        model: the slot to generate with: base, full, lora or detox.
        templates: K templates (checked by :func:`check_templates`); the first is the baseline.
        names: K distinct template names for the table (default T1..TK).
        rows: N dialogues with ``id``, ``dialogue``, ``references``.
        settings: decoding settings (as in the Prompting tab).
        batch_size: prompts per generation batch; all K x N prompts are batched together by length.
        max_input_tokens: each prompt is fitted to this many tokens by cutting the dialogue's end.
        rule: multi-reference rule for the ROUGE columns (``best`` or ``mean``).
        n_resamples, confidence, bootstrap_seed: bootstrap settings (:mod:`summarizer.stats`).
        on_progress: ``on_progress(fraction, message)``.
        should_stop: checked after every batch; True raises ``EvaluationCancelled``.
        take_turns: one ``slots.generate`` call per batch, so other users' requests get the model
            between batches (:func:`summarizer.evaluation.generate_in_turns`).

    Returns:
        A :class:`LabResult`.

    Raises:
        TemplateError: a template is invalid (named).
        ValueError: no rows, a row without references, bad rule or settings.
        summarizer.models.SlotError: the slot is empty or fails to load.
        summarizer.evaluation.EvaluationCancelled: cancelled between batches.
    """
    from .evaluation import (check_request, count_tokens as summary_tokens, difference_columns,
                             generate_summaries, interval_columns, rouge_table)
    from .models import EMPTY_SLOT_HELP, SlotError

    names = list(names or [f"T{i + 1}" for i in range(len(templates))])
    templates = check_templates(templates, names)
    rows = [dict(r) for r in rows]
    check_request(rows, [model], rule)
    settings.validate()
    if not slots.is_filled(model):
        raise SlotError(f"The {model} slot is empty: {EMPTY_SLOT_HELP.get(model, 'fill it first')}.")
    if on_progress:
        on_progress(0.0, "Loading the model")
    slots.load([model])
    tokenizer = slots.full().tokenizer if model == "full" else slots.tokenizer
    for name, t in zip(names, templates):
        own = count_tokens(tokenizer, fill(t, ""))
        if own >= max_input_tokens:
            raise TemplateError(f"Template {name} alone has {own} tokens, leaving no room for the dialogue "
                                f"in the model's {max_input_tokens}-token input: shorten it.")
    fitted = [[fit(t, r["dialogue"], tokenizer, max_input_tokens) for r in rows] for t in templates]
    prompts = [p for per in fitted for p, _, _ in per]  # (K*N,) template-major
    summaries, _ = generate_summaries(slots, [model], prompts, settings, batch_size, on_progress=on_progress,
                                      should_stop=should_stop, take_turns=take_turns)
    n = len(rows)
    per_template = [summaries[model][k * n:(k + 1) * n] for k in range(len(templates))]
    refs = [r["references"] for r in rows]
    if on_progress:
        on_progress(1.0, "Scoring ROUGE")
    rouge = [rouge_table(s, refs)[rule] for s in per_template]  # K x {key: [N]}
    bootstrap = dict(n_resamples=n_resamples, confidence=confidence, seed=bootstrap_seed)
    best = best_template([r[RANK_METRIC] for r in rouge], bootstrap)
    table = []
    for k, (name, text) in enumerate(zip(names, templates)):
        row = {"template": name, "best": k == best, "n_dialogues": n, "rule": rule, "text": text}
        row.update({key: fmean(rouge[k][key]) for key in ROUGE_KEYS})
        row.update(interval_columns(rouge[k], ROUGE_KEYS, bootstrap))
        row.update(difference_columns(rouge[k], rouge[0], [RANK_METRIC], bootstrap, "vs_first"))
        row.update(summary_words_mean=fmean(len(s.split()) for s in per_template[k]),
                   summary_tokens_mean=fmean(summary_tokens(tokenizer, per_template[k])),
                   template_tokens=count_tokens(tokenizer, fill(text, "")),
                   prompt_tokens_mean=fmean(c for _, c, _ in fitted[k]),
                   prompts_cut=sum(cut > 0 for _, _, cut in fitted[k]))
        table.append({c: row[c] for c in TABLE_COLUMN_ORDER})
    outputs = output_rows(rows, names, per_template, rouge)
    meta = {
        "created": datetime.now().isoformat(timespec="seconds"), "model": model,
        "source": slots.source(model) if hasattr(slots, "source") else None,
        "n_dialogues": n, "ids": [r["id"] for r in rows], "generation": settings.to_dict(),
        "batch_size": batch_size, "max_input_tokens": max_input_tokens, "rule": rule,
        "multi_reference_rule": MULTI_REFERENCE_RULE, "rank_metric": RANK_METRIC,
        "best_rule": BEST_RULE.format(confidence=confidence),
        "best": names[best] if best is not None else None,
        "bootstrap": bootstrap,
    }
    return LabResult(table, outputs, meta)


BEST_RULE = ("A template is marked best only when its mean ROUGE-1 is the highest and the paired "
             "bootstrap {confidence:.0%} CI of its per-dialogue ROUGE-1 minus that of every other "
             "template lies entirely above 0; otherwise none is marked.")


def output_rows(rows: Sequence[dict], names: Sequence[str], summaries: Sequence[Sequence[str]],
                rouge: Sequence[dict]) -> list[dict]:
    """Per-dialogue table: id, references, ``<T>_summary`` and ``<T>_rouge1`` per template, then the
    dialogue (last, as it is long)."""
    k = max(len(r["references"]) for r in rows)
    out = []
    for i, r in enumerate(rows):
        row = {"id": r["id"]}
        row.update({f"reference_{j + 1}": r["references"][j] if j < len(r["references"]) else ""
                    for j in range(k)})
        for t, name in enumerate(names):
            row[f"{name}_summary"] = summaries[t][i]
            row[f"{name}_rouge1"] = rouge[t][RANK_METRIC][i]
        row["dialogue"] = r["dialogue"]
        out.append(row)
    return out


def display_table(result: LabResult):
    """A compact pandas DataFrame of the table: one row per template, CIs as ``mean [low, high]``."""
    import pandas as pd

    def ci(mean, low, high):
        one = lambda x: f"{round(x, 1) + 0.0:.1f}"  # + 0.0 turns -0.0 into 0.0
        return f"{one(mean)} [{one(low)}, {one(high)}]"

    out = []
    for r in result.table:
        out.append({
            "Template": r["template"] + (" ★ best" if r["best"] else ""),
            **{f"{key} [95% CI]": ci(r[key], r[f"{key}_ci_low"], r[f"{key}_ci_high"]) for key in ROUGE_KEYS},
            "ΔROUGE-1 vs T1 [95% CI]": ci(r["rouge1_diff_vs_first"], r["rouge1_diff_ci_low"], r["rouge1_diff_ci_high"]),
            "summary words": round(r["summary_words_mean"], 1),
            "summary tokens": round(r["summary_tokens_mean"], 1),
            "template tokens": r["template_tokens"], "prompt tokens (mean)": round(r["prompt_tokens_mean"], 1),
            "prompts cut": r["prompts_cut"],
            "template": r["text"][:80] + ("…" if len(r["text"]) > 80 else ""),
        })
    return pd.DataFrame(out)


# ---- command line -------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    d = GenerationSettings()
    p = argparse.ArgumentParser(
        prog="python -m summarizer.prompt_lab",
        description="Compare prompt templates on DialogSum: K templates x N dialogues, one model; "
                    "ROUGE-1/2/L/Lsum with bootstrap 95%% CIs, paired difference to the first "
                    "template, summary length and prompt token cost. Writes prompt_lab.csv, "
                    "prompt_lab_outputs.csv and prompt_lab.json.")
    t = p.add_argument_group(f"templates (1..{MAX_TEMPLATES}, in order; T1 is the baseline)")
    t.add_argument("--template", action="append", default=[], metavar="TEXT",
                   help=f"a template with a {PLACEHOLDER} placeholder ({{{{ and }}}} for literal braces; "
                        f"at most {MAX_TEMPLATE_CHARS} characters). Repeatable")
    t.add_argument("--template-file", action="append", default=[], type=Path, metavar="FILE",
                   help="a UTF-8 file holding one template. Repeatable (templates come after --template)")
    t.add_argument("--preset", action="append", default=[], choices=list(PRESET_LABELS),
                   help="a preset template: " + "; ".join(f"{k}: {v}" for k, v in PRESET_LABELS.items())
                        + ". Repeatable (presets come first)")
    m = p.add_argument_group("model")
    m.add_argument("--model", default="base", choices=("base", "full", "lora", "detox"),
                   help="slot to generate with (default: %(default)s)")
    m.add_argument("--base-model", default="google/flan-t5-base", help="base seq2seq model (default: %(default)s)")
    m.add_argument("--full-model", help="fully fine-tuned checkpoint for the 'full' slot")
    m.add_argument("--lora-model", help="peft LoRA adapter for the 'lora' slot")
    m.add_argument("--detox-model", help="peft adapter from PPO detox for the 'detox' slot")
    m.add_argument("--device", help="torch device (default: $STUDIO_DEVICE, else CUDA if available, else CPU)")
    data = p.add_argument_group("data")
    data.add_argument("--dataset", help="DialogSum hub id or folder (default: $DIALOGSUM_DIR, else knkarthick/dialogsum)")
    data.add_argument("--split", default="test", choices=("train", "validation", "test"), help="(default: %(default)s)")
    data.add_argument("--n", type=int, default=20, help=f"dialogues, 1..{MAX_DIALOGUES} (default: %(default)s)")
    data.add_argument("--dialogue-seed", type=int, default=0, help="seed that picks the dialogues (default: %(default)s)")
    g = p.add_argument_group("generation (as in the Prompting tab)")
    g.add_argument("--strategy", default="greedy", choices=STRATEGIES, help="(default: %(default)s)")
    g.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help="(default: %(default)s)")
    g.add_argument("--min-new-tokens", type=int, default=d.min_new_tokens, help="(default: %(default)s)")
    g.add_argument("--temperature", type=float, default=d.temperature, help="sampling only (default: %(default)s)")
    g.add_argument("--top-k", type=int, default=d.top_k, help="sampling only (default: %(default)s)")
    g.add_argument("--top-p", type=float, default=d.top_p, help="sampling only (default: %(default)s)")
    g.add_argument("--num-beams", type=int, default=d.num_beams, help="beam only (default: %(default)s)")
    g.add_argument("--seed", type=int, default=d.seed, help="generation seed (default: %(default)s)")
    g.add_argument("--batch-size", type=int, default=8, help="prompts per batch (default: %(default)s)")
    s = p.add_argument_group("statistics and output")
    s.add_argument("--rule", default="best", choices=RULES, help="multi-reference rule (default: %(default)s)")
    s.add_argument("--bootstrap", type=int, default=DEFAULT_RESAMPLES, help="resamples (default: %(default)s)")
    s.add_argument("--out", type=Path, help="output folder (default: results/prompt-lab-<timestamp>)")
    s.add_argument("--offline", action="store_true", help="never contact the hub (HF_HUB_OFFLINE=1 and friends)")
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error("--batch-size must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.offline:
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ[var] = "1"
    from .data import default_dataset, load_split
    from .models import ModelSlots, SlotConfig, SlotError, resolve_source

    dataset = args.dataset or default_dataset()
    try:
        train = load_split(dataset, "train") if {"one-shot", "few-shot"} & set(args.preset) else None
        templates = [preset(name, train) for name in args.preset] + list(args.template)
        templates += [f.read_text(encoding="utf-8") for f in args.template_file]
        templates = check_templates(templates)
        settings = GenerationSettings(max_new_tokens=args.max_new_tokens, min_new_tokens=args.min_new_tokens,
                                      strategy=args.strategy, temperature=args.temperature, top_k=args.top_k,
                                      top_p=args.top_p, num_beams=args.num_beams, seed=args.seed).validate()
        split = load_split(dataset, args.split)
        rows = [split[i] for i in pick_dialogues(len(split), args.n, args.dialogue_seed)]
        config = SlotConfig(base=resolve_source(args.base_model),
                            **{s: resolve_source(v) if v else None for s, v in
                               (("full", args.full_model), ("lora", args.lora_model), ("detox", args.detox_model))})
        result = run_lab(ModelSlots(config, device=args.device), args.model, templates, rows, settings,
                         batch_size=args.batch_size, rule=args.rule, n_resamples=args.bootstrap,
                         on_progress=lambda f, msg: print(f"\r[{f:6.1%}] {msg}", end="", file=sys.stderr))
    except (ValueError, OSError) as err:  # TemplateError and SlotError are ValueErrors
        print(f"\nerror: {err}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    result.meta.update(dataset=str(dataset), split=args.split, dialogue_seed=args.dialogue_seed)
    out = args.out or Path("results") / f"prompt-lab-{datetime.now():%Y%m%d-%H%M%S}"
    paths = result.write(out)
    print(display_table(result).to_string(index=False))
    print(f"\n{result.meta['best_rule']} Best: {result.meta['best'] or 'none'}.")
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
