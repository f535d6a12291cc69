"""Corpus BLEU of generated summaries against every human reference, with its settings.

sacrebleu (Post, 2018: "A Call for Clarity in Reporting BLEU Scores") with its defaults:
tokenizer 13a, mixed case, exponential smoothing. Used by :func:`summarizer.evaluation.score_summaries`.
"""
from __future__ import annotations

from typing import Sequence


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
