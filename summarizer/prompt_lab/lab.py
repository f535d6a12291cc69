"""Prompt Lab: K prompt templates x N dialogues -> ROUGE per template with bootstrap CIs.

Run ``python -m summarizer.prompt_lab --help`` (the command line is :mod:`summarizer.prompt_lab.__main__`).
The templates (presets, checks, filling) are :mod:`summarizer.prompt_lab.templates`.

A template is text with one or more ``{dialogue}`` placeholders (``{{`` and ``}}`` write literal
braces, as in ``str.format``). Each template is filled with each of N dialogues of a split
(picked by a seed), every prompt is summarized by one slot with the **same** batched generation
as the Evaluate tab (:func:`summarizer.evaluation.generate_summaries`: length-sorted batches,
cancel between batches) and scored with the same ROUGE and bootstrap code
(:func:`summarizer.evaluation.rouge_table`, :func:`~summarizer.evaluation.interval_columns`,
:func:`~summarizer.evaluation.difference_columns`).

The table has a row per template: ROUGE-1/2/L/Lsum (under the multi-reference rule, ``best`` by
default) with 95% percentile-bootstrap CIs over dialogues, the mean summary length, the prompt's
token cost, and the paired difference to the first template with its CI (unadjusted: with six
equal templates one of the five intervals excludes 0 in 27% of runs at N = 20) beside the Holm-adjusted
p-value of the exact paired test against the first template (any false "differs from T1" at most
5% of runs).

**Best-template rule** (:func:`best_template`): the template with the highest mean of the ranking
metric (ROUGE-1) is marked best only when, for *every* other template, the exact paired sign-flip
permutation test (:func:`summarizer.evaluation.stats.paired_permutation_p`) of their per-dialogue
scores gives p < 0.05 (1 - confidence). Otherwise no template is marked: the data do not separate
the leader from the runner-up. The bootstrap is not used for the verdict: at small N its intervals
are too narrow (at N = 1 they have zero width), so two equal templates were told apart in 47%,
26% and 16% of runs at N = 2, 3, 5. The exact test cannot reach p < 0.05 below
:data:`MIN_VERDICT_N` = 6 dialogues (its smallest p is 2 / 2**N), so no verdict is given there and
the table says so. ``tests/test_prompt_lab.py`` measures the false-best rate of two and of six
equal templates by simulation: at most 5% at every N.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from statistics import fmean
from typing import Callable, Sequence

from summarizer.inference.generation import GenerationSettings
from summarizer.limits import DEFAULT_MAX_INPUT_TOKENS
from summarizer.prompt_lab.templates import TemplateError, check_templates, fill, fit
from summarizer.prompts import count_tokens
from summarizer.evaluation.rouge import MULTI_REFERENCE_RULE, ROUGE_KEYS
from summarizer.evaluation.stats import (DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, holm, min_exact_n,
                                         paired_permutation_p)

MAX_DIALOGUES = 200
RANK_METRIC = "rouge1"
MIN_VERDICT_N = min_exact_n(1 - DEFAULT_CONFIDENCE)  # 6: below it the exact test cannot reach p < 0.05

# Column -> meaning, for prompt_lab.csv (one row per template).
TABLE_COLUMNS: dict[str, str] = {
    "template": "template name (T1 = the first template, the baseline of the differences)",
    "best": "True for the top ROUGE-1 template when the exact paired test against every other gives p < 0.05 (see best_rule)",
    "verdict": "best, not separated, no verdict (fewer than MIN_VERDICT_N dialogues) or one template",
    "n_dialogues": "dialogues summarized",
    **{k: f"mean {k} F-measure x100 over dialogues (multi-reference rule: rule)" for k in ROUGE_KEYS},
    **{f"{k}_ci_{e}": f"{'lower' if e == 'low' else 'upper'} end of the bootstrap CI of mean {k}"
       for k in ROUGE_KEYS for e in ("low", "high")},
    "rouge1_diff_vs_first": "mean paired difference of ROUGE-1 (x100) this template minus the first; 0 for the first",
    "rouge1_diff_ci_low": "lower end of the paired bootstrap CI of rouge1_diff_vs_first",
    "rouge1_diff_ci_high": "upper end of the paired bootstrap CI of rouge1_diff_vs_first",
    "rouge1_diff_p": "two-sided p of the exact paired sign-flip permutation test of ROUGE-1 vs the first "
                     "(unadjusted); empty for the first",
    "rouge1_diff_p_holm": "rouge1_diff_p Holm-adjusted over the K-1 comparisons with the first: below 0.05 "
                          "means 'differs from T1' with at most 5% chance of any false claim; empty for the first",
    "summary_words_mean": "mean summary length in whitespace-separated words",
    "summary_tokens_mean": "mean summary length in tokens of the model's tokenizer",
    "template_tokens": "tokens of the template itself with an empty dialogue (instruction and examples, </s> included)",
    "prompt_tokens_mean": "mean tokens of the filled prompt the model read (after fitting to the input limit)",
    "prompts_cut": "prompts whose dialogue end was cut to fit the input limit",
    "rule": "multi-reference rule of the ROUGE columns (best, mean or lab)",
    "text": "the template text",
}
TABLE_COLUMN_ORDER = list(TABLE_COLUMNS)


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
        from summarizer.evaluation.results import _json_safe

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
def verdict(per: Sequence[Sequence[float]], bootstrap: dict) -> tuple[int | None, str]:
    """(index of the best template or None, why) under the best-template rule (module docstring).

    Args:
        per: K lists of N per-dialogue scores (the same dialogues in the same order).
        bootstrap: ``confidence`` (the test's level is 1 - confidence) and ``seed`` (Monte Carlo
            permutations above 16 dialogues); ``n_resamples`` is the bootstrap's and not used.

    Returns:
        ``(top, "best")`` when the highest mean's exact paired test against every other template
        gives p < 1 - confidence; else ``(None, why)`` with why ``"one template"``, ``"no verdict"``
        (fewer dialogues than the test needs to reach that level) or ``"not separated"``.
    """
    if len(per) < 2:
        return None, "one template"
    alpha = 1 - bootstrap.get("confidence", DEFAULT_CONFIDENCE)
    if len(per[0]) < min_exact_n(alpha):
        return None, "no verdict"
    means = [fmean(p) for p in per]
    top = max(range(len(per)), key=means.__getitem__)
    for j in range(len(per)):
        if j != top and (means[top] <= means[j]
                         or paired_permutation_p(per[top], per[j], seed=bootstrap.get("seed", 0)) >= alpha):
            return None, "not separated"
    return top, "best"


def best_template(per: Sequence[Sequence[float]], bootstrap: dict) -> int | None:
    """Index of the template that beats every other one, or None: :func:`verdict`'s index."""
    return verdict(per, bootstrap)[0]


def vs_first_p(per: Sequence[Sequence[float]], seed: int = 0) -> tuple[list[float], list[float]]:
    """(unadjusted, Holm-adjusted) exact paired-test p-values of each template vs the first;
    NaN for the first itself."""
    raw = [float("nan")] + [paired_permutation_p(p, per[0], seed=seed) for p in per[1:]]
    return raw, [float("nan")] + holm(raw[1:])


# ---- the run ------------------------------------------------------------------------------
def run_lab(slots, model: str, templates: Sequence[str], rows: Sequence[dict],
            settings: GenerationSettings, *, names: Sequence[str] | None = None, batch_size: int = 8, max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS,
            rule: str = "best", n_resamples: int = DEFAULT_RESAMPLES,
            confidence: float = DEFAULT_CONFIDENCE, bootstrap_seed: int = 0,
            on_progress: Callable[[float, str], None] | None = None,
            should_stop: Callable[[], bool] | None = None, take_turns: bool = True) -> LabResult:
    """Summarize every (template, dialogue) with one slot and compare the templates.

    Args:
        slots: a :class:`summarizer.inference.slots.ModelSlots` (or a fake with the same methods).
        model: the slot to generate with: base, full, lora or detox.
        templates: K templates (checked by :func:`check_templates`); the first is the baseline.
        names: K distinct template names for the table (default T1..TK).
        rows: N dialogues with ``id``, ``dialogue``, ``references``.
        settings: decoding settings (as in the Prompting tab).
        batch_size: prompts per generation batch; all K x N prompts are batched together by length.
        max_input_tokens: each prompt is fitted to this many tokens by cutting the dialogue's end.
        rule: multi-reference rule for the ROUGE columns (``best`` or ``mean``).
        n_resamples, confidence, bootstrap_seed: bootstrap settings (:mod:`summarizer.evaluation.stats`).
        on_progress: ``on_progress(fraction, message)``.
        should_stop: checked after every batch; True raises ``EvaluationCancelled``.
        take_turns: one ``slots.generate`` call per batch, so other users' requests get the model
            between batches (:func:`summarizer.evaluation.generate_in_turns`).

    Returns:
        A :class:`LabResult`.

    Raises:
        TemplateError: a template is invalid (named).
        ValueError: no rows, a row without references, bad rule or settings.
        summarizer.inference.slots.SlotError: the slot is empty or fails to load.
        summarizer.evaluation.EvaluationCancelled: cancelled between batches.
    """
    from summarizer.evaluation.evaluate import generate_summaries, rouge_table

    names = list(names or [f"T{i + 1}" for i in range(len(templates))])
    templates, rows = check_templates(templates, names), [dict(r) for r in rows]
    _check_lab_request(slots, model, rows, rule, settings)
    tokenizer = _load(slots, model, on_progress)
    _check_room(tokenizer, names, templates, max_input_tokens)
    fitted = [[fit(t, r["dialogue"], tokenizer, max_input_tokens) for r in rows] for t in templates]
    prompts = [p for per in fitted for p, _, _ in per]  # (K*N,) template-major
    summaries, _ = generate_summaries(slots, [model], prompts, settings, batch_size, on_progress=on_progress,
                                      should_stop=should_stop, take_turns=take_turns)
    n = len(rows)
    per_template = [summaries[model][k * n:(k + 1) * n] for k in range(len(templates))]  # K x (N,)
    if on_progress:
        on_progress(1.0, "Scoring ROUGE")
    rouge = [rouge_table(s, [r["references"] for r in rows])[rule] for s in per_template]  # K x {key: [N]}
    bootstrap = dict(n_resamples=n_resamples, confidence=confidence, seed=bootstrap_seed)
    scores = [r[RANK_METRIC] for r in rouge]
    best, why = verdict(scores, bootstrap)
    tests = dict(zip(("rouge1_diff_p", "rouge1_diff_p_holm"), vs_first_p(scores, bootstrap_seed)))
    table = [_table_row(k, names, templates, rouge, per_template, fitted[k], tokenizer, rule, (best, why), bootstrap,
                        {c: v[k] for c, v in tests.items()})
             for k in range(len(templates))]
    meta = {"created": datetime.now().isoformat(timespec="seconds"), "model": model,
            "source": slots.source(model) if hasattr(slots, "source") else None, "n_dialogues": n,
            "ids": [r["id"] for r in rows], "generation": settings.to_dict(), "batch_size": batch_size,
            "max_input_tokens": max_input_tokens, "rule": rule, "multi_reference_rule": MULTI_REFERENCE_RULE,
            "rank_metric": RANK_METRIC,
            "best_rule": BEST_RULE.format(alpha=1 - confidence, min_n=min_exact_n(1 - confidence)),
            "best": names[best] if best is not None else None, "verdict": why, "min_verdict_n": MIN_VERDICT_N,
            "bootstrap": bootstrap}
    return LabResult(table, output_rows(rows, names, per_template, rouge), meta)


def _check_lab_request(slots, model: str, rows: list[dict], rule: str, settings: GenerationSettings) -> None:
    """Raise ValueError (rows, rule, settings) or SlotError (empty slot) before anything loads."""
    from summarizer.evaluation.evaluate import check_request
    from summarizer.inference.slot_config import EMPTY_SLOT_HELP, SlotError

    check_request(rows, [model], rule)
    settings.validate()
    if not slots.is_filled(model):
        raise SlotError(f"The {model} slot is empty: {EMPTY_SLOT_HELP.get(model, 'fill it first')}.")


def _load(slots, model: str, on_progress: Callable[[float, str], None] | None):
    """Load the ``model`` slot; returns the tokenizer it reads prompts with."""
    if on_progress:
        on_progress(0.0, "Loading the model")
    slots.load([model])
    return slots.tokenizer_of(model)


def _check_room(tokenizer, names: Sequence[str], templates: Sequence[str], max_input_tokens: int) -> None:
    """Raise :class:`TemplateError` for a template that leaves no room for the dialogue."""
    for name, t in zip(names, templates):
        own = count_tokens(tokenizer, fill(t, ""))
        if own >= max_input_tokens:
            raise TemplateError(f"Template {name} alone has {own} tokens, leaving no room for the dialogue "
                                f"in the model's {max_input_tokens}-token input: shorten it.")


def _table_row(k: int, names: Sequence[str], templates: Sequence[str], rouge: list[dict],
               per_template: list[list[str]], fitted: list[tuple], tokenizer, rule: str,
               best: tuple[int | None, str], bootstrap: dict, tests: dict) -> dict:
    """Template ``k``'s row of the table (keys of :data:`TABLE_COLUMNS`, in their order); ``best`` is
    :func:`verdict`'s answer, ``tests`` this template's ``rouge1_diff_p`` and ``rouge1_diff_p_holm``."""
    from summarizer.evaluation.evaluate import (count_tokens as summary_tokens, difference_columns,
                                                interval_columns)

    row = {"template": names[k], "best": k == best[0], "verdict": best[1], "n_dialogues": len(per_template[k]),
           "rule": rule, "text": templates[k], **tests}
    row.update({key: fmean(rouge[k][key]) for key in ROUGE_KEYS})
    row.update(interval_columns(rouge[k], ROUGE_KEYS, bootstrap))
    row.update(difference_columns(rouge[k], rouge[0], [RANK_METRIC], bootstrap, "vs_first"))
    row.update(summary_words_mean=fmean(len(s.split()) for s in per_template[k]),
               summary_tokens_mean=fmean(summary_tokens(tokenizer, per_template[k])),
               template_tokens=count_tokens(tokenizer, fill(templates[k], "")),
               prompt_tokens_mean=fmean(c for _, c, _ in fitted),
               prompts_cut=sum(cut > 0 for _, _, cut in fitted))
    return {c: row[c] for c in TABLE_COLUMN_ORDER}


BEST_RULE = ("A template is marked best only when its mean ROUGE-1 is the highest and the exact paired "
             "sign-flip permutation test of its per-dialogue ROUGE-1 against that of every other template "
             "gives p < {alpha:.2f}; otherwise none is marked. The test is exact at any N, but cannot reach "
             "p < {alpha:.2f} with fewer than {min_n} dialogues, so no verdict is given below that.")
VERDICT_TEXT = {"best": "★ best", "not separated": "none: not separated",
                "no verdict": "no verdict: N < {min_n}", "one template": "one template"}


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
            "best (exact paired test)": "★ best" if r["best"] else
                VERDICT_TEXT[r["verdict"]].format(min_n=result.meta.get("min_verdict_n", MIN_VERDICT_N)),
            "ΔROUGE-1 vs T1 [95% CI, unadjusted]": ci(r["rouge1_diff_vs_first"], r["rouge1_diff_ci_low"],
                                                      r["rouge1_diff_ci_high"]),
            "p vs T1 (exact, Holm-adjusted)": "" if r["rouge1_diff_p_holm"] != r["rouge1_diff_p_holm"]
                else f"{r['rouge1_diff_p_holm']:.3f}",
            "summary words": round(r["summary_words_mean"], 1),
            "summary tokens": round(r["summary_tokens_mean"], 1),
            "template tokens": r["template_tokens"], "prompt tokens (mean)": round(r["prompt_tokens_mean"], 1),
            "prompts cut": r["prompts_cut"],
            "template": r["text"][:80] + ("…" if len(r["text"]) > 80 else ""),
        })
    return pd.DataFrame(out)
