"""How often the Prompt Lab's ★ and its "differs from T1" claims are false: a simulation.

Run ``python -m summarizer.prompt_lab.calibration [--sims 2000]``; ``tests/test_prompt_lab.py``
runs a smaller version and asserts the rates.

Model of K *equal* templates on N dialogues: dialogue i has a difficulty ``mu_i`` drawn uniformly
from [0.1, 0.5] (the spread of per-dialogue ROUGE-1 F-measures of FLAN-T5 zero-shot on DialogSum),
and each template's score is ``clip(mu_i + e, 0, 1)`` with independent ``e ~ Normal(0, 0.08)``:
the templates' scores on one dialogue are correlated, as real templates' are, and no template is
better than another. Every ★ is then a false best and every "differs from T1" a false claim.

Rules compared:

* ``"bootstrap"``: the rule before issue 17: the top mean's paired percentile-bootstrap 95% CI
  against every other lies above 0.
* ``"exact"``: :func:`summarizer.prompt_lab.lab.best_template` (the exact paired sign-flip test).
"""
from __future__ import annotations

import argparse
from statistics import fmean

import numpy as np

from summarizer.evaluation.stats import paired_difference_ci


def equal_templates(rng: np.random.Generator, k: int, n: int) -> list[list[float]]:
    """K lists of N per-dialogue scores of K equal templates (module docstring's model)."""
    mu = rng.uniform(0.1, 0.5, size=n)  # (N,)
    scores = np.clip(mu[None, :] + rng.normal(0, 0.08, size=(k, n)), 0, 1)  # (K, N)
    return scores.tolist()


def bootstrap_rule(per, n_resamples: int = 1000, seed: int = 0) -> int | None:
    """The rule before issue 17 (paired bootstrap 95% CI of top minus every other above 0)."""
    means = [fmean(p) for p in per]
    top = max(range(len(per)), key=means.__getitem__)
    for j in range(len(per)):
        if j != top and paired_difference_ci(per[top], per[j], n_resamples, 0.95, seed).low <= 0:
            return None
    return top


def false_best_rate(rule: str, k: int, n: int, sims: int, seed: int = 0) -> float:
    """Share of ``sims`` simulated runs of K equal templates on N dialogues in which ``rule``
    (``"exact"`` or ``"bootstrap"``) marks a template best."""
    from summarizer.prompt_lab.lab import best_template

    rng = np.random.default_rng(seed)
    marked = 0
    for s in range(sims):
        per = equal_templates(rng, k, n)
        if rule == "exact":
            marked += best_template(per, {"confidence": 0.95, "seed": s}) is not None
        else:
            marked += bootstrap_rule(per, n_resamples=500, seed=s) is not None
    return marked / sims


def false_differs_rate(adjust: str, k: int, n: int, sims: int, seed: int = 0) -> float:
    """Share of runs of K equal templates in which at least one template "differs from T1":
    ``adjust="holm"``: its Holm-adjusted exact p < 0.05 (:func:`summarizer.prompt_lab.lab.vs_first_p`);
    ``adjust="none"``: its unadjusted paired bootstrap 95% CI excludes 0 (the ΔROUGE-1 column)."""
    from summarizer.prompt_lab.lab import vs_first_p

    rng = np.random.default_rng(seed)
    hits = 0
    for s in range(sims):
        per = equal_templates(rng, k, n)
        if adjust == "holm":
            hits += any(p < 0.05 for p in vs_first_p(per, seed=s)[1][1:])
        else:
            cis = [paired_difference_ci(p, per[0], 500, 0.95, s) for p in per[1:]]
            hits += any(c.low > 0 or c.high < 0 for c in cis)
    return hits / sims


def bootstrap_coverage(n: int, sims: int, seed: int = 0) -> float:
    """Share of ``sims`` runs in which the percentile-bootstrap 95% CI of one template's mean
    (:func:`summarizer.evaluation.stats.bootstrap_ci`, 1000 resamples) over N dialogues of the
    module's model contains the true mean 0.3 (nominal 95%)."""
    from summarizer.evaluation.stats import bootstrap_ci

    rng = np.random.default_rng(seed)
    hits = 0
    for s in range(sims):
        x = equal_templates(rng, 1, n)[0]
        ci = bootstrap_ci(x, 1000, 0.95, s)
        hits += ci.low <= 0.3 <= ci.high
    return hits / sims


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sims", type=int, default=2000, help="simulated runs per cell (default: %(default)s)")
    p.add_argument("--n", type=int, nargs="+", default=[1, 2, 3, 5, 6, 8, 10, 20, 50])
    args = p.parse_args(argv)
    print(f"False-best rate (share of {args.sims} runs of equal templates with a ★), nominal 5%:")
    print("| N | K=2 bootstrap rule (before) | K=2 exact test (now) | K=6 exact test (now) |")
    print("|---|---|---|---|")
    for n in args.n:
        print(f"| {n} | {false_best_rate('bootstrap', 2, n, args.sims):.1%} | "
              f"{false_best_rate('exact', 2, n, args.sims):.1%} | {false_best_rate('exact', 6, n, args.sims):.1%} |")
    print("\nSix equal templates: share of runs where some template 'differs from T1':")
    print("| N | unadjusted bootstrap CI | Holm-adjusted exact test |")
    print("|---|---|---|")
    for n in args.n:
        print(f"| {n} | {false_differs_rate('none', 6, n, args.sims):.1%} | "
              f"{false_differs_rate('holm', 6, n, args.sims):.1%} |")
    print(f"\nCoverage of the percentile-bootstrap 95% CI of a mean ({args.sims} runs), nominal 95%:")
    print("| N | " + " | ".join(str(n) for n in args.n) + " |")
    print("|---|" + "---|" * len(args.n))
    print("| coverage | " + " | ".join(f"{bootstrap_coverage(n, args.sims):.1%}" for n in args.n) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
