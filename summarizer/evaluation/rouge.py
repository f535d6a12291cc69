"""ROUGE-1/2/L/Lsum with Google's ``rouge_score`` package (no download at run time).

Protocol, the same as ``transformers``' ``run_summarization.py`` (which calls ``evaluate``'s rouge
with ``use_stemmer=True`` after putting one sentence per line; evaluate's own default is
``use_stemmer=False`` and it never splits sentences): Porter stemming on, F-measure reported,
scores ×100 in corpus summaries. For ROUGE-Lsum each sentence goes on its own line (rougeLsum
splits summaries on newlines only); sentences are split after ``.``, ``!`` or ``?`` followed by
whitespace, so no tokenizer model (nltk punkt) is needed.

Multiple references: for each prediction and each metric, ``best`` takes the highest F-measure
over its references (the rule of ``rouge_score.scorer.RougeScorer.score_multi``; which rule the
DialogSum paper's figures use has not been checked, so ``best`` is not claimed to be the paper's),
and ``mean`` averages the F-measure over the
references. A corpus score is the mean of the per-prediction scores. ``lab`` is the per-dialogue
form of the lab-comparable figure below: the F-measure of the raw texts (no sentence per line)
averaged over the references; its corpus mean equals :func:`score_lab` whenever every dialogue
has the same number of references (every DialogSum split: 3 per test dialogue, 1 otherwise), and
it gives the lab-comparable figure its bootstrap intervals and paired differences. For ROUGE-1/2/L
``lab`` equals ``mean`` (rouge_score's tokenizer ignores the newlines); for ROUGE-Lsum it differs.

Lab-comparable figure (:func:`score_lab`): what the course labs computed with
``evaluate.load("rouge").compute(predictions, references, use_aggregator=True, use_stemmer=True)``
on the hub CSV, where the test split repeats each dialogue once per reference. Every
(summary, reference) pair is one row, scored with ``RougeScorer(rouge_types, use_stemmer=True)``
on the raw texts (evaluate does not put sentences on lines, so its ROUGE-Lsum sees one "sentence"
per text and equals ROUGE-L unless a text holds newlines), and the figure is the mean F-measure
over the pairs. evaluate's own defaults are ``use_stemmer=False`` and no sentence splitting; the
labs passed ``use_stemmer=True``. With ``use_aggregator=True`` evaluate returns the
``BootstrapAggregator``'s ``mid``, the median of 1,000 unseeded bootstrap means, which differs
from this exact mean only by resampling noise (a few hundredths of a point).
"""
from __future__ import annotations

import re
from functools import lru_cache
from statistics import fmean
from typing import Sequence

from nltk.stem import porter
from rouge_score import rouge_scorer, tokenize, tokenizers

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
ROUGE_NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum"}
RULES = ("best", "mean", "lab")
MULTI_REFERENCE_RULE = ("With several references, 'best' keeps each metric's highest F-measure "
                        "over the references and 'mean' averages it over them; 'lab' is the course "
                        "labs' protocol (each reference scored on its own, raw texts, averaged).")
# The Evaluate tab's explanation of its ROUGE rows (two sentences, for a teacher).
PROTOCOLS_NOTE = ("**Which ROUGE to compare.** *Lab-comparable* is how the course labs computed ROUGE "
                  "(each of a dialogue's human summaries scored on its own, then averaged, no sentence "
                  "splitting): compare these with the labs' figures (e.g. the original model's ROUGE-2 of "
                  "7.60). *Best ref.* keeps each summary's best match among the human summaries, so it reads "
                  "several points higher (about 3.5 for ROUGE-2, 5-6 for ROUGE-1); *mean over refs* averages "
                  "over them and equals lab-comparable for ROUGE-1/2/L.")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
LAB_PROTOCOL = ("'lab' = the course labs' protocol: evaluate's rouge with use_stemmer=True on "
                "the hub CSV, one (summary, reference) pair per row, raw texts (no sentence "
                "splitting, so ROUGE-Lsum is ROUGE-L), mean F-measure over the pairs.")


class MemoTokenizer(tokenizers.Tokenizer):
    """``rouge_score``'s own tokenizer with Porter stemming (``DefaultTokenizer(use_stemmer=True)``:
    the same ``rouge_score.tokenize.tokenize`` and nltk's ``PorterStemmer``), remembering what it
    did: the tokens of the last :data:`TEXTS` texts and the stems of the last :data:`WORDS` words.

    Tokens are exactly rouge_score's (both functions are pure); only the time differs. One
    ``score_one`` tokenizes the summary six times and each reference twice, and stemming is most
    of ROUGE's time: 6.0 ms a summary with three references before, 2.2 ms after (DialogSum test,
    this 2-core machine), serial work on the app's event thread for each answer of a class.
    """

    TEXTS, WORDS = 4096, 1 << 16

    def __init__(self):
        self.stem = lru_cache(maxsize=self.WORDS)(porter.PorterStemmer().stem)  # tokenize() calls .stem(word)
        self._tokens = lru_cache(maxsize=self.TEXTS)(lambda text: tuple(tokenize.tokenize(text, self)))

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text`` (a new list: callers may change it)."""
        return list(self._tokens(text))


@lru_cache(maxsize=1)
def _scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(list(ROUGE_KEYS), tokenizer=MemoTokenizer())


def lab_pairs(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[list[str], list[str]]:
    """The rows of the hub CSV: one (prediction, reference) pair per reference of each dialogue.

    Returns (N_pairs predictions, N_pairs references), dialogue order, references in order.
    """
    pairs = [(p, r) for p, refs in zip(predictions, references)
             for r in ([refs] if isinstance(refs, str) else refs)]
    return [p for p, _ in pairs], [r for _, r in pairs]


def score_lab(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Lab-comparable corpus ROUGE x100 (see the module docstring and :data:`LAB_PROTOCOL`).

    Args:
        predictions: N generated summaries.
        references: N lists of references (a plain string counts as one reference).

    Returns:
        ``{key: mean F-measure x100 over all (prediction, reference) pairs}`` for :data:`ROUGE_KEYS`.

    Raises:
        ValueError: lengths differ, or no pair to score.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists.")
    preds, refs = lab_pairs(predictions, references)
    if not preds:
        raise ValueError("No (summary, reference) pairs to score.")
    per = [_scorer().score(r, p) for p, r in zip(preds, refs)]  # raw texts: no sentence splitting
    return {k: 100 * fmean(s[k].fmeasure for s in per) for k in ROUGE_KEYS}


def sentences_per_line(text: str) -> str:
    """``text`` with one sentence per line, as ROUGE-Lsum expects."""
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


def score_one(prediction: str, references: Sequence[str]) -> dict[str, dict[str, float]]:
    """ROUGE F-measures (0..1) of one prediction against one or more references.

    Returns:
        ``{rule: {key: f}}`` for rules ``best``, ``mean`` and ``lab`` and keys :data:`ROUGE_KEYS`.

    Raises:
        ValueError: no reference given.
    """
    if isinstance(references, str):
        references = [references]
    if not references:
        raise ValueError("ROUGE needs at least one reference summary.")
    pred = sentences_per_line(prediction)
    per_ref = [_scorer().score(sentences_per_line(r), pred) for r in references]
    raw = [_scorer().score(r, prediction) for r in references]  # the labs' way: no sentence split
    return {
        "best": {k: max(s[k].fmeasure for s in per_ref) for k in ROUGE_KEYS},
        "mean": {k: fmean(s[k].fmeasure for s in per_ref) for k in ROUGE_KEYS},
        "lab": {k: fmean(s[k].fmeasure for s in raw) for k in ROUGE_KEYS},
    }


def score_corpus(predictions: Sequence[str], references: Sequence[Sequence[str]],
                 rule: str = "best") -> dict[str, float]:
    """Corpus ROUGE ×100: the mean over predictions of each one's score under ``rule``.

    Args:
        predictions: N generated summaries.
        references: N lists of reference summaries (a plain string counts as one reference).
        rule: ``best``, ``mean`` or ``lab`` (see the module docstring).

    Raises:
        ValueError: lengths differ, no predictions, or unknown rule.
    """
    if rule not in RULES:
        raise ValueError(f"Unknown multi-reference rule {rule!r}; choose 'best', 'mean' or 'lab'.")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists.")
    if not predictions:
        raise ValueError("No predictions to score.")
    rows = [score_one(p, r)[rule] for p, r in zip(predictions, references)]
    return {k: 100 * fmean(row[k] for row in rows) for k in ROUGE_KEYS}
