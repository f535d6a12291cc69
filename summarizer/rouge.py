"""ROUGE-1/2/L/Lsum with Google's ``rouge_score`` package (no download at run time).

Protocol, the same as ``transformers``' ``run_summarization.py`` and ``evaluate``'s rouge metric:
Porter stemming on, F-measure reported, scores ×100 in corpus summaries. For ROUGE-Lsum each
sentence goes on its own line (rougeLsum splits summaries on newlines only); sentences are split
after ``.``, ``!`` or ``?`` followed by whitespace, so no tokenizer model (nltk punkt) is needed.

Multiple references: for each prediction and each metric, ``best`` takes the highest F-measure
over its references (the rule of ``rouge_score.scorer.RougeScorer.score_multi`` and of the
DialogSum paper's multi-reference evaluation), and ``mean`` averages the F-measure over the
references. A corpus score is the mean of the per-prediction scores.
"""
from __future__ import annotations

import re
from functools import lru_cache
from statistics import fmean
from typing import Sequence

from rouge_score import rouge_scorer

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
ROUGE_NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum"}
RULES = ("best", "mean")
MULTI_REFERENCE_RULE = ("With several references, 'best' keeps each metric's highest F-measure "
                        "over the references and 'mean' averages it over them.")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@lru_cache(maxsize=1)
def _scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)


def sentences_per_line(text: str) -> str:
    """``text`` with one sentence per line, as ROUGE-Lsum expects."""
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


def score_one(prediction: str, references: Sequence[str]) -> dict[str, dict[str, float]]:
    """ROUGE F-measures (0..1) of one prediction against one or more references.

    Returns:
        ``{rule: {key: f}}`` for rules ``best`` and ``mean`` and keys :data:`ROUGE_KEYS`.

    Raises:
        ValueError: no reference given.
    """
    if isinstance(references, str):
        references = [references]
    if not references:
        raise ValueError("ROUGE needs at least one reference summary.")
    pred = sentences_per_line(prediction)
    per_ref = [_scorer().score(sentences_per_line(r), pred) for r in references]
    return {
        "best": {k: max(s[k].fmeasure for s in per_ref) for k in ROUGE_KEYS},
        "mean": {k: fmean(s[k].fmeasure for s in per_ref) for k in ROUGE_KEYS},
    }


def score_corpus(predictions: Sequence[str], references: Sequence[Sequence[str]],
                 rule: str = "best") -> dict[str, float]:
    """Corpus ROUGE ×100: the mean over predictions of each one's score under ``rule``.

    Args:
        predictions: N generated summaries.
        references: N lists of reference summaries (a plain string counts as one reference).
        rule: ``best`` or ``mean`` (see the module docstring).

    Raises:
        ValueError: lengths differ, no predictions, or unknown rule.
    """
    if rule not in RULES:
        raise ValueError(f"Unknown multi-reference rule {rule!r}; choose 'best' or 'mean'.")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists.")
    if not predictions:
        raise ValueError("No predictions to score.")
    rows = [score_one(p, r)[rule] for p, r in zip(predictions, references)]
    return {k: 100 * fmean(row[k] for row in rows) for k in ROUGE_KEYS}
