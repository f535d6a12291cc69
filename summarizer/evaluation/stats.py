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
