"""Class Arena leaderboard statistics: win rates, Bradley–Terry ratings and their intervals.

Pure numpy, no storage: :func:`leaderboard` takes the vote dicts that
:meth:`summarizer.arena.ArenaStore.votes` returns.

* win rate = wins / (wins + losses) over decisive votes, with the 95% **Wilson** score
  interval (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it over the normal interval);
* **Bradley–Terry** ratings fitted by maximum likelihood (logistic regression on the pairwise
  outcomes, by Newton's method) as Chatbot Arena does (Chiang et al. 2024, "Chatbot Arena: An
  Open Platform for Evaluating LLMs by Human Preference"), on the Elo-like scale of FastChat
  (``1000 + 400 log10(strength)``, so a 400-point gap means 10:1 odds); a tie counts as half a win for each side, and "both bad"
  counts as a tie (FastChat's ``tie (bothbad)`` is a tie in its ratings too); 95% intervals
  from a percentile bootstrap over votes.

Models that never met, directly or through others, form separate **groups** (connected
components of the graph of pairs that were voted on): the votes say nothing about how one
group compares with another, so a single scale across them would carry an arbitrary offset.
Each group is therefore centred on 1000 and ranked apart (rows come group by group, each row has
its ``group``), and the returned ``method`` text says so whenever there is more than one group.

Ratings (:func:`rating_table`): per model and criterion the mean of the 1–5 ratings with a 95%
Student t-interval, mean ± t(0.975, n−1)·s/√n (Student 1908), clipped to the 1–5 scale; with
fewer than two ratings there is no interval ("n too small"). The t quantile is computed here
from the exact t distribution function (Abramowitz & Stegun 1964, 26.7.3–26.7.4), so no scipy.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Sequence

import numpy as np

SCALE, BASE_RATING = 400.0, 1000.0  # FastChat's Elo-like scale (fastchat/serve/monitor/elo_analysis.py)
Z95 = 1.959963984540054  # standard normal 97.5% quantile


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (``(nan, nan)`` when ``n == 0``)."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def t_cdf_two_sided(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with ``df`` (whole) degrees of freedom, ``t >= 0``.

    The closed forms of Abramowitz & Stegun (1964), 26.7.3 (odd df) and 26.7.4 (even df), with
    theta = atan(t / sqrt(df)); a finite sum of df/2 terms, exact up to rounding.
    """
    theta = math.atan(t / math.sqrt(df))
    c2, term, total = math.cos(theta) ** 2, 1.0, 0.0
    if df % 2 == 0:  # sin(theta) * (1 + 1/2 c^2 + 1*3/(2*4) c^4 + ... up to c^(df-2))
        for k in range(df // 2):
            total += term
            term *= c2 * (2 * k + 1) / (2 * k + 2)
        return math.sin(theta) * total
    if df == 1:
        return 2 * theta / math.pi
    term = math.cos(theta)  # (2/pi)(theta + sin(theta)(c + 2/3 c^3 + 2*4/(3*5) c^5 + ... up to c^(df-2)))
    for k in range((df - 1) // 2):
        total += term
        term *= c2 * (2 * k + 2) / (2 * k + 3)
    return 2 / math.pi * (theta + math.sin(theta) * total)


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (``0.5 < p < 1``) of Student's t with ``df`` degrees of freedom, by
    bisection on :func:`t_cdf_two_sided` (e.g. ``t_quantile(0.975, 9)`` = 2.262); above 1000 df
    the expansion of Abramowitz & Stegun 26.7.5 (error below 1e-12 there) keeps it quick."""
    if df > 1000:
        x = NormalDist().inv_cdf(p)
        g = ((x ** 3 + x) / 4, (5 * x ** 5 + 16 * x ** 3 + 3 * x) / 96,
             (3 * x ** 7 + 19 * x ** 5 + 17 * x ** 3 - 15 * x) / 384,
             (79 * x ** 9 + 776 * x ** 7 + 1482 * x ** 5 - 1920 * x ** 3 - 945 * x) / 92160)
        return x + sum(gk / df ** (k + 1) for k, gk in enumerate(g))
    target, low, high = 2 * p - 1, 0.0, 1.0
    while t_cdf_two_sided(high, df) < target:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if t_cdf_two_sided(mid, df) < target else (low, mid)
        if high - low < 1e-12:
            break
    return (low + high) / 2


def mean_interval(values: Sequence[float], lo: float = 1.0, hi: float = 5.0,
                  level: float = 0.95) -> tuple[float, float, float]:
    """Mean with its Student t-interval, ``mean ± t((1+level)/2, n−1)·s/√n`` clipped to [lo, hi].

    Returns:
        (mean, low, high); the bounds are ``nan`` when n < 2 (no spread to estimate), all three
        ``nan`` when n = 0. ``s`` is the sample standard deviation (n − 1 in the denominator).
    """
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = t_quantile((1 + level) / 2, len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, max(lo, mean - half), min(hi, mean + half)


def rating_table(ratings: Sequence[dict], criteria: Sequence[str] | None = None) -> dict:
    """Per model (slot, source) and criterion: the mean 1–5 rating with its 95% t-interval.

    Args:
        ratings: dicts with ``model``, ``source`` and one 1..5 score per criterion (as
            :meth:`summarizer.arena.ArenaStore.ratings` returns).
        criteria: the score keys (default :data:`summarizer.arena.store.CRITERIA`).

    Returns:
        ``{"rows": [...], "n_ratings", "criteria", "method"}``; rows sorted by model then source,
        each with ``model``, ``source``, ``ratings`` (n) and per criterion ``<c>``, ``<c>_low``,
        ``<c>_high`` (bounds ``nan`` when n < 2, see :func:`mean_interval`).
    """
    if criteria is None:
        from summarizer.arena.store import CRITERIA as criteria  # the store's names, one source of truth
    keys = sorted({(r["model"], r["source"]) for r in ratings})
    rows = []
    for model, source in keys:
        mine = [r for r in ratings if (r["model"], r["source"]) == (model, source)]
        row = {"model": model, "source": source, "ratings": len(mine)}
        for c in criteria:
            row[c], row[f"{c}_low"], row[f"{c}_high"] = mean_interval([r[c] for r in mine])
        rows.append(row)
    method = ("Ratings 1 (worst) to 5 (best): mean per model and criterion with a 95% Student t-interval "
              "(mean ± t·s/√n, clipped to 1–5; 'n too small' below 2 ratings), each rating counted as "
              "independent.")
    return {"rows": rows, "n_ratings": len(ratings), "criteria": list(criteria), "method": method}


def win_matrix(votes: Sequence[tuple[int, int, str]], n_models: int,
               weights: np.ndarray | None = None) -> np.ndarray:
    """``W[i, j]`` = wins of model i over model j; a tie or "both bad" adds 0.5 to both.

    Args:
        votes: ``(index of A, index of B, vote)`` per vote.
        weights: optional count per vote (bootstrap resampling), default 1 each.

    Returns:
        (M, M) float array.
    """
    w = np.ones(len(votes)) if weights is None else np.asarray(weights, dtype=np.float64)
    a = np.array([v[0] for v in votes], dtype=int)
    b = np.array([v[1] for v in votes], dtype=int)
    kind = np.array([v[2] for v in votes], dtype=object)
    share_a = np.where(kind == "A", 1.0, np.where(kind == "B", 0.0, 0.5))  # (V,)
    W = np.zeros((n_models, n_models))
    np.add.at(W, (a, b), w * share_a)
    np.add.at(W, (b, a), w * (1 - share_a))
    return W


def _strongly_connected(W: np.ndarray) -> bool:
    """True when every model beat (at least half-)someone who leads back to it: the MLE exists."""
    reach = (W > 0) | np.eye(len(W), dtype=bool)
    for k in range(len(W)):  # Warshall's transitive closure
        reach |= reach[:, [k]] & reach[[k], :]
    return bool(reach.all())


def _log_likelihood(W: np.ndarray, b: np.ndarray) -> float:
    """sum_ij W_ij log sigmoid(b_i - b_j): the Bradley–Terry log-likelihood of win matrix ``W``."""
    return float(-(W * np.logaddexp(0.0, -(b[:, None] - b[None, :]))).sum())


def bradley_terry(W: np.ndarray, tol: float = 1e-10, max_iter: int = 200) -> tuple[np.ndarray, bool]:
    """Bradley–Terry log-strengths from a win matrix: maximum likelihood by Newton's method.

    The model: P(i beats j) = sigmoid(b_i - b_j), i.e. logistic regression on pairwise outcomes
    as Chatbot Arena fits it (Chiang et al. 2024). The log-likelihood is concave, so Newton's
    method with step halving converges in a few steps (Hunter's 2004 MM algorithm reaches the
    same point, linearly; the tests check against it). The maximum exists when the win graph is
    strongly connected (Hunter 2004, assumption 1); when it is not (say a model never won), one
    virtual tie is added to every pair that met, a weak prior that keeps ratings finite, and the
    second return value says so.

    Args:
        W: (M, M) wins, ``W[i, j]`` = wins of i over j (ties as halves, see :func:`win_matrix`).

    Returns:
        (log-strengths (M,), natural log, mean 0 over the models that played; ``nan`` for a model
        without games), whether the prior was added.
    """
    W = np.array(W, dtype=np.float64)
    played = (W + W.T).sum(axis=1) > 0  # (M,)
    # The maximum exists group by group (models that never met are fitted apart), so the prior
    # is needed only when some group of models that met is not strongly connected.
    met = [(i, j, "") for i in range(len(W)) for j in range(len(W)) if W[i, j] + W[j, i] > 0 and i < j]
    groups = groups_of(met, len(W))
    regularized = any(not _strongly_connected(W[np.ix_(m, m)])
                      for m in (played & (groups == g) for g in np.unique(groups[played])))
    if regularized:
        W = W + 0.5 * ((W + W.T) > 0)
    N = W + W.T  # (M, M) games between i and j
    b = np.zeros(len(W))
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(b[:, None] - b[None, :])))  # (M, M) P(i beats j)
        grad = (W * (1 - p)).sum(axis=1) - (W.T * p).sum(axis=1)  # (M,)
        info = N * p * (1 - p)
        laplacian = np.diag(info.sum(axis=1)) - info  # minus the Hessian; null space: shifts
        step = np.linalg.lstsq(laplacian, grad, rcond=None)[0]  # least-norm: no shift added
        t, before = 1.0, _log_likelihood(W, b)
        while _log_likelihood(W, b + t * step) < before - 1e-12 and t > 1e-8:
            t /= 2  # step halving keeps every step uphill
        b = b + t * step
        if np.max(np.abs(t * step)) < tol:
            break
    b = b - b[played].mean()
    b[~played] = np.nan
    return b, regularized


def groups_of(coded: Sequence[tuple[int, int, str]], n_models: int) -> np.ndarray:
    """(M,) group number of each model (1 = the largest group): models linked by a chain of voted
    pairs share a group (union-find over the votes)."""
    parent = list(range(n_models))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b, _ in coded:
        parent[root(a)] = root(b)
    roots = [root(i) for i in range(n_models)]
    order = sorted(set(roots), key=lambda r: (-roots.count(r), roots.index(r)))
    return np.array([order.index(r) + 1 for r in roots])


def _centre_groups(log_strength: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Log-strengths shifted so each group's mean (over its models with a value) is 0."""
    out = np.array(log_strength, dtype=np.float64)
    for g in np.unique(groups):
        members = groups == g
        if np.any(~np.isnan(out[members])):
            out[members] -= np.nanmean(out[members])
    return out


def groups_note(groups: np.ndarray, keys: Sequence[tuple[str, str]]) -> str:
    """The leaderboard's sentence about groups that never met ("" for one group)."""
    n = int(groups.max()) if len(groups) else 0
    if n <= 1:
        return ""
    members = "; ".join(f"group {g}: " + ", ".join(k[0] for k, gk in zip(keys, groups) if gk == g)
                        for g in range(1, n + 1))
    return (f" These votes form {n} groups of models that never met each other, directly or through "
            f"other models ({members}): a rating compares only with ratings of its own group, so each "
            "group is centred on 1000 and ranked apart; vote across the groups to put them on one scale.")


def to_rating(log_strength: np.ndarray) -> np.ndarray:
    """Natural-log strengths on FastChat's scale: ``1000 + 400 * log10(p)``."""
    return BASE_RATING + SCALE * np.asarray(log_strength) / math.log(10)


def leaderboard(votes: Sequence[dict], n_bootstrap: int = 200, seed: int = 0) -> dict:
    """Per-model counts, win rate (Wilson 95%) and Bradley–Terry rating (bootstrap 95%).

    Args:
        votes: dicts with ``model_a``, ``source_a``, ``model_b``, ``source_b`` and ``vote``
            (as :meth:`summarizer.arena.ArenaStore.votes` returns). A model is its (slot, source)
            pair, so a slot refilled with another model mid-class counts as a new model.
        n_bootstrap: resamples of the votes (with replacement) for the rating intervals.
        seed: bootstrap seed (same votes and seed give the same intervals).

    Returns:
        ``{"rows": [...], "n_votes", "regularized", "groups", "method"}`` (no ``groups`` without
        votes); rows group by group
        (:func:`groups_of`), best rating first within a group, each with ``group``,
        ``model``, ``source``, ``votes``, ``wins``, ``losses``, ``ties``, ``both_bad``,
        ``win_rate`` (wins / (wins + losses), nan without decisive votes), ``win_rate_low/high``,
        ``rating``, ``rating_low/high``. With more than one group, ``method`` ends with
        :func:`groups_note` (shown under the leaderboard).
    """
    keys = sorted({(v["model_a"], v["source_a"]) for v in votes} | {(v["model_b"], v["source_b"]) for v in votes})
    index = {k: i for i, k in enumerate(keys)}
    coded = [(index[(v["model_a"], v["source_a"])], index[(v["model_b"], v["source_b"])], v["vote"])
             for v in votes]
    method = ("Win rate = wins / (wins + losses), 95% Wilson interval; ties and 'both bad' are left out of it. "
              "Rating: Bradley–Terry maximum likelihood (logistic, as Chatbot Arena), 1000 + 400·log10(strength); "
              "a tie or 'both bad' counts as half a win for each model; 95% percentile bootstrap over "
              f"{n_bootstrap} resamples of the votes.")
    if not keys:
        return {"rows": [], "n_votes": 0, "regularized": False, "method": method}
    groups = groups_of(coded, len(keys))
    log_p, regularized = bradley_terry(win_matrix(coded, len(keys)))
    log_p = _centre_groups(log_p, groups)
    low, high = _bootstrap_ratings(coded, len(keys), n_bootstrap, seed, groups)
    rows = []
    for k, (model, source) in enumerate(keys):
        mine = [c for c in coded if k in c[:2]]
        wins = sum(1 for a, b, v in mine if (v == "A" and a == k) or (v == "B" and b == k))
        losses = sum(1 for a, b, v in mine if (v == "B" and a == k) or (v == "A" and b == k))
        ties = sum(1 for *_, v in mine if v == "tie")
        bad = sum(1 for *_, v in mine if v == "both bad")
        decisive = wins + losses
        wl, wh = wilson_interval(wins, decisive)
        rows.append({"group": int(groups[k]), "model": model, "source": source, "votes": len(mine), "wins": wins, "losses": losses,
                     "ties": ties, "both_bad": bad, "win_rate": wins / decisive if decisive else math.nan,
                     "win_rate_low": wl, "win_rate_high": wh, "rating": float(to_rating(log_p[k])),
                     "rating_low": float(low[k]), "rating_high": float(high[k])})
    rows.sort(key=lambda r: (r["group"], -r["rating"]))
    return {"rows": rows, "n_votes": len(coded), "regularized": regularized, "groups": int(groups.max()),
            "method": method + groups_note(groups, keys)}


def _bootstrap_ratings(coded, n_models: int, n_bootstrap: int, seed: int,
                       groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """2.5% and 97.5% quantiles of the ratings refitted on votes resampled with replacement, each
    resample centred per group (as the fit)."""
    groups = np.ones(n_models, dtype=int) if groups is None else groups
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(coded), np.full(len(coded), 1 / len(coded)), size=n_bootstrap)  # (R, V)
    ratings = np.array([to_rating(_centre_groups(bradley_terry(win_matrix(coded, n_models, c))[0], groups))
                        for c in counts])  # (R, M)
    # A model absent from a resample has no rating there (nan): quantiles over the others.
    return np.nanquantile(ratings, 0.025, axis=0), np.nanquantile(ratings, 0.975, axis=0)
