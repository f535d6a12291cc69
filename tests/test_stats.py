import numpy as np
import pytest

from summarizer.evaluation.stats import bootstrap_ci, paired_difference_ci


def _sample(n, seed=1):
    return np.random.default_rng(seed).normal(30.0, 10.0, size=n)


def test_interval_contains_the_mean():
    x = _sample(50)
    ci = bootstrap_ci(x, seed=3)
    assert ci.mean == pytest.approx(x.mean())
    assert ci.low < ci.mean < ci.high


def test_interval_shrinks_with_more_samples():
    small, large = bootstrap_ci(_sample(20)), bootstrap_ci(_sample(2000))
    assert (large.high - large.low) < (small.high - small.low) / 5  # ~ 1/sqrt(100) = 1/10


def test_interval_is_reproducible_by_seed():
    x = _sample(40)
    assert bootstrap_ci(x, seed=7) == bootstrap_ci(x, seed=7)
    assert bootstrap_ci(x, seed=7) != bootstrap_ci(x, seed=8)


def test_95_interval_matches_normal_theory_roughly():
    x = _sample(400)
    ci = bootstrap_ci(x, n_resamples=2000)
    se = x.std() / np.sqrt(x.size)
    assert (ci.high - ci.low) == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_paired_difference_of_identical_models_is_zero():
    x = _sample(30)
    d = paired_difference_ci(x, x.copy())
    assert (d.mean, d.low, d.high) == (0.0, 0.0, 0.0)


def test_paired_difference_is_tighter_than_separate_intervals():
    base = _sample(60)
    better = base + 2.0 + np.random.default_rng(5).normal(0, 0.5, size=60)  # same dialogues, +2
    d = paired_difference_ci(better, base)
    assert d.low > 0  # a clear improvement is seen as one...
    a, b = bootstrap_ci(better), bootstrap_ci(base)
    assert a.low < b.high  # ...though the separate intervals overlap


def test_errors():
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], confidence=1.5)
    with pytest.raises(ValueError):
        paired_difference_ci([1.0, 2.0], [1.0])


def test_exact_paired_permutation_p_by_hand():
    from summarizer.evaluation.stats import min_exact_n, paired_permutation_p

    # d = (1, 2, 3): of the 8 sign patterns, |mean| >= 2 only for all + and all -: p = 2/8.
    assert paired_permutation_p([1, 2, 3], [0, 0, 0]) == pytest.approx(2 / 8)
    # d = (1, 1, -1): |sum| 1 is reached by every pattern: p = 1.
    assert paired_permutation_p([1, 1, 0], [0, 0, 1]) == 1
    assert paired_permutation_p([0.3] * 5, [0.3] * 5) == 1  # identical templates
    assert [min_exact_n(a) for a in (0.05, 0.01, 0.5)] == [6, 8, 3]
    # Above the exact limit the Monte Carlo p is seeded and close to the exact one.
    rng = np.random.default_rng(3)
    a, b = rng.random(14), rng.random(14)
    exact = paired_permutation_p(a, b)
    mc = paired_permutation_p(a, b, n_resamples=20000, seed=1, exact_up_to=10)
    assert mc == paired_permutation_p(a, b, n_resamples=20000, seed=1, exact_up_to=10)
    assert abs(mc - exact) < 0.02
    with pytest.raises(ValueError, match="equal-length"):
        paired_permutation_p([1, 2], [1])


def test_holm_by_hand():
    from summarizer.evaluation.stats import holm

    # Sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04); order kept.
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert np.isnan(holm([float("nan"), 0.2])[0]) and holm([float("nan"), 0.2])[1] == pytest.approx(0.2)
