"""How far the Arena's raters agree: Krippendorff's alpha of the ratings, percent agreement of votes.

Pure numpy over the vote and rating dicts of :class:`summarizer.arena.ArenaStore` (with the
summary texts of :meth:`~summarizer.arena.ArenaStore.summaries`), no storage::

    from summarizer.arena.agreement import agreement
    report = agreement(store.votes(klass), store.ratings(klass), store.summaries(klass))

**Units.** Agreement needs the same thing judged by several people.

* A *rated unit* is one summary: the same dialogue (``dialogue_id``), the same model (slot and
  source) and the same summary text. Its raters are the logins that rated it.
* A *voted unit* is one pair: the same dialogue and the same two summaries with their models,
  in either order. A vote is read as what it says about the two summaries, so "A is better" on
  a pair shown as (x, y) and "B is better" on the same pair shown as (y, x) are the same vote.

A rater is a login (or, in an app without logins, a browser session). When one rater judged the
same unit twice (possible outside a same-pairs round) only the first judgement counts, so each
rater is one coder of the reliability data; the later ones are counted as ``repeats``. Units
judged by fewer than two raters carry no information on agreement and are left out.

**Statistics.**

* Krippendorff's alpha, ``1 - D_o / D_e`` (observed over expected disagreement; Krippendorff
  2011, "Computing Krippendorff's Alpha-Reliability"), computed by the ``krippendorff`` package
  (Castro, https://github.com/pln-fing-udelar/fast-krippendorff): *ordinal* for each 1–5 rating
  dimension, *nominal* for the four vote outcomes. 1 = full agreement, 0 = no better than
  chance, below 0 = systematic disagreement. Krippendorff (2004, "Content Analysis", p. 241)
  relies on data with alpha >= 0.800 and draws tentative conclusions from 0.667.
* Percent agreement of votes: per pair, the share of pairs of raters who gave the same vote,
  ``sum_c n_c (n_c - 1) / (m (m - 1))`` for m votes, n_c of them for outcome c (Fleiss 1971's
  P_i), averaged over the pairs. It is not corrected for chance (two coin-flipping raters agree
  half the time on A/B), which alpha is.
* 95% intervals: percentile bootstrap over units (the pairs or summaries are resampled with
  replacement, each with all its judgements), :attr:`AgreementConfig.n_bootstrap` resamples;
  none with fewer than two units.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import krippendorff
import numpy as np

VOTE_OUTCOMES = ("first", "second", "tie", "both bad")  # "first" = the summary that sorts first won
RELIABLE, TENTATIVE = 0.800, 0.667  # Krippendorff (2004), p. 241


@dataclass(frozen=True)
class AgreementConfig:
    """How the intervals are computed.

    Attributes:
        n_bootstrap: resamples of the units for each 95% interval (200, as the leaderboard).
        seed: bootstrap seed: the same judgements and seed give the same intervals.
        level: the interval's coverage (0.95 = the 2.5% and 97.5% percentiles).
    """

    n_bootstrap: int = 200
    seed: int = 0
    level: float = 0.95

    def __post_init__(self):
        if not isinstance(self.n_bootstrap, int) or self.n_bootstrap < 1:
            raise ValueError(f"n_bootstrap must be a whole number >= 1, got {self.n_bootstrap!r}.")
        if not 0 < self.level < 1:
            raise ValueError(f"level must lie between 0 and 1 (0.95 for a 95% interval), got {self.level!r}.")


def rater_of(row: Mapping) -> str:
    """Who judged: the login, or without logins the browser session (``"session:<id>"``)."""
    return row.get("login") or f"session:{row.get('browser_session', '')}"


def _first_per_rater(judgements: Sequence[tuple[tuple, str, object]]) -> tuple[dict[tuple, dict[str, object]], int]:
    """``{unit: {rater: value}}`` keeping each rater's first value per unit, and how many repeats were dropped."""
    units: dict[tuple, dict[str, object]] = {}
    repeats = 0
    for unit, rater, value in judgements:
        mine = units.setdefault(unit, {})
        if rater in mine:
            repeats += 1
        else:
            mine[rater] = value
    return units, repeats


def vote_units(votes: Sequence[Mapping], summaries: Mapping[str, tuple[str, str]]) -> tuple[dict, int]:
    """Votes grouped by the pair they judged.

    Args:
        votes: dicts with ``pair_id``, ``dialogue_id``, ``model_a``, ``source_a``, ``model_b``,
            ``source_b``, ``vote`` (A, B, tie, both bad) and ``login`` / ``browser_session``.
        summaries: ``{pair_id: (summary_a, summary_b)}``; a vote whose pair is missing is skipped.

    Returns:
        (``{unit: {rater: outcome}}`` with outcome one of :data:`VOTE_OUTCOMES`, repeats dropped).
        A unit is ``(dialogue_id, side, side)`` with each side ``(model, source, summary)`` in
        sorted order, so the order the pair was shown in does not matter.
    """
    judged = []
    for v in votes:
        if v["pair_id"] not in summaries:
            continue
        text_a, text_b = summaries[v["pair_id"]]
        side_a, side_b = (v["model_a"], v["source_a"], text_a), (v["model_b"], v["source_b"], text_b)
        first, second = sorted((side_a, side_b))
        if v["vote"] in ("A", "B"):
            winner = side_a if v["vote"] == "A" else side_b
            outcome = "first" if winner == first else "second"
        else:
            outcome = v["vote"]
        judged.append(((v["dialogue_id"], first, second), rater_of(v), outcome))
    return _first_per_rater(judged)


def rating_units(ratings: Sequence[Mapping], summaries: Mapping[str, tuple[str, str]],
                 criteria: Sequence[str]) -> tuple[dict, int]:
    """Ratings grouped by the summary they judged: ``({unit: {rater: {criterion: 1..5}}}, repeats)``,
    a unit being ``(dialogue_id, model, source, summary)``; a rating whose pair is missing is skipped."""
    judged = []
    for r in ratings:
        if r["pair_id"] not in summaries:
            continue
        text = summaries[r["pair_id"]][0 if r["side"] == "A" else 1]
        judged.append(((r["dialogue_id"], r["model"], r["source"], text), rater_of(r), {c: r[c] for c in criteria}))
    return _first_per_rater(judged)


def value_counts(units: Mapping[tuple, Mapping[str, object]], domain: Sequence, pick=lambda x: x) -> np.ndarray:
    """(U, V) counts: row u holds how many raters gave each value of ``domain`` to unit u (only the
    units with two or more raters). ``pick`` reads the value out of a judgement."""
    shared = [u for u in units.values() if len(u) >= 2]
    index = {value: k for k, value in enumerate(domain)}
    counts = np.zeros((len(shared), len(domain)), dtype=np.int64)
    for row, judgements in enumerate(shared):
        for value in judgements.values():
            counts[row, index[pick(value)]] += 1
    return counts


def alpha_of(counts: np.ndarray, domain: Sequence, level: str) -> float:
    """Krippendorff's alpha of a (U, V) value-count table by the ``krippendorff`` package;
    ``nan`` when it is undefined (no unit, or every judgement the same value: no expected disagreement)."""
    if len(counts) == 0 or np.count_nonzero(counts.sum(axis=0)) < 2:
        return math.nan
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(krippendorff.alpha(value_counts=counts, value_domain=list(domain),
                                        level_of_measurement=level))


def percent_agreement(counts: np.ndarray) -> float:
    """Mean over units of the share of rater pairs that agree, ``sum_c n_c(n_c-1) / (m(m-1))``
    (Fleiss 1971, P_i averaged); ``nan`` without units. ``counts``: (U, V), each row summing to m >= 2."""
    if len(counts) == 0:
        return math.nan
    m = counts.sum(axis=1)  # (U,)
    return float(np.mean((counts * (counts - 1)).sum(axis=1) / (m * (m - 1))))


def bootstrap_interval(counts: np.ndarray, statistic, config: AgreementConfig) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(counts)`` over units resampled with replacement;
    ``(nan, nan)`` with fewer than two units. Resamples where the statistic is undefined are left out."""
    if len(counts) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(config.seed)
    draws = rng.integers(0, len(counts), size=(config.n_bootstrap, len(counts)))  # (R, U)
    values = np.array([statistic(counts[d]) for d in draws])
    if np.all(np.isnan(values)):
        return math.nan, math.nan
    tail = (1 - config.level) / 2
    return float(np.nanquantile(values, tail)), float(np.nanquantile(values, 1 - tail))


def reading(alpha: float) -> str:
    """What an alpha says for training on the judgements (Krippendorff 2004's thresholds)."""
    if math.isnan(alpha):
        return "not enough overlap"
    if alpha >= RELIABLE:
        return "reliable"
    if alpha >= TENTATIVE:
        return "tentative only"
    return "too noisy to train on"


def _row(measure: str, statistic: str, counts: np.ndarray, value: float, interval: tuple[float, float],
         raters: int, repeats: int, note: str) -> dict:
    return {"measure": measure, "statistic": statistic, "value": value, "low": interval[0], "high": interval[1],
            "units": len(counts), "judgements": int(counts.sum()), "raters": raters, "repeats": repeats,
            "reading": note}


def _raters(units: Mapping[tuple, Mapping[str, object]]) -> int:
    return len({rater for u in units.values() if len(u) >= 2 for rater in u})


def agreement(votes: Sequence[Mapping], ratings: Sequence[Mapping], summaries: Mapping[str, tuple[str, str]],
              criteria: Sequence[str] | None = None, scores: Sequence[int] = (1, 2, 3, 4, 5),
              config: AgreementConfig = AgreementConfig()) -> dict:
    """Rater agreement over the votes and ratings given.

    Args:
        votes: as :meth:`summarizer.arena.ArenaStore.votes` returns them.
        ratings: as :meth:`summarizer.arena.ArenaStore.ratings` returns them.
        summaries: ``{pair_id: (summary_a, summary_b)}`` (:meth:`~summarizer.arena.ArenaStore.summaries`).
        criteria: the rating dimensions (default :data:`summarizer.arena.store.CRITERIA`).
        scores: the ordered rating scale.
        config: bootstrap settings.

    Returns:
        ``{"rows": [...], "method": str}``; rows: the votes' percent agreement, the votes' nominal
        alpha, then one ordinal alpha per criterion. Each row has ``measure`` ("votes" or the
        criterion), ``statistic``, ``value``, ``low``/``high`` (95% bootstrap, nan below two units),
        ``units`` (pairs or summaries judged by two or more raters), ``judgements`` (in those units),
        ``raters`` (distinct raters in them), ``repeats`` (second judgements by one rater, not
        counted) and ``reading`` (:func:`reading` of the alpha; the percent row reads the vote alpha).
    """
    if criteria is None:
        from summarizer.arena.store import CRITERIA as criteria  # the store's names, one source of truth
    voted, vote_repeats = vote_units(votes, summaries)
    counts = value_counts(voted, VOTE_OUTCOMES)
    vote_alpha = alpha_of(counts, VOTE_OUTCOMES, "nominal")
    rows = [_row("votes", "percent agreement", counts, percent_agreement(counts),
                 bootstrap_interval(counts, percent_agreement, config), _raters(voted), vote_repeats,
                 reading(vote_alpha)),
            _row("votes", "alpha (nominal)", counts, vote_alpha,
                 bootstrap_interval(counts, lambda c: alpha_of(c, VOTE_OUTCOMES, "nominal"), config),
                 _raters(voted), vote_repeats, reading(vote_alpha))]
    rated, rating_repeats = rating_units(ratings, summaries, criteria)
    for c in criteria:
        counts = value_counts(rated, scores, pick=lambda scored, c=c: scored[c])
        value = alpha_of(counts, scores, "ordinal")
        rows.append(_row(c, "alpha (ordinal)", counts, value,
                         bootstrap_interval(counts, lambda x: alpha_of(x, scores, "ordinal"), config),
                         _raters(rated), rating_repeats, reading(value)))
    return {"rows": rows, "method": method_text(config)}


def method_text(config: AgreementConfig = AgreementConfig()) -> str:
    """The leaderboard's paragraph on agreement: what is counted and how to read alpha."""
    return ("Agreement counts only what two or more logins judged: the same summary (dialogue, model and text) "
            "for ratings, the same pair (dialogue and both summaries, in either order) for votes; a same-pairs "
            "round makes that overlap. Krippendorff's alpha (ordinal for the 1–5 ratings, nominal for the votes; "
            "the krippendorff package): 1 = full agreement, 0 = no better than chance, below 0 = systematic "
            f"disagreement. Krippendorff relies on alpha ≥ {RELIABLE:.3f} and draws tentative conclusions from "
            f"{TENTATIVE:.3f}; a lower value means the votes are too noisy to train on (a model trained on them "
            "learns the noise). Percent agreement = share of rater pairs giving the same vote, averaged over pairs; "
            "it is not corrected for chance. 95% intervals: percentile bootstrap over "
            f"{config.n_bootstrap} resamples of the units (none below two units).")
