"""How far CTranslate2's summaries are from PyTorch's on the same prompts: share identical, ROUGE-1.

Used by ``benchmarks/parity_ct2.py`` (real DialogSum dialogues, stated in the README) and by
``tests/test_ct2.py``. ROUGE-1 is each summary's best F-measure over the dialogue's human
references (:func:`summarizer.evaluation.rouge.score_one`), x100; the difference ``ct2 - torch`` gets a
paired percentile bootstrap 95% interval (:func:`summarizer.evaluation.stats.paired_difference_ci`).
"""
from __future__ import annotations

from typing import Sequence

from summarizer.evaluation.rouge import score_one
from summarizer.evaluation.stats import paired_difference_ci


def parity_report(torch_texts: Sequence[str], ct2_texts: Sequence[str],
                  references: Sequence[Sequence[str]], seed: int = 0) -> dict:
    """Compare two backends' summaries of the same N dialogues.

    Args:
        torch_texts, ct2_texts: N summaries each, in the same dialogue order.
        references: N lists of human summaries.

    Returns:
        ``{"n", "identical" (count), "share" (0..1), "rouge1_torch", "rouge1_ct2" (means x100),
        "diff" (ct2 - torch x100), "low", "high" (its 95% interval)}``.

    Raises:
        ValueError: the three lists differ in length or are empty.
    """
    n = len(torch_texts)
    if not n or len(ct2_texts) != n or len(references) != n:
        raise ValueError(f"Parity needs the same non-zero number of summaries and references, got "
                         f"{n}, {len(ct2_texts)} and {len(references)}.")
    r_torch = [100 * score_one(t, refs)["best"]["rouge1"] for t, refs in zip(torch_texts, references)]
    r_ct2 = [100 * score_one(t, refs)["best"]["rouge1"] for t, refs in zip(ct2_texts, references)]
    diff = paired_difference_ci(r_ct2, r_torch, seed=seed)
    identical = sum(a == b for a, b in zip(torch_texts, ct2_texts))
    return {"n": n, "identical": identical, "share": identical / n,
            "rouge1_torch": sum(r_torch) / n, "rouge1_ct2": sum(r_ct2) / n,
            "diff": diff.mean, "low": diff.low, "high": diff.high}
