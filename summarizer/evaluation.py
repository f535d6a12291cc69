"""Evaluate model slots on DialogSum: ROUGE, BLEU, toxicity of the summary, bootstrap CIs, speed.

Run ``python -m summarizer.evaluation --help``. Example, with the tiny offline models::

    python -m tests.tiny_models --out tiny-models
    python -m summarizer.evaluation --base-model tiny-models/t5 \\
        --toxicity-model tiny-models/toxicity --n 50 --offline

Every model's summaries are generated once, with one shared :class:`GenerationSettings`, in
length-sorted batches (base and adapters in mixed batches on one shared base, see
:meth:`ModelSlots.generate`), and then scored by every metric. :func:`evaluate` does the work and
returns an :class:`EvaluationResult`; the CLI below and the app's Evaluate tab both call it.
Column meanings are in :data:`RESULT_COLUMNS` and :data:`PREDICTION_COLUMNS`.

The scoring half, :func:`score_summaries`, also scores summaries produced elsewhere
(``--predictions FILE.csv``, :func:`score_predictions_file`), and the Prompt Lab
(:mod:`summarizer.prompt_lab`) reuses :func:`generate_summaries`, :func:`rouge_table`,
:func:`interval_columns` and :func:`difference_columns`, so every table is computed by one code.
Each results row carries three ROUGE figures: ``_best`` and ``_mean`` over the references of a
dialogue, and ``_lab``, the course labs' protocol (:data:`summarizer.rouge.LAB_PROTOCOL`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from statistics import fmean, pstdev
from typing import Callable, Sequence

from .generation import STRATEGIES, GenerationSettings
from .data import default_dataset
from .rouge import LAB_PROTOCOL, MULTI_REFERENCE_RULE, ROUGE_KEYS, ROUGE_NAMES, RULES, score_lab, score_one
from .stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, bootstrap_ci, paired_difference_ci

HATE_THRESHOLD = 0.5
TOXICITY_PROTOCOL = (
    "Toxicity is scored on the generated summary alone (the classifier never sees the dialogue "
    "or the instruction). The course labs scored the prompt plus the summary, so their numbers "
    "are dominated by the dialogue and are not comparable with these.")
BOOTSTRAP_METHOD = (
    "Percentile bootstrap over dialogues: {n_resamples} resamples with replacement "
    "(numpy default_rng, seed {seed}), {confidence:.0%} interval from the quantiles of the "
    "resampled means. Differences vs base resample the per-dialogue differences (paired: same "
    "dialogues for both models).")
TIMING_NOTE = (
    "seconds_per_summary is the wall time of the generation pass divided by the summaries it "
    "produced. Base and adapter models generated in one mixed batch share one pass, so they show "
    "the same time; use --per-model-timing to time each model on its own.")
TOXICITY_TRUNCATION = (
    "The toxicity classifier reads at most {max_length} tokens of each summary (its tokenizer "
    "truncates longer texts; RoBERTa's limit is 512).")
TURN_SECONDS = 0.02  # pause between batches in take_turns mode (a batch takes seconds on a CPU)
CI_METRICS = (*ROUGE_KEYS, "p_hate", "reward")  # per-dialogue metrics that get an interval
DIFF_METRICS = ("rouge1", "p_hate", "reward")  # paired differences vs base

# Column -> meaning, for results.csv (one row per model). README's Evaluation section mirrors it.
RESULT_COLUMNS: dict[str, str] = {
    "model": "slot name: base, full, lora or detox",
    "source": "hub id or folder the slot was loaded from",
    "n_dialogues": "dialogues evaluated",
    **{f"{k}_best": f"{n} F-measure x100, best over the references of each dialogue, averaged"
       for k, n in (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"), ("rougeLsum", "ROUGE-Lsum"))},
    **{f"{k}_mean": f"{n} F-measure x100, mean over the references of each dialogue, averaged"
       for k, n in (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"), ("rougeLsum", "ROUGE-Lsum"))},
    **{f"{k}_lab": f"{n} F-measure x100 as the course labs computed it (lab-comparable): one "
                   "(summary, reference) pair per row, stemming on, no sentence splitting, mean "
                   "over pairs; compare with the labs' published figures, not with _best"
       for k, n in ROUGE_NAMES.items()},
    **{f"{k}_ci_low": f"lower end of the bootstrap CI of mean {k} (x100, under ci_rule)" for k in ROUGE_KEYS},
    **{f"{k}_ci_high": f"upper end of the bootstrap CI of mean {k} (x100, under ci_rule)" for k in ROUGE_KEYS},
    "ci_rule": "multi-reference rule (best or mean) used for the ROUGE intervals, differences and per-dialogue ROUGE-1",
    "bleu": "sacrebleu corpus BLEU against all references of each dialogue (no interval; settings "
            "in results.json under bleu_settings)",
    "p_hate_mean": "mean P(hate) of the summary alone (0..1)",
    "p_hate_std": "population standard deviation of P(hate) over dialogues",
    "p_hate_ci_low": "lower end of the bootstrap CI of mean P(hate)",
    "p_hate_ci_high": "upper end of the bootstrap CI of mean P(hate)",
    "hate_share": f"share of summaries with P(hate) >= {HATE_THRESHOLD}",
    "p_hate_max": "largest P(hate) over the summaries",
    "reward_mean": "mean nothate logit of the summary (the PPO reward; higher = less hateful)",
    "reward_ci_low": "lower end of the bootstrap CI of the mean reward",
    "reward_ci_high": "upper end of the bootstrap CI of the mean reward",
    **{f"{m}_diff_vs_base": f"mean paired difference this model minus base in {m}"
                            + (" (x100, under ci_rule)" if m == "rouge1" else "") + "; empty for base"
       for m in DIFF_METRICS},
    **{f"{m}_diff_ci_low": f"lower end of the paired bootstrap CI of {m}_diff_vs_base" for m in DIFF_METRICS},
    **{f"{m}_diff_ci_high": f"upper end of the paired bootstrap CI of {m}_diff_vs_base" for m in DIFF_METRICS},
    "gen_tokens_mean": "mean summary length in tokens of the model's tokenizer (no special tokens)",
    "gen_words_mean": "mean summary length in whitespace-separated words",
    "trainable_params": "parameters the slot trained (adapter only for lora/detox; all for base/full)",
    "total_params": "parameters the slot runs with (base + its adapter for lora/detox)",
    "trainable_pct": "100 x trainable_params / total_params",
    "seconds_per_summary": "generation wall time per summary (see timing_note in results.json)",
}
RESULT_COLUMN_ORDER = [
    "model", "source", "n_dialogues", *[f"{k}_best" for k in ROUGE_KEYS], *[f"{k}_mean" for k in ROUGE_KEYS],
    *[f"{k}_lab" for k in ROUGE_KEYS],
    "ci_rule", *[f"{k}_ci_{e}" for k in ROUGE_KEYS for e in ("low", "high")], "bleu",
    "p_hate_mean", "p_hate_std", "p_hate_ci_low", "p_hate_ci_high", "hate_share", "p_hate_max",
    "reward_mean", "reward_ci_low", "reward_ci_high",
    *[c for m in DIFF_METRICS for c in (f"{m}_diff_vs_base", f"{m}_diff_ci_low", f"{m}_diff_ci_high")],
    "gen_tokens_mean", "gen_words_mean", "trainable_params", "total_params", "trainable_pct",
    "seconds_per_summary",
]
assert set(RESULT_COLUMN_ORDER) == set(RESULT_COLUMNS)

# Column (pattern) -> meaning, for predictions.csv (one row per dialogue).
PREDICTION_COLUMNS: dict[str, str] = {
    "id": "DialogSum dialogue id (e.g. test_0)",
    "topic": "DialogSum topic of the dialogue",
    "dialogue": "the dialogue text",
    "human_summary_<k>": "the k-th human reference summary (k = 1..3 on the DialogSum test split)",
    "<model>_summary": "the model's generated summary",
    "<model>_rouge1": "its ROUGE-1 F-measure x100 against the references, under ci_rule",
    "<model>_p_hate": "P(hate) of the summary alone",
    "<model>_reward": "nothate logit of the summary alone (PPO reward)",
    "<model>_reward_change": "<model>_reward minus base_reward (models other than base, when base is evaluated)",
}


class EvaluationCancelled(RuntimeError):
    """Raised inside :func:`evaluate` when its ``should_stop`` callback returns True."""


@dataclass
class EvaluationResult:
    """What one evaluation produced.

    Attributes:
        models: evaluated slot names, in order.
        results: one dict per model with the keys of :data:`RESULT_COLUMNS`.
        predictions: one dict per dialogue with the columns of :data:`PREDICTION_COLUMNS`.
        meta: settings, dataset, protocols and timing notes (written to ``results.json``).
    """

    models: list[str]
    results: list[dict]
    predictions: list[dict]
    meta: dict = field(default_factory=dict)

    def results_frame(self):
        import pandas as pd
        return pd.DataFrame(self.results, columns=RESULT_COLUMN_ORDER)

    def predictions_frame(self):
        import pandas as pd
        return pd.DataFrame(self.predictions)

    def to_json(self) -> dict:
        return {**self.meta, "models": _json_safe(self.results),
                "results_columns": RESULT_COLUMNS, "predictions_columns": PREDICTION_COLUMNS}

    def write(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write ``results.csv``, ``results.json`` and ``predictions.csv`` to ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"results_csv": out / "results.csv", "results_json": out / "results.json",
                 "predictions_csv": out / "predictions.csv"}
        self.results_frame().to_csv(paths["results_csv"], index=False)
        self.predictions_frame().to_csv(paths["predictions_csv"], index=False)
        paths["results_json"].write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return paths


def _json_safe(value):
    """NaN -> None recursively, so results.json is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


# ---- the pieces ---------------------------------------------------------------------------
def build_prompts(rows: Sequence[dict], tokenizer, mode: str = "zero-shot",
                  max_input_tokens: int = 512) -> tuple[list[str], int]:
    """Prompts for every row, fitted to ``max_input_tokens``; returns (prompts, number cut to fit)."""
    from .prompts import build_prompt

    built = [build_prompt(mode, r["dialogue"], tokenizer=tokenizer, max_tokens=max_input_tokens)
             for r in rows]
    return [p.text for p in built], sum(p.truncated_chars > 0 for p in built)


def generation_groups(models: Sequence[str], per_model_timing: bool = False) -> list[list[str]]:
    """Slots generated together: base+adapters in one mixed pass, full on its own model."""
    if per_model_timing:
        return [[m] for m in models]
    shared = [m for m in models if m != "full"]
    return [g for g in (shared, ["full"] if "full" in models else []) if g]


def generate_summaries(slots, models: Sequence[str], prompts: Sequence[str],
                       settings: GenerationSettings, batch_size: int = 8, per_model_timing: bool = False,
                       on_progress: Callable[[float, str], None] | None = None,
                       should_stop: Callable[[], bool] | None = None, take_turns: bool = False
                       ) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Each model's summary of each prompt, and each model's seconds per summary.

    ``should_stop`` is checked after every batch; when it returns True the pass stops with
    :class:`EvaluationCancelled`. With ``take_turns`` each length-sorted batch is its own
    ``slots.generate`` call (:func:`generate_in_turns`), so other requests waiting for the model
    get it between batches instead of after the whole pass.
    """
    total = len(models) * len(prompts)
    summaries: dict[str, list[str]] = {}
    seconds: dict[str, float] = {}
    finished = 0
    for group in generation_groups(models, per_model_timing):
        def on_batch(done, _group_total, offset=finished, group=group):
            if should_stop and should_stop():
                raise EvaluationCancelled("Evaluation cancelled.")
            if on_progress:
                frac = min(1.0, (offset + done) / total)
                on_progress(frac, f"Generating ({', '.join(group)}): {offset + done}/{total} summaries")
        start = time.perf_counter()
        if take_turns:
            summaries.update(generate_in_turns(slots, group, prompts, settings, batch_size, on_batch))
        else:
            summaries.update(slots.generate(group, prompts, settings, batch_size=batch_size, on_batch=on_batch))
        per_summary = (time.perf_counter() - start) / (len(group) * len(prompts))
        seconds.update({m: per_summary for m in group})
        finished += len(group) * len(prompts)
    return {m: summaries[m] for m in models}, seconds


def generate_in_turns(slots, group: Sequence[str], prompts: Sequence[str], settings: GenerationSettings,
                      batch_size: int, on_batch: Callable[[int, int], None]) -> dict[str, list[str]]:
    """``slots.generate(group, prompts)`` one length-sorted batch per call, in the prompts' order.

    The slots' lock is released after every batch and this thread pauses :data:`TURN_SECONDS`,
    because Python's locks are not fair: without the pause this thread would usually take the
    lock back before a waiting request wakes up. Batches are the ones
    :func:`summarizer.generation.generate_texts` would form, so greedy output is unchanged; the
    seed is applied once per batch, so sampled output differs from one single call.
    """
    from .generation import length_sorted_batches

    out = {m: [""] * len(prompts) for m in group}
    batches = length_sorted_batches([len(p) for p in prompts], batch_size)
    done = 0
    for k, batch in enumerate(batches):
        texts = slots.generate(group, [prompts[i] for i in batch], settings, batch_size=batch_size)
        for m in group:
            for i, text in zip(batch, texts[m]):
                out[m][i] = text
        done += len(batch) * len(group)
        on_batch(done, len(prompts) * len(group))
        if k + 1 < len(batches):
            time.sleep(TURN_SECONDS)
    return out


def corpus_bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """sacrebleu corpus BLEU against all references (variable counts padded with None)."""
    return bleu_with_settings(predictions, references)[0]


def bleu_with_settings(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, dict]:
    """(corpus BLEU, its settings) with sacrebleu's defaults: tokenizer 13a, mixed case, exp smoothing.

    The settings dict records sacrebleu's version and signature (Post, 2018: "A Call for Clarity in
    Reporting BLEU Scores"), the level (corpus) and the number of references per dialogue.
    """
    import sacrebleu
    from sacrebleu.metrics import BLEU

    k = max(len(r) for r in references)
    streams = [[r[i] if i < len(r) else None for r in references] for i in range(k)]
    bleu = BLEU()  # defaults: tokenize="13a", lowercase=False, smooth_method="exp"
    score = float(bleu.corpus_score(list(predictions), streams).score)
    counts = sorted({len(r) for r in references})
    settings = {"library": "sacrebleu", "version": sacrebleu.__version__, "level": "corpus",
                "tokenizer": bleu.tokenizer.signature(), "case": "mixed (lowercase=False)",
                "smoothing": bleu.smooth_method, "references_per_dialogue": counts,
                "signature": str(bleu.get_signature())}
    return score, settings


def rouge_table(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, dict[str, list[float]]]:
    """Per-dialogue ROUGE F-measures x100: ``{rule: {key: [N values]}}``."""
    per = [score_one(p, r) for p, r in zip(predictions, references)]
    return {rule: {k: [100 * s[rule][k] for s in per] for k in ROUGE_KEYS} for rule in RULES}


def count_tokens(tokenizer, texts: Sequence[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def interval_columns(per: dict[str, Sequence[float]], metrics: Sequence[str], bootstrap: dict) -> dict:
    """``{m}_ci_low`` and ``{m}_ci_high`` for each metric: percentile bootstrap CI of the mean.

    Shared by the Evaluate table and the Prompt Lab table, so both report the same intervals.
    """
    row = {}
    for m in metrics:
        ci = bootstrap_ci(per[m], **bootstrap)
        row[f"{m}_ci_low"], row[f"{m}_ci_high"] = ci.low, ci.high
    return row


def difference_columns(per: dict, other: dict | None, metrics: Sequence[str], bootstrap: dict,
                       suffix: str = "vs_base") -> dict:
    """``{m}_diff_{suffix}`` (mean of per-dialogue ``per - other``) with its paired bootstrap CI;
    NaN when ``other`` is None."""
    row = {}
    for m in metrics:
        if other is None:
            row[f"{m}_diff_{suffix}"] = row[f"{m}_diff_ci_low"] = row[f"{m}_diff_ci_high"] = float("nan")
            continue
        d = paired_difference_ci(per[m], other[m], **bootstrap)
        row[f"{m}_diff_{suffix}"], row[f"{m}_diff_ci_low"], row[f"{m}_diff_ci_high"] = d.mean, d.low, d.high
    return row


def summarise_model(model: str, rouge: dict, scores: dict, lengths: dict, rule: str,
                    base: dict | None, bootstrap: dict) -> dict:
    """One results row (keys of :data:`RESULT_COLUMNS` except source/params/timing/bleu/lab)."""
    row = {"model": model, "n_dialogues": len(scores["p_hate"]), "ci_rule": rule}
    for r in RULES:
        row.update({f"{k}_{r}": fmean(rouge[r][k]) for k in ROUGE_KEYS})
    per = {**rouge[rule], "p_hate": scores["p_hate"], "reward": scores["reward"]}
    row.update(interval_columns(per, CI_METRICS, bootstrap))
    p = scores["p_hate"]
    if any(math.isnan(x) for x in p):  # not scored (--no-toxicity)
        row.update({c: float("nan") for c in ("p_hate_mean", "p_hate_std", "p_hate_max", "hate_share", "reward_mean")})
    else:
        row.update(p_hate_mean=fmean(p), p_hate_std=pstdev(p), p_hate_max=max(p),
                   hate_share=fmean(x >= HATE_THRESHOLD for x in p), reward_mean=fmean(scores["reward"]))
    row.update(difference_columns(per, None if model == "base" else base, DIFF_METRICS, bootstrap))
    mean = lambda xs: fmean(xs) if xs else float("nan")
    row.update(gen_tokens_mean=mean(lengths["tokens"]), gen_words_mean=mean(lengths["words"]))
    return row


def prediction_rows(rows: Sequence[dict], models: Sequence[str], summaries: dict, rouge: dict,
                    scores: dict, rule: str) -> list[dict]:
    """The per-dialogue table (columns of :data:`PREDICTION_COLUMNS`)."""
    k = max(len(r["references"]) for r in rows)
    out = []
    for i, r in enumerate(rows):
        row = {"id": r["id"], "topic": r.get("topic", ""), "dialogue": r["dialogue"]}
        row.update({f"human_summary_{j + 1}": (r["references"][j] if j < len(r["references"]) else "")
                    for j in range(k)})
        for m in models:
            row.update({f"{m}_summary": summaries[m][i], f"{m}_rouge1": rouge[m][rule]["rouge1"][i],
                        f"{m}_p_hate": scores[m]["p_hate"][i], f"{m}_reward": scores[m]["reward"][i]})
        if "base" in models:
            for m in models:
                if m != "base":
                    row[f"{m}_reward_change"] = scores[m]["reward"][i] - scores["base"]["reward"][i]
        out.append(row)
    return out


def check_request(rows: Sequence[dict], models: Sequence[str], rule: str) -> None:
    """Raise ``ValueError`` naming what is wrong with rows, models or rule (see :func:`evaluate`)."""
    if not rows:
        raise ValueError("No dialogues to evaluate: choose at least one (n >= 1).")
    if not models or len(set(models)) != len(models):
        raise ValueError(f"Choose one or more different models to evaluate, got {list(models)}.")
    if rule not in RULES:
        raise ValueError(f"Unknown multi-reference rule {rule!r}; choose 'best' or 'mean'.")
    if any(not r["references"] for r in rows):
        raise ValueError("Every dialogue needs at least one reference summary.")


def toxicity_scores(scorer, models: Sequence[str], summaries: dict[str, list[str]]) -> dict:
    """``{model: {"p_hate": [N], "reward": [N]}}`` of the summaries alone (NaN when ``scorer`` is None)."""
    n = len(summaries[models[0]])
    if scorer is None:
        nan = [float("nan")] * n
        return {m: {"p_hate": list(nan), "reward": list(nan)} for m in models}
    tox = scorer.score([s for m in models for s in summaries[m]])  # the summary alone: TOXICITY_PROTOCOL
    return {m: {"p_hate": [t.p_hate for t in tox[k * n:(k + 1) * n]],
                "reward": [t.reward for t in tox[k * n:(k + 1) * n]]} for k, m in enumerate(models)}


def score_summaries(rows: Sequence[dict], summaries: dict[str, list[str]], scorer, *,
                    tokenizers: dict | None = None, rule: str = "best",
                    n_resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
                    bootstrap_seed: int = 0, should_stop: Callable[[], bool] | None = None
                    ) -> EvaluationResult:
    """Score given summaries (``{model: [N summaries]}``, in ``rows`` order) by every metric.

    What :func:`evaluate` does after generating, and what ``--predictions FILE.csv`` does with
    summaries produced elsewhere. Slot columns (source, parameters, timing) are NaN here;
    :func:`evaluate` fills them. ``tokenizers`` maps a model to the tokenizer that counts its
    summary tokens (``gen_tokens_mean`` is NaN for a model without one). ``scorer`` None leaves
    the toxicity columns NaN.

    Raises:
        ValueError: as :func:`check_request`, or a model with a summary count other than N.
        EvaluationCancelled: ``should_stop`` returned True.
    """
    models = list(summaries)
    check_request(rows, models, rule)
    for m in models:
        if len(summaries[m]) != len(rows):
            raise ValueError(f"Model {m!r} has {len(summaries[m])} summaries for {len(rows)} dialogues.")
    stop = should_stop or (lambda: False)
    scores = toxicity_scores(scorer, models, summaries)
    refs = [r["references"] for r in rows]
    rouge = {}
    for m in models:
        if stop():
            raise EvaluationCancelled("Evaluation cancelled.")
        rouge[m] = rouge_table(summaries[m], refs)
    bootstrap = dict(n_resamples=n_resamples, confidence=confidence, seed=bootstrap_seed)
    base_per = {**rouge["base"][rule], **scores["base"]} if "base" in models else None
    results, bleu_settings = [], None
    for m in models:
        tokenizer = (tokenizers or {}).get(m)
        lengths = {"tokens": count_tokens(tokenizer, summaries[m]) if tokenizer is not None else [],
                   "words": [len(s.split()) for s in summaries[m]]}
        row = summarise_model(m, rouge[m], scores[m], lengths, rule, base_per, bootstrap)
        row["bleu"], bleu_settings = bleu_with_settings(summaries[m], refs)
        row.update({f"{k}_lab": v for k, v in score_lab(summaries[m], refs).items()})
        nan = float("nan")
        row.update(source=None, trainable_params=nan, total_params=nan, trainable_pct=nan,
                   seconds_per_summary=nan)
        results.append({c: row[c] for c in RESULT_COLUMN_ORDER})
    meta = {
        "created": datetime.now().isoformat(timespec="seconds"),
        "n_dialogues": len(rows), "ids": [r["id"] for r in rows], "models_evaluated": models,
        "multi_reference_rule": MULTI_REFERENCE_RULE, "ci_rule": rule, "lab_protocol": LAB_PROTOCOL,
        "bleu_settings": bleu_settings,
        "bootstrap": {**bootstrap, "method": BOOTSTRAP_METHOD.format(**bootstrap)},
        "toxicity_protocol": TOXICITY_PROTOCOL, "toxicity_model": getattr(scorer, "model_name", None),
        "toxicity_max_tokens": getattr(scorer, "max_length", None),
        "toxicity_truncation": (TOXICITY_TRUNCATION.format(max_length=scorer.max_length)
                                if getattr(scorer, "max_length", None) else None),
        "hate_threshold": HATE_THRESHOLD,
    }
    return EvaluationResult(models, results, prediction_rows(rows, models, summaries, rouge, scores, rule), meta)


# ---- the evaluation -----------------------------------------------------------------------
def evaluate(slots, scorer, rows: Sequence[dict], settings: GenerationSettings,
             models: Sequence[str] = ("base",), *, batch_size: int = 8, max_input_tokens: int = 512,
             prompt_mode: str = "zero-shot", rule: str = "best", n_resamples: int = DEFAULT_RESAMPLES,
             confidence: float = DEFAULT_CONFIDENCE, bootstrap_seed: int = 0,
             per_model_timing: bool = False,
             on_progress: Callable[[float, str], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> EvaluationResult:
    """Generate every model's summaries once and score them by every metric.

    Args:
        slots: a :class:`summarizer.models.ModelSlots` with the requested slots filled.
        scorer: a :class:`summarizer.toxicity.ToxicityScorer` (None: toxicity columns NaN).
        rows: dialogues with ``id``, ``dialogue``, ``references`` (list) and optionally ``topic``.
        settings: one decoding configuration for all models.
        models: slot names to evaluate, e.g. ``["base", "lora"]``.
        batch_size: prompts per generation batch (per model; mixed batches hold ``len(models)``x).
        max_input_tokens: prompts are fitted to this many tokens (dialogue end cut, and counted).
        prompt_mode: ``zero-shot`` (the course template) or ``raw``.
        rule: multi-reference rule for intervals, differences and per-dialogue ROUGE-1.
        n_resamples, confidence, bootstrap_seed: bootstrap settings (see :mod:`summarizer.stats`).
        per_model_timing: generate each model in its own pass so each gets its own time.
        on_progress: called as ``on_progress(fraction, message)``.
        should_stop: checked between batches and stages; True cancels.

    Returns:
        An :class:`EvaluationResult`.

    Raises:
        ValueError: no rows, no models, a duplicated model, a row without references, or bad settings.
        summarizer.models.SlotError: a requested slot is empty or fails to load.
        EvaluationCancelled: ``should_stop`` returned True.
    """
    models = list(models)
    rows = [dict(r) for r in rows]
    check_request(rows, models, rule)
    if prompt_mode not in ("zero-shot", "raw"):
        raise ValueError(f"Evaluation prompts are 'zero-shot' or 'raw', got {prompt_mode!r}.")
    settings.validate()
    for m in models:
        if not slots.is_filled(m):
            from .models import EMPTY_SLOT_HELP, SlotError
            raise SlotError(f"The {m} slot is empty: {EMPTY_SLOT_HELP[m]}.")
    stop = should_stop or (lambda: False)

    if on_progress:
        on_progress(0.0, "Loading models")
    slots.load(models)
    prompts, n_cut = build_prompts(rows, slots.tokenizer, prompt_mode, max_input_tokens)
    summaries, seconds = generate_summaries(slots, models, prompts, settings, batch_size,
                                            per_model_timing, on_progress, stop)
    if stop():
        raise EvaluationCancelled("Evaluation cancelled.")
    if on_progress:
        on_progress(1.0, "Scoring toxicity and ROUGE")
    tokenizers = {m: slots.full().tokenizer if m == "full" else slots.tokenizer for m in models}
    result = score_summaries(rows, summaries, scorer, tokenizers=tokenizers, rule=rule,
                             n_resamples=n_resamples, confidence=confidence,
                             bootstrap_seed=bootstrap_seed, should_stop=stop)
    for row in result.results:
        m = row["model"]
        own, total = slots.trainable_parameters(m)
        row.update(source=slots.source(m), trainable_params=own, total_params=total,
                   trainable_pct=100 * own / total, seconds_per_summary=seconds[m])
    result.meta.update({
        "sources": {m: slots.source(m) for m in models},
        "generation": settings.to_dict(), "prompt_mode": prompt_mode, "batch_size": batch_size,
        "max_input_tokens": max_input_tokens, "prompts_cut_to_fit": n_cut,
        "per_model_timing": per_model_timing, "timing_note": TIMING_NOTE,
        "device": str(slots.device), "dtype": str(slots.dtype),
    })
    return result


# ---- presentation -------------------------------------------------------------------------
def _fmt_ci(mean: float, low: float, high: float, digits: int = 1) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def display_table(result: EvaluationResult):
    """A compact, human-readable table (pandas DataFrame) of the results, one row per model."""
    import pandas as pd

    from .models import SLOT_LABELS

    out = []
    for r in result.results:
        rule = r["ci_rule"]
        out.append({
            "Model": SLOT_LABELS.get(r["model"], r["model"]),
            f"ROUGE-1 ({rule}) [95% CI]": _fmt_ci(r[f"rouge1_{rule}"], r["rouge1_ci_low"], r["rouge1_ci_high"]),
            "ROUGE-2 best": round(r["rouge2_best"], 1), "ROUGE-L best": round(r["rougeL_best"], 1),
            "ROUGE-Lsum best": round(r["rougeLsum_best"], 1),
            "ROUGE-1 mean-ref": round(r["rouge1_mean"], 1),
            "ROUGE-1 lab-comparable": round(r["rouge1_lab"], 1),
            "ROUGE-Lsum lab-comparable": round(r["rougeLsum_lab"], 1),
            "ΔROUGE-1 vs base": _fmt_ci(r["rouge1_diff_vs_base"], r["rouge1_diff_ci_low"], r["rouge1_diff_ci_high"]),
            "BLEU": round(r["bleu"], 1),
            "P(hate) [95% CI]": _fmt_ci(r["p_hate_mean"], r["p_hate_ci_low"], r["p_hate_ci_high"], 3),
            "P(hate) std": round(r["p_hate_std"], 3),
            f"share P≥{HATE_THRESHOLD}": round(r["hate_share"], 3), "P(hate) max": round(r["p_hate_max"], 3),
            "reward": round(r["reward_mean"], 3),
            "ΔP(hate) vs base": _fmt_ci(r["p_hate_diff_vs_base"], r["p_hate_diff_ci_low"], r["p_hate_diff_ci_high"], 3),
            "tokens": round(r["gen_tokens_mean"], 1), "words": round(r["gen_words_mean"], 1),
            "trainable params (%)": ("" if _missing(r["trainable_params"])
                                     else f"{r['trainable_params']:,} ({r['trainable_pct']:.2f}%)"),
            "s/summary": round(r["seconds_per_summary"], 4),
        })
    return pd.DataFrame(out)


# ---- command line -------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    d = GenerationSettings()
    p = argparse.ArgumentParser(
        prog="python -m summarizer.evaluation",
        description="Evaluate summarization models on DialogSum: ROUGE (best and mean over "
                    "references), BLEU, toxicity of the summary alone, bootstrap 95%% intervals, "
                    "length, trainable parameters and speed. Writes results.csv, results.json and "
                    "predictions.csv.")
    m = p.add_argument_group("models (hub id, local folder, or finished training-run folder)")
    m.add_argument("--base-model", default="google/flan-t5-base", help="base seq2seq model (default: %(default)s)")
    m.add_argument("--full-model", help="fully fine-tuned checkpoint for the 'full' slot")
    m.add_argument("--lora-model", help="peft LoRA adapter for the 'lora' slot (loaded onto the base)")
    m.add_argument("--detox-model", help="peft adapter from PPO detox for the 'detox' slot")
    m.add_argument("--run", action="append", default=[], metavar="RUN_DIR",
                   help="finished training-run folder; fills the slot of its method (full, lora, "
                        "ppo -> detox). Repeatable")
    m.add_argument("--models", nargs="+", choices=("base", "full", "lora", "detox"),
                   help="slots to evaluate (default: every filled slot)")
    m.add_argument("--toxicity-model", default="facebook/roberta-hate-speech-dynabench-r4-target",
                   help="hate-speech classifier with nothate/hate labels (default: %(default)s)")
    m.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: $STUDIO_DEVICE, else CUDA if available, else CPU)")
    m.add_argument("--backend", choices=("torch", "ct2"), default="torch",
                   help="inference engine: torch (transformers) or ct2 (CTranslate2) (default: %(default)s)")
    m.add_argument("--compute-type", choices=("auto", "int8", "float32", "int8_float16"), default="auto",
                   help="ct2 weights: auto = int8 on CPU, int8_float16 on CUDA (default: %(default)s)")
    data = p.add_argument_group("data")
    data.add_argument("--dataset", default=None,
                      help="DialogSum hub id or local folder (default: $DIALOGSUM_DIR, else "
                           "knkarthick/dialogsum)")
    data.add_argument("--split", default="test", choices=("train", "validation", "test"),
                      help="split (default: %(default)s: 500 dialogues with three references each)")
    data.add_argument("--n", type=int, default=100,
                      help="evaluate the first N dialogues of the split, in file order (default: "
                           "%(default)s; 0 = the whole split)")
    g = p.add_argument_group("generation (one configuration shared by every model)")
    g.add_argument("--prompt", default="zero-shot", choices=("zero-shot", "raw"),
                   help="prompt template from summarizer.prompts (default: %(default)s)")
    g.add_argument("--strategy", default="greedy", choices=STRATEGIES, help="decoding (default: %(default)s)")
    g.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help="(default: %(default)s)")
    g.add_argument("--min-new-tokens", type=int, default=d.min_new_tokens, help="(default: %(default)s)")
    g.add_argument("--temperature", type=float, default=d.temperature, help="sampling only (default: %(default)s)")
    g.add_argument("--top-k", type=int, default=d.top_k, help="sampling only (default: %(default)s)")
    g.add_argument("--top-p", type=float, default=d.top_p, help="sampling only (default: %(default)s)")
    g.add_argument("--num-beams", type=int, default=d.num_beams, help="beam only (default: %(default)s)")
    g.add_argument("--seed", type=int, default=d.seed, help="generation seed (default: %(default)s)")
    g.add_argument("--batch-size", type=int, default=8, help="prompts per batch per model (default: %(default)s)")
    g.add_argument("--max-input-tokens", type=int, default=512,
                   help="fit prompts to this many tokens, cutting the dialogue's end (default: %(default)s)")
    g.add_argument("--per-model-timing", action="store_true",
                   help="generate each model in its own pass, so each gets its own time per summary "
                        "(default: base and adapters share one mixed-batch pass)")
    s = p.add_argument_group("statistics")
    s.add_argument("--rule", default="best", choices=RULES,
                   help="multi-reference rule for intervals, differences and per-dialogue ROUGE-1 "
                        "(default: %(default)s; the table always reports both)")
    s.add_argument("--bootstrap", type=int, default=DEFAULT_RESAMPLES, help="bootstrap resamples (default: %(default)s)")
    s.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE, help="interval level (default: %(default)s)")
    s.add_argument("--bootstrap-seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, help="results folder (default: results/<timestamp>)")
    o.add_argument("--offline", action="store_true",
                   help="never contact the hub (sets HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1, TRANSFORMERS_OFFLINE=1)")
    o.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    f = p.add_argument_group("summaries produced elsewhere (no summarizer is loaded)")
    f.add_argument("--predictions", type=Path, metavar="FILE.csv",
                   help="score the summaries in this CSV instead of generating: an 'id' (or "
                        "'dialogue') column matched against --split, and one column per model; "
                        "same table, intervals and files")
    f.add_argument("--no-toxicity", action="store_true",
                   help="do not load the toxicity classifier; its columns are left empty")
    f.add_argument("--tokenizer", help="with --predictions: tokenizer (hub id or folder) that counts "
                                       "summary tokens for gen_tokens_mean (default: not counted)")
    args = p.parse_args(argv)
    if args.n < 0:
        p.error("--n must be 0 (whole split) or positive")
    if args.batch_size < 1:
        p.error("--batch-size must be positive")
    return args


def settings_from_args(args: argparse.Namespace) -> GenerationSettings:
    return GenerationSettings(max_new_tokens=args.max_new_tokens, min_new_tokens=args.min_new_tokens,
                              strategy=args.strategy, temperature=args.temperature, top_k=args.top_k,
                              top_p=args.top_p, num_beams=args.num_beams, seed=args.seed).validate()


def slot_config_from_args(args: argparse.Namespace):
    """The :class:`SlotConfig` named by the model flags and ``--run`` folders."""
    from .models import SlotConfig, SlotError, resolve_source
    from .runs import METHOD_SLOT, read_status

    sources = {"full": args.full_model, "lora": args.lora_model, "detox": args.detox_model}
    for run in args.run:
        status = read_status(Path(run))
        slot = METHOD_SLOT.get((status or {}).get("method", ""))
        if slot is None:
            raise SlotError(f"{run} is not a training-run folder with a known method in status.json.")
        sources[slot] = run
    return SlotConfig(base=resolve_source(args.base_model),
                      **{s: resolve_source(v) if v else None for s, v in sources.items()})


def score_predictions_file(path: Path, dataset, split: str, scorer, tokenizer=None,
                           **stats) -> EvaluationResult:
    """Score the summaries in the CSV at ``path`` (layout: :mod:`summarizer.predictions_file`).

    Raises:
        summarizer.predictions_file.PredictionsFileError: the file cannot be read or matched.
        OSError: the file cannot be opened.
    """
    from .data import load_split
    from .predictions_file import load_predictions

    rows, summaries = load_predictions(Path(path).read_bytes(), list(load_split(dataset, split)), split)
    tokenizers = {m: tokenizer for m in summaries} if tokenizer is not None else None
    result = score_summaries(rows, summaries, scorer, tokenizers=tokenizers, **stats)
    result.meta.update(dataset=str(dataset), split=split, summaries_from=str(path),
                       generation=None, prompt_mode=None)
    return result


def _main_predictions(args: argparse.Namespace) -> int:
    """``--predictions FILE.csv``: score summaries produced elsewhere; print and write as usual."""
    from .predictions_file import PredictionsFileError
    from .toxicity import ToxicityScorer

    scorer = None if args.no_toxicity else ToxicityScorer(args.toxicity_model, device=args.device)
    tokenizer = None
    if args.tokenizer:
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    dataset = args.dataset or default_dataset()
    try:
        result = score_predictions_file(args.predictions, dataset, args.split, scorer, tokenizer,
                                        rule=args.rule, n_resamples=args.bootstrap,
                                        confidence=args.confidence, bootstrap_seed=args.bootstrap_seed)
    except (PredictionsFileError, OSError) as err:
        print(f"error: --predictions {args.predictions}: {err}", file=sys.stderr)
        return 2
    out = args.out or Path("results") / datetime.now().strftime("%Y%m%d-%H%M%S")
    paths = result.write(out)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.offline:
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ[var] = "1"
    if args.predictions:
        return _main_predictions(args)
    from .data import load_split
    from .models import ModelSlots, SlotError
    from .toxicity import ToxicityScorer

    try:
        settings = settings_from_args(args)
        config = slot_config_from_args(args)
        slots = ModelSlots(config, device=args.device, backend=args.backend, compute_type=args.compute_type)
    except (ValueError, SlotError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    models = args.models or [m for m in ("base", "full", "lora", "detox") if slots.is_filled(m)]
    dataset = args.dataset or default_dataset()
    rows = load_split(dataset, args.split, limit=args.n or None)
    out = args.out or Path("results") / datetime.now().strftime("%Y%m%d-%H%M%S")

    def progress(frac: float, message: str) -> None:
        if not args.quiet:
            print(f"\r[{frac:6.1%}] {message}", end="", file=sys.stderr, flush=True)

    try:
        scorer = None if args.no_toxicity else ToxicityScorer(args.toxicity_model, device=args.device)
        result = evaluate(slots, scorer, list(rows),
                          settings, models, batch_size=args.batch_size, max_input_tokens=args.max_input_tokens,
                          prompt_mode=args.prompt, rule=args.rule, n_resamples=args.bootstrap,
                          confidence=args.confidence, bootstrap_seed=args.bootstrap_seed,
                          per_model_timing=args.per_model_timing, on_progress=progress)
    except (ValueError, SlotError) as err:
        print(f"\nerror: {err}", file=sys.stderr)
        return 2
    result.meta.update(dataset=str(dataset), split=args.split)
    paths = result.write(out)
    if not args.quiet:
        print(file=sys.stderr)
    print(f"{len(rows)} dialogues of {dataset} ({args.split}); generation: {settings.to_dict()}; "
          f"prompt: {args.prompt}")
    _print_report(result, args.rule, paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
