"""Evaluate model slots on DialogSum: ROUGE, BLEU, toxicity of the summary, bootstrap CIs, speed.

Run ``python -m summarizer.evaluation --help`` (the command line is :mod:`summarizer.evaluation.__main__`).

Every model's summaries are generated once, with one shared :class:`GenerationSettings`, in
length-sorted batches (base and adapters in mixed batches on one shared base, see
:meth:`ModelSlots.generate`), and then scored by every metric. :func:`evaluate` does the work and
returns an :class:`~summarizer.evaluation.results.EvaluationResult`; the CLI and the app's Evaluate tab both
call it. The result schema (``RESULT_COLUMNS``, ``PREDICTION_COLUMNS``), the result type and
``display_table`` live in :mod:`summarizer.evaluation.results`.

The scoring half, :func:`score_summaries`, also scores summaries produced elsewhere
(``--predictions FILE.csv``, :func:`score_predictions_file`), and the Prompt Lab
(:mod:`summarizer.prompt_lab`) reuses :func:`generate_summaries`, :func:`rouge_table`,
:func:`interval_columns` and :func:`difference_columns`, so every table is computed by one code.
Each results row carries three ROUGE figures: ``_best`` and ``_mean`` over the references of a
dialogue, and ``_lab``, the course labs' protocol (:data:`summarizer.evaluation.rouge.LAB_PROTOCOL`).
"""
from __future__ import annotations

import math
import time
from datetime import datetime
from pathlib import Path
from statistics import fmean, pstdev
from typing import Callable, Sequence

from summarizer.evaluation.bleu import bleu_with_settings
from summarizer.inference.generation import GenerationSettings
from summarizer.evaluation.rouge import (LAB_PROTOCOL, MULTI_REFERENCE_RULE, ROUGE_KEYS, RULES, score_lab,
                                         score_one)
from summarizer.evaluation.results import (BOOTSTRAP_METHOD, DIFF_METRICS, EvaluationResult, HATE_THRESHOLD,
                                           RESULT_COLUMN_ORDER, TIMING_NOTE, TOXICITY_PROTOCOL,
                                           TOXICITY_TRUNCATION, prediction_rows)
from summarizer.evaluation.stats import (DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, bootstrap_ci,
                                         paired_difference_ci)
from summarizer.tasks import DEFAULT_TASK, check_task, examples, task_of, template
from summarizer.limits import DEFAULT_MAX_INPUT_TOKENS
from summarizer.tokenizer_lock import tokenizer_lock

TURN_SECONDS = 0.02  # pause between batches in take_turns mode (a batch takes seconds on a CPU)
CI_METRICS = (*ROUGE_KEYS, "p_hate", "reward")  # per-dialogue metrics that get an interval
# The command line's names, loaded on first use (evaluate_cli imports this module).
class EvaluationCancelled(RuntimeError):
    """Raised inside :func:`evaluate` when its ``should_stop`` callback returns True."""


# ---- the pieces ---------------------------------------------------------------------------
def build_prompts(rows: Sequence[dict], tokenizer, mode: str = "zero-shot",
                  max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS, task: str = DEFAULT_TASK) -> tuple[list[str], int]:
    """Prompts for every row, fitted to ``max_input_tokens``; returns (prompts, number cut to fit).

    ``zero-shot`` uses ``task``'s template (:func:`summarizer.tasks.template`); ``rows`` are that
    task's examples (:func:`summarizer.tasks.examples`). Raises ValueError for an unknown task.
    """
    from summarizer.prompts import build_prompt

    zero_shot = template(task)
    built = [build_prompt(mode, r["dialogue"], tokenizer=tokenizer, max_tokens=max_input_tokens,
                          zero_shot_template=zero_shot) for r in rows]
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
    :func:`summarizer.inference.generation.generate_texts` would form, so greedy output is unchanged; the
    seed is applied once per batch, so sampled output differs from one single call.
    """
    from summarizer.inference.generation import length_sorted_batches

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


def rouge_table(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, dict[str, list[float]]]:
    """Per-dialogue ROUGE F-measures x100: ``{rule: {key: [N values]}}``."""
    per = [score_one(p, r) for p, r in zip(predictions, references)]
    return {rule: {k: [100 * s[rule][k] for s in per] for k in ROUGE_KEYS} for rule in RULES}


def count_tokens(tokenizer, texts: Sequence[str]) -> list[int]:
    with tokenizer_lock(tokenizer):
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


def check_request(rows: Sequence[dict], models: Sequence[str], rule: str) -> None:
    """Raise ``ValueError`` naming what is wrong with rows, models or rule (see :func:`evaluate`)."""
    if not rows:
        raise ValueError("No dialogues to evaluate: choose at least one (n >= 1).")
    if not models or len(set(models)) != len(models):
        raise ValueError(f"Choose one or more different models to evaluate, got {list(models)}.")
    if rule not in RULES:
        raise ValueError(f"Unknown multi-reference rule {rule!r}; choose 'best', 'mean' or 'lab'.")
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
    meta = _score_meta(rows, models, rule, bootstrap, bleu_settings, scorer)
    return EvaluationResult(models, results, prediction_rows(rows, models, summaries, rouge, scores, rule), meta)


def _score_meta(rows: Sequence[dict], models: list[str], rule: str, bootstrap: dict,
                bleu_settings: dict | None, scorer) -> dict:
    """The ``results.json`` notes of :func:`score_summaries`: what was scored and how."""
    max_length = getattr(scorer, "max_length", None)
    return {
        "created": datetime.now().isoformat(timespec="seconds"),
        "n_dialogues": len(rows), "ids": [r["id"] for r in rows], "models_evaluated": models,
        "multi_reference_rule": MULTI_REFERENCE_RULE, "ci_rule": rule, "lab_protocol": LAB_PROTOCOL,
        "bleu_settings": bleu_settings,
        "bootstrap": {**bootstrap, "method": BOOTSTRAP_METHOD.format(**bootstrap)},
        "toxicity_protocol": TOXICITY_PROTOCOL, "toxicity_model": getattr(scorer, "model_name", None),
        "toxicity_max_tokens": max_length,
        "toxicity_truncation": TOXICITY_TRUNCATION.format(max_length=max_length) if max_length else None,
        "hate_threshold": HATE_THRESHOLD, "task": task_of(rows[0]),
    }


def score_predictions(data: bytes, split_rows: Sequence[dict], split: str, scorer, tokenizer=None,
                      max_summaries: int | None = None, **stats) -> EvaluationResult:
    """Score the summaries in CSV ``data`` (layout: :mod:`summarizer.evaluation.predictions_file`) against
    ``split_rows``, the dialogues of ``split``, by :func:`score_summaries`.

    ``tokenizer`` counts summary tokens (None: left empty); ``max_summaries`` caps dialogues x
    models (None: no cap); ``stats`` are :func:`score_summaries`' bootstrap and rule keywords.

    Raises:
        summarizer.evaluation.predictions_file.PredictionsFileError: the data cannot be read or matched, or
            holds more than ``max_summaries`` summaries (the message names the column, row, ids or limit).
    """
    from summarizer.evaluation.predictions_file import load_predictions

    rows, summaries = load_predictions(data, list(split_rows), split, max_summaries)
    tokenizers = {m: tokenizer for m in summaries} if tokenizer is not None else None
    result = score_summaries(rows, summaries, scorer, tokenizers=tokenizers, **stats)
    result.meta.update(split=split, generation=None, prompt_mode=None, task_template=None)
    return result


def score_predictions_file(path: Path, dataset, split: str, scorer, tokenizer=None,
                           task: str = DEFAULT_TASK, **stats) -> EvaluationResult:
    """:func:`score_predictions` for the CSV at ``path`` and ``split`` of ``dataset``, against
    ``task``'s examples (:func:`summarizer.tasks.load_examples`; ids are the dialogues' ids).

    Raises:
        ValueError: unknown ``task``.
        summarizer.evaluation.predictions_file.PredictionsFileError: the file cannot be read or matched.
        OSError: the file cannot be opened.
    """
    from summarizer.tasks import load_examples

    rows = load_examples(dataset, split, check_task(task))
    result = score_predictions(Path(path).read_bytes(), rows, split, scorer, tokenizer, **stats)
    result.meta.update(dataset=str(dataset), summaries_from=str(path))
    return result


# ---- the evaluation -----------------------------------------------------------------------
def evaluate(slots, scorer, rows: Sequence[dict], settings: GenerationSettings,
             models: Sequence[str] = ("base",), *, batch_size: int = 8, max_input_tokens: int | None = None,
             prompt_mode: str = "zero-shot", rule: str = "best", n_resamples: int = DEFAULT_RESAMPLES,
             confidence: float = DEFAULT_CONFIDENCE, bootstrap_seed: int = 0,
             per_model_timing: bool = False, task: str = DEFAULT_TASK,
             on_progress: Callable[[float, str], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> EvaluationResult:
    """Generate every model's summaries (or, for ``task="response"``, next turns) once and score
    them by every metric: the same ROUGE, BLEU and toxicity code for every task.

    Args:
        slots: a :class:`summarizer.inference.slots.ModelSlots` with the requested slots filled.
        scorer: a :class:`summarizer.toxicity.ToxicityScorer` (None: toxicity columns NaN).
        rows: dialogues with ``id``, ``dialogue``, ``references`` (list) and optionally ``topic``:
            DialogSum rows (:func:`summarizer.data.load_split`), turned into ``task``'s examples
            here, or examples already built for ``task`` (:func:`summarizer.tasks.examples`).
        settings: one decoding configuration for all models.
        models: slot names to evaluate, e.g. ``["base", "lora"]``.
        batch_size: prompts per generation batch (per model; mixed batches hold ``len(models)``x).
        max_input_tokens: prompts are fitted to this many tokens (dialogue end cut, and counted);
            default (None): the slots' own limit (``slots.max_input_tokens``, where both engines cut
            prompts). A larger value is refused: the engines would cut those prompts unsaid.
        prompt_mode: ``zero-shot`` (the course template) or ``raw``.
        rule: multi-reference rule for intervals, differences and per-dialogue ROUGE-1.
        n_resamples, confidence, bootstrap_seed: bootstrap settings (see :mod:`summarizer.evaluation.stats`).
        per_model_timing: generate each model in its own pass so each gets its own time.
        task: ``summary`` or ``response`` (:mod:`summarizer.tasks`): the examples and the
            zero-shot template; recorded as ``task`` and ``task_template`` in the meta.
        on_progress: called as ``on_progress(fraction, message)``.
        should_stop: checked between batches and stages; True cancels.

    Returns:
        An :class:`EvaluationResult`.

    Raises:
        ValueError: unknown task (naming ``task``), ``max_input_tokens`` above the slots' limit, no rows (also when every dialogue is too short
            for ``response``), no models, a duplicated model, a row without references, or bad settings.
        summarizer.inference.slots.SlotError: a requested slot is empty or fails to load.
        EvaluationCancelled: ``should_stop`` returned True.
    """
    models = list(models)
    rows = [dict(r) for r in examples(rows, check_task(task))]
    check_request(rows, models, rule)
    _check_setup(slots, models, settings, prompt_mode)
    max_input_tokens = _input_limit(slots, max_input_tokens)
    stop = should_stop or (lambda: False)
    if on_progress:
        on_progress(0.0, "Loading models")
    slots.load(models)
    prompts, n_cut = build_prompts(rows, slots.tokenizer, prompt_mode, max_input_tokens, task)
    summaries, seconds = generate_summaries(slots, models, prompts, settings, batch_size,
                                            per_model_timing, on_progress, stop)
    if stop():
        raise EvaluationCancelled("Evaluation cancelled.")
    if on_progress:
        on_progress(1.0, "Scoring toxicity and ROUGE")
    tokenizers = {m: slots.tokenizer_of(m) for m in models}
    result = score_summaries(rows, summaries, scorer, tokenizers=tokenizers, rule=rule,
                             n_resamples=n_resamples, confidence=confidence,
                             bootstrap_seed=bootstrap_seed, should_stop=stop)
    _add_slot_columns(result, slots, seconds)
    result.meta.update({
        "sources": {m: slots.source(m) for m in models},
        "generation": settings.to_dict(), "prompt_mode": prompt_mode, "batch_size": batch_size,
        "task": task, "task_template": template(task) if prompt_mode == "zero-shot" else None,
        "max_input_tokens": max_input_tokens, "prompts_cut_to_fit": n_cut,
        "per_model_timing": per_model_timing, "timing_note": TIMING_NOTE,
        "device": str(slots.device), "dtype": str(slots.dtype),
    })
    return result


def _check_setup(slots, models: Sequence[str], settings: GenerationSettings, prompt_mode: str) -> None:
    """Raise ValueError for a bad prompt mode or settings, :class:`summarizer.inference.slots.SlotError`
    naming the first empty slot and how to fill it."""
    if prompt_mode not in ("zero-shot", "raw"):
        raise ValueError(f"Evaluation prompts are 'zero-shot' or 'raw', got {prompt_mode!r}.")
    settings.validate()
    for m in models:
        if not slots.is_filled(m):
            from summarizer.inference.slot_config import EMPTY_SLOT_HELP, SlotError
            raise SlotError(f"The {m} slot is empty: {EMPTY_SLOT_HELP[m]}.")


def _input_limit(slots, asked: int | None) -> int:
    """The prompts' token limit: ``asked``, or the slots' own (where the engines cut prompts).

    Raises:
        ValueError: ``asked`` above the slots' limit, naming both and how to raise it.
    """
    engines_cut_at = getattr(slots, "max_input_tokens", DEFAULT_MAX_INPUT_TOKENS)  # a stand-in without it: the default
    if asked is None:
        return engines_cut_at
    if asked > engines_cut_at:
        raise ValueError(f"max input tokens {asked} is above the {engines_cut_at} tokens at which the models' "
                         f"engines cut prompts: raise that first (ModelSlots.set_max_input_tokens; the CLI's "
                         f"--max-input-tokens does it), or give at most {engines_cut_at}.")
    return asked


def _add_slot_columns(result: EvaluationResult, slots, seconds: dict[str, float]) -> None:
    """Fill the columns :func:`score_summaries` leaves NaN: source, parameters, seconds/summary."""
    for row in result.results:
        m = row["model"]
        own, total = slots.trainable_parameters(m)
        row.update(source=slots.source(m), trainable_params=own, total_params=total,
                   trainable_pct=100 * own / total, seconds_per_summary=seconds[m])
