"""Percentile bootstrap confidence intervals for a mean and for a paired difference of means.

Method (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13): draw
``n_resamples`` samples of the N per-dialogue values with replacement, take each sample's mean,
and report the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those means.
For a paired difference the *same* resampled dialogue indices are used for both models, i.e. the
per-dialogue differences ``a_i - b_i`` are resampled, which is what makes a comparison of two
models on the same dialogues tighter than comparing two separate intervals.

Resampling uses ``numpy.random.default_rng(seed)``, so the same seed gives the same interval.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Interval:
    """A sample mean with its bootstrap confidence interval ``[low, high]``."""

    mean: float
    low: float
    high: float


def bootstrap_ci(values: Sequence[float], n_resamples: int = DEFAULT_RESAMPLES,
                 confidence: float = DEFAULT_CONFIDENCE, seed: int = DEFAULT_SEED) -> Interval:
    """Percentile bootstrap interval for the mean of ``values``.

    Raises:
        ValueError: no values, ``n_resamples < 1`` or ``confidence`` outside (0, 1).
    """
    x = np.asarray(values, dtype=np.float64)  # (N,)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("A bootstrap interval needs at least one value.")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))  # (R, N)
    means = x[idx].mean(axis=1)  # (R,)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    # The interval always contains the sample mean up to float rounding; clamp that rounding.
    mean = float(x.mean())
    return Interval(mean, min(float(low), mean), max(float(high), mean))


def paired_difference_ci(a: Sequence[float], b: Sequence[float], n_resamples: int = DEFAULT_RESAMPLES,
                         confidence: float = DEFAULT_CONFIDENCE, seed: int = DEFAULT_SEED) -> Interval:
    """Bootstrap interval for ``mean(a) - mean(b)`` where ``a[i]`` and ``b[i]`` are the same dialogue.

    Raises:
        ValueError: ``a`` and ``b`` differ in length, or as :func:`bootstrap_ci`.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"Paired values must have the same length, got {a.size} and {b.size}.")
    return bootstrap_ci(a - b, n_resamples, confidence, seed)


# ---- exact paired test and multiplicity ----------------------------------------------------
PERMUTATION_RESAMPLES = 10_000
EXACT_UP_TO = 16  # 2**16 = 65,536 sign patterns: enumerated; above, Monte Carlo


def paired_permutation_p(a: Sequence[float], b: Sequence[float], n_resamples: int = PERMUTATION_RESAMPLES,
                         seed: int = DEFAULT_SEED, exact_up_to: int = EXACT_UP_TO) -> float:
    """Two-sided p-value of the paired sign-flip permutation test of ``mean(a) == mean(b)``.

    Under the null hypothesis each per-dialogue difference ``d_i = a_i - b_i`` is as likely to be
    ``+d_i`` as ``-d_i`` (the two are exchangeable within a dialogue). The p-value is the share of
    the ``2**N`` sign patterns whose ``|mean(±d)|`` is at least the observed ``|mean(d)|``
    (Fisher 1935; Good, *Permutation, Parametric and Bootstrap Tests of Hypotheses*, 2005, ch. 3).
    Up to ``exact_up_to`` dialogues every pattern is enumerated, so the test is **exact at any N**:
    its false-positive rate never exceeds the level, and the smallest possible p is ``2 / 2**N``
    (1 at N = 1, 0.0625 at N = 5, 0.031 at N = 6). Above, ``n_resamples`` random patterns
    (``numpy.random.default_rng(seed)``) give ``(1 + hits) / (1 + n_resamples)``, a p-value that
    is valid (never below the exact one in expectation) at any ``n_resamples``.

    Raises:
        ValueError: ``a`` and ``b`` differ in length or are empty, or ``n_resamples < 1``.
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)  # (N,)
    if np.shape(a) != np.shape(b) or d.ndim != 1 or d.size == 0:
        raise ValueError(f"Paired values must be two equal-length non-empty lists, got {np.size(a)} and {np.size(b)}.")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}.")
    observed = abs(d.mean())
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))  # equal means must count as "at least as large"
    if d.size <= exact_up_to:
        bits = (np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1  # (2^N, N)
        signs = 1 - 2 * bits
        return float(np.mean(np.abs(signs @ d) / d.size >= observed - tol))
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(n_resamples, d.size))  # (R, N)
    hits = int(np.sum(np.abs(signs @ d) / d.size >= observed - tol))
    return (1 + hits) / (1 + n_resamples)


def min_exact_n(alpha: float) -> int:
    """The fewest dialogues at which :func:`paired_permutation_p` can fall below ``alpha``:
    the smallest N with ``2 / 2**N < alpha`` (6 for alpha = 0.05)."""
    n = 1
    while 2 / 2 ** n >= alpha:
        n += 1
    return n


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979, "A simple sequentially rejective multiple
    test procedure"): rejecting those with adjusted p < alpha keeps the chance of *any* false
    rejection among the family at most alpha. Same order as ``pvalues``; NaN stays NaN."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        out[i] = running
    return out.tolist()
