"""Rater agreement (summarizer.arena.agreement) against independent computations, and the same-pairs
round (summarizer.arena.rounds) in the store and through the app with two student logins.

Krippendorff's alpha is checked on the worked example of Krippendorff (2011), "Computing
Krippendorff's Alpha-Reliability" (Annenberg School for Communication, Departmental Papers 43),
section C: four observers, twelve units, values 1–5 with gaps. The paper prints alpha = 0.743
(nominal) and 0.815 (ordinal); the test also computes both here from the coincidence matrix,
with the paper's formulas, so a wrong grouping of the Arena's ratings into units would fail it.
"""
from __future__ import annotations

import itertools
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from summarizer.arena.agreement import AgreementConfig, agreement, percent_agreement, vote_units
from summarizer.arena.rounds import RoundItem, SamePairsRounds, check_n_pairs, model_pairs
from summarizer.arena.store import CRITERIA, ArenaError, ArenaStore
from summarizer.inference.generation import GenerationSettings
from summarizer.prompts import build_prompt
from tests.app_server import running_app

NAN = math.nan
# Krippendorff (2011), section C: rows = observers A-D, columns = units 1-12 (NAN = no value).
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]
PUBLISHED = {"nominal": 0.743, "ordinal": 0.815}


def hand_alpha(data, metric: str) -> float:
    """Alpha from the coincidence matrix, as Krippendorff (2011) computes it by hand.

    o_ck = sum over units of (number of c-k pairs of values in the unit) / (m_u - 1);
    n_c = sum_k o_ck; alpha = 1 - (n - 1) sum o_ck d2_ck / sum_{c,k} n_c n_k d2_ck, with
    d2 = [c != k] (nominal) or (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2 (ordinal).
    """
    values = sorted({v for row in data for v in row if not math.isnan(v)})
    index = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    for unit in zip(*data):
        present = [v for v in unit if not math.isnan(v)]
        m = len(present)
        if m < 2:
            continue
        for i, j in itertools.permutations(range(m), 2):
            o[index[present[i]], index[present[j]]] += 1 / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    d2 = np.zeros_like(o)
    for c, k in itertools.product(range(len(values)), repeat=2):
        if metric == "nominal":
            d2[c, k] = float(c != k)
        else:
            low, high = min(c, k), max(c, k)
            d2[c, k] = (n_c[low:high + 1].sum() - (n_c[c] + n_c[k]) / 2) ** 2
    return 1 - (n - 1) * (o * d2).sum() / (np.outer(n_c, n_c) * d2).sum()


def ratings_of_table(table, criterion="relevance"):
    """The table as Arena ratings: observer i = login ``r{i}``, unit j = summary ``s{j}`` of dialogue
    ``d{j}``, each rating on the rater's own served pair (as the Arena serves them)."""
    ratings, summaries = [], {}
    for i, row in enumerate(table):
        for j, value in enumerate(row):
            if math.isnan(value):
                continue
            pair_id = f"p{i}-{j}"
            summaries[pair_id] = (f"s{j}", "the other summary")
            scores = {c: 3 for c in CRITERIA} | {criterion: int(value)}
            ratings.append({"pair_id": pair_id, "side": "A", "dialogue_id": f"d{j}", "model": "base",
                            "source": "google/flan-t5-base", "login": f"r{i}", "browser_session": "x", **scores})
    return ratings, summaries


def test_hand_computation_reproduces_the_published_values():
    for metric, printed in PUBLISHED.items():
        assert round(hand_alpha(KRIPPENDORFF_2011, metric), 3) == printed


def test_ordinal_alpha_of_ratings_equals_krippendorff_2011():
    ratings, summaries = ratings_of_table(KRIPPENDORFF_2011)
    rows = {r["measure"]: r for r in agreement([], ratings, summaries)["rows"]}
    relevance = rows["relevance"]
    assert relevance["value"] == pytest.approx(hand_alpha(KRIPPENDORFF_2011, "ordinal"), abs=1e-12)
    assert round(relevance["value"], 3) == PUBLISHED["ordinal"]
    # the paper's counts: 11 units with two or more values (unit 12 has one), 40 pairable values, 4 observers
    assert (relevance["units"], relevance["judgements"], relevance["raters"]) == (11, 40, 4)
    assert relevance["low"] <= relevance["value"] <= relevance["high"] <= 1
    assert relevance["reading"] == "reliable"
    assert math.isnan(rows["coherence"]["value"])  # every coherence rating is 3: alpha is undefined
    assert rows["coherence"]["reading"] == "not enough overlap"


def test_a_different_summary_text_is_a_different_unit():
    ratings, summaries = ratings_of_table(KRIPPENDORFF_2011)
    summaries["p3-1"] = ("a summary that differs", "the other summary")  # observer D's unit 2 is not unit 2
    row = next(r for r in agreement([], ratings, summaries)["rows"] if r["measure"] == "relevance")
    table = [list(r) for r in KRIPPENDORFF_2011]
    table[3][1] = NAN
    assert row["value"] == pytest.approx(hand_alpha(table, "ordinal"), abs=1e-12)
    assert row["judgements"] == 39


def vote(rater, pair_id, shown, vote_value, dialogue="d1"):
    (model_a, text_a), (model_b, text_b) = shown
    return ({"pair_id": pair_id, "dialogue_id": dialogue, "model_a": model_a, "source_a": f"src-{model_a}",
             "model_b": model_b, "source_b": f"src-{model_b}", "vote": vote_value, "login": rater,
             "browser_session": "x"}, (pair_id, (text_a, text_b)))


BASE, LORA = ("base", "base says"), ("lora", "lora says")
HAND_VOTES = [
    # pair 1 (d1): everyone says base is better, cy saw it the other way round
    vote("ann", "1a", (BASE, LORA), "A"), vote("bob", "1b", (BASE, LORA), "A"), vote("cy", "1c", (LORA, BASE), "B"),
    # pair 2 (d2): ann and bob disagree; ann's second vote on the same pair is a repeat, not counted
    vote("ann", "2a", (BASE, LORA), "A", "d2"), vote("bob", "2b", (BASE, LORA), "B", "d2"),
    vote("ann", "2a-again", (BASE, LORA), "B", "d2"),
    # pair 3 (d3): two ties, two "both bad"
    *(vote(r, f"3{r}", (LORA, BASE), v, "d3") for r, v in
      (("ann", "tie"), ("bob", "tie"), ("cy", "both bad"), ("dee", "both bad"))),
    # same dialogue and models as pair 1 but another summary: its own pair, judged once, left out
    vote("dee", "4d", (BASE, ("lora", "lora says something else")), "B"),
]


def test_percent_agreement_of_votes_equals_a_count_of_agreeing_rater_pairs():
    votes = [v for v, _ in HAND_VOTES]
    summaries = dict(s for _, s in HAND_VOTES)
    rows = agreement(votes, [], summaries)["rows"]
    percent = next(r for r in rows if r["statistic"] == "percent agreement")
    # by hand: pair 1: 3 of 3 rater pairs agree; pair 2: 0 of 1; pair 3: 2 of 6 (ann-bob, cy-dee)
    assert percent["value"] == pytest.approx((3 / 3 + 0 / 1 + 2 / 6) / 3)
    assert (percent["units"], percent["judgements"], percent["raters"], percent["repeats"]) == (3, 9, 4, 1)
    nominal = next(r for r in rows if r["statistic"] == "alpha (nominal)")
    # the same votes as a reliability table: raters ann, bob, cy, dee x pairs 1-3, outcome codes
    code = {"base": 1, "lora": 2, "tie": 3, "both bad": 4}
    table = [[code["base"], code["base"], code["tie"]], [code["base"], code["lora"], code["tie"]],
             [code["base"], NAN, code["both bad"]], [NAN, NAN, code["both bad"]]]
    assert nominal["value"] == pytest.approx(hand_alpha(table, "nominal"), abs=1e-12)
    assert percent["low"] <= percent["value"] <= percent["high"]


def test_the_order_a_pair_was_shown_in_does_not_change_its_unit():
    votes = [v for v, _ in HAND_VOTES[:3]]
    units, _ = vote_units(votes, dict(s for _, s in HAND_VOTES[:3]))
    assert len(units) == 1 and set(next(iter(units.values())).values()) == {"first"}


def test_bootstrap_resamples_units():
    full = np.array([[2, 0, 0, 0]] * 5)  # five pairs, both raters agree on each
    assert percent_agreement(full) == 1.0
    config = AgreementConfig(n_bootstrap=50, seed=3)
    mixed = np.array([[2, 0, 0, 0], [1, 1, 0, 0], [2, 0, 0, 0], [1, 1, 0, 0]])
    rows = agreement(*_votes_from_counts(mixed), config=config)["rows"]
    percent = rows[0]
    assert percent["value"] == 0.5
    # units resampled with replacement: per-unit agreement 1, 0, 1, 0 drawn 4 at a time, 50 times
    draws = np.random.default_rng(3).integers(0, 4, size=(50, 4))
    means = np.array([1.0, 0.0, 1.0, 0.0])[draws].mean(axis=1)
    assert (percent["low"], percent["high"]) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    assert percent["low"] < 0.5 < percent["high"]
    one_unit = agreement(*_votes_from_counts(mixed[:1]), config=config)["rows"][0]
    assert one_unit["value"] == 1.0 and math.isnan(one_unit["low"])  # no interval from one unit


def _votes_from_counts(counts):
    votes, summaries = [], {}
    for u, row in enumerate(counts):
        outcomes = [o for o, n in zip(("A", "B", "tie", "both bad"), row) for _ in range(n)]
        for r, outcome in enumerate(outcomes):
            v, s = vote(f"r{r}", f"{u}-{r}", (BASE, LORA), outcome, f"d{u}")
            votes.append(v)
            summaries[s[0]] = s[1]
    return votes, [], summaries


def test_config_and_round_size_are_checked_by_name():
    with pytest.raises(ValueError, match="n_bootstrap"):
        AgreementConfig(n_bootstrap=0)
    assert check_n_pairs(10.0) == 10 and check_n_pairs("3") == 3
    for bad in (0, 51, 2.5, True, None, "x"):
        with pytest.raises(ArenaError, match="number of pairs must be a whole number from 1 to 50"):
            check_n_pairs(bad)


def test_model_pairs_cycle_through_every_combination():
    import random

    pairs = model_pairs(["base", "full", "lora"], 6, random.Random(0))
    assert sorted(tuple(sorted(p)) for p in pairs) == sorted(2 * [("base", "full"), ("base", "lora"), ("full", "lora")])


# ---- the round in the store ----------------------------------------------------------------------
def items(n=3):
    return [RoundItem(k, f"test_{k}", f"#Person1#: dialogue {k}", f"Summarize: {k}", "base", "src-base", "lora",
                      "src-lora", f"base {k}", f"lora {k}") for k in range(n)]


def test_a_round_serves_each_login_the_same_pairs_in_order_and_skipped_ones_return(tmp_path):
    store = ArenaStore(tmp_path / "arena.sqlite3")
    rounds = SamePairsRounds(store)
    assert rounds.next_for("s1", "ann") is None  # no round: the caller serves a random pair
    rounds.start(items())
    ann = [rounds.next_for("s1", "ann") for _ in range(3)]
    bob = [rounds.next_for("s2", "bob") for _ in range(3)]
    content = lambda p: (p.dialogue_id, p.dialogue, p.prompt, p.model_a, p.summary_a, p.model_b, p.summary_b)  # noqa: E731
    assert [content(p) for p in ann] == [content(p) for p in bob] == [content(i.served_as("x")) for i in items()]
    assert len({p.pair_id for p in ann + bob}) == 6  # each login's own served pairs
    store.vote(ann[0].pair_id, "A", "s1", "ann")
    assert rounds.next_for("s1", "ann").pair_id == ann[1].pair_id  # skipped pairs come back, first unvoted first
    for p in ann[1:]:
        store.vote(p.pair_id, "B", "s1", "ann")
    with pytest.raises(ArenaError, match="voted on all 3 pairs"):
        rounds.next_for("s1", "ann")
    with pytest.raises(ArenaError, match="not served to this session"):
        store.vote(ann[2].pair_id, "A", "s2", "bob")  # a pair of the round stays its login's
    assert rounds.active()["voted"] == {"login:ann": 3}
    store.new_class("next lesson")
    assert rounds.active() is None and rounds.next_for("s1", "ann") is None  # a new class session ends it


def test_two_requests_of_one_login_at_once_get_one_pair(tmp_path):
    store = ArenaStore(tmp_path / "arena.sqlite3")
    rounds = SamePairsRounds(store)
    rounds.start(items(1))
    barrier = threading.Barrier(4)

    def ask(_):
        barrier.wait()
        return rounds.next_for("s1", "ann").pair_id

    with ThreadPoolExecutor(4) as pool:
        got = set(pool.map(ask, range(4)))
    assert len(got) == 1
    store.vote(got.pop(), "tie", "s1", "ann")  # and it is a pair served to ann


# ---- the round through the app, two student logins ------------------------------------------------
TEACHER, ANN, BOB = ("t", "tp"), ("ann", "ap"), ("bob", "bp")


@pytest.fixture(scope="module")
def klass(tiny_t5, tiny_classifier, random_adapter, dialogsum_dir, tmp_path_factory):
    argv = ("--auth", "t:tp", "--student-auth", "ann:ap", "--student-auth", "bob:bp")
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory.mktemp("runs"), argv,
                     lora=random_adapter) as served:
        yield served


def client(url, login):
    return Client(url, auth=login, verbose=False, httpx_kwargs={"timeout": 600})


def test_the_same_pairs_round_serves_every_student_the_same_pairs(klass):
    studio, url = klass
    teacher, ann, bob = client(url, TEACHER), client(url, ANN), client(url, BOB)
    with pytest.raises(AppError, match="arena_start_round needs the teacher's login"):
        ann.predict(3, api_name="/arena_start_round")
    started = teacher.predict(3, api_name="/arena_start_round")
    assert (started["n_pairs"], started["raters"]) == (3, 0)
    seen = {name: [c.predict(api_name="/arena_next") for _ in range(3)] for name, c in (("ann", ann), ("bob", bob))}
    shown = {name: [(p["dialogue_id"], p["dialogue"], p["summary_a"], p["summary_b"]) for p in pairs]
             for name, pairs in seen.items()}
    assert shown["ann"] == shown["bob"] and len({s[0] for s in shown["ann"]}) == 3
    assert not {p["pair_id"] for p in seen["ann"]} & {p["pair_id"] for p in seen["bob"]}
    rows = {r["id"]: r["dialogue"] for r in studio.split("test")}
    assert all(rows[d] == text for d, text, *_ in shown["ann"])
    # ann and bob agree on the first two pairs, not on the third; each rates the first pair's A
    revealed = []
    for name, c, votes in (("ann", ann, ("A", "B", "tie")), ("bob", bob, ("A", "B", "A"))):
        for pair, v in zip(seen[name], votes):
            revealed.append((pair, c.predict(pair["pair_id"], v, api_name="/arena_vote")))
        c.predict(seen[name][0]["pair_id"], "A", 4, 5, 5, 3 if name == "ann" else 2, api_name="/arena_rate")
    with pytest.raises(AppError, match="voted on all 3 pairs"):
        ann.predict(api_name="/arena_next")
    for pair, result in revealed[:3]:  # each summary is its slot's own greedy zero-shot summary
        prompt = build_prompt("zero-shot", pair["dialogue"], tokenizer=studio.slots.tokenizer).text
        direct = studio.slots.generate([result["model_a"], result["model_b"]], [prompt], GenerationSettings())
        assert (pair["summary_a"], pair["summary_b"]) == (direct[result["model_a"]][0], direct[result["model_b"]][0])
    board = bob.predict("current", api_name="/arena_leaderboard")
    assert board["round"]["finished"] == 2 and "ann" not in str(board["round"])
    agreed = {(r["measure"], r["statistic"]): r for r in board["agreement"]["rows"]}
    percent = agreed[("votes", "percent agreement")]
    assert percent["value"] == pytest.approx(2 / 3) and (percent["units"], percent["judgements"]) == (3, 6)
    assert agreed[("relevance", "alpha (ordinal)")]["units"] == 1
    assert "0 = no better than chance" in board["agreement"]["method"]
    assert "too noisy to train on" in board["agreement"]["method"]
    assert teacher.predict(api_name="/arena_end_round")["ended"]["n_pairs"] == 3
    after = ann.predict(api_name="/arena_next")  # random pairs again
    assert after["pair_id"] not in {p["pair_id"] for p in seen["ann"]}
