"""Arena ratings: 1–5 scores per served summary in the SQLite store (restart, kill, 30 concurrent
raters, refusals naming the field), the mean and t-interval against independent computations,
and /arena_rate, the leaderboard's ratings and the two-file export through gradio_client.
"""
from __future__ import annotations

import csv
import math
import random
import signal
import statistics
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from summarizer.arena.leaderboard import mean_interval, rating_table, t_quantile
from summarizer.arena.store import CRITERIA, ArenaError, ArenaStore, ServedPair

GOOD = {"relevance": 4, "coherence": 5, "fluency": 3, "consistency": 2}


def make_pair(pair_id: str, a="base", b="lora") -> ServedPair:
    return ServedPair(pair_id, "test_1", "#Person1#: Hi.", a, f"src-{a}", b, f"src-{b}", "sum A", "sum B")


def scores_of(k: int) -> dict:
    """Deterministic 1..5 scores for rater ``k``."""
    rng = random.Random(k)
    return {c: rng.randint(1, 5) for c in CRITERIA}


# ---- store ---------------------------------------------------------------------------------------
def test_ratings_survive_a_restart_and_name_the_rated_model(tmp_path):
    path = tmp_path / "arena.sqlite3"
    first = ArenaStore(path)
    first.record_pair(make_pair("p0"), "b1")
    result = first.rate("p0", "B", GOOD, "b1")
    assert result["blind"] is True and "model" not in result  # rated before the vote: nothing revealed
    first.vote("p0", "A", "b1")
    assert first.rate("p0", "a", {c: str(v) for c, v in GOOD.items()}, "b1")["blind"] is False
    del first
    second = ArenaStore(path)
    got = [(r["side"], r["model"], r["source"], *(r[c] for c in CRITERIA), r["blind"]) for r in second.ratings()]
    assert got == [("B", "lora", "src-lora", 4, 5, 3, 2, True), ("A", "base", "src-base", 4, 5, 3, 2, False)]
    with pytest.raises(ArenaError, match="side B of pair_id 'p0' already has your rating"):
        second.rate("p0", "B", GOOD, "b1")
    assert len(ArenaStore(path).ratings()) == 2


def test_ratings_survive_the_app_being_killed(tmp_path):
    """SIGKILL right after rating (no clean shutdown) loses no answered rating."""
    script = (f"import os, signal; from summarizer.arena.store import ArenaStore; from tests.test_ratings import make_pair, GOOD\n"
              f"s = ArenaStore({str(tmp_path / 'arena.sqlite3')!r})\n"
              f"for k in range(4):\n    s.record_pair(make_pair(f'p{{k}}'), 'b'); s.rate(f'p{{k}}', 'A', GOOD, 'b')\n"
              f"os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == -signal.SIGKILL
    ratings = ArenaStore(tmp_path / "arena.sqlite3").ratings()
    assert [(r["pair_id"], r["relevance"]) for r in ratings] == [(f"p{k}", 4) for k in range(4)]


def test_thirty_concurrent_raters_are_all_stored(tmp_path):
    store = ArenaStore(tmp_path / "arena.sqlite3")
    barrier = threading.Barrier(30)

    def student(k: int) -> int:
        barrier.wait()  # all 30 write at the same moment
        for j in range(5):
            store.record_pair(make_pair(f"p{k}x{j}"), f"browser-{k}")
            for side in "AB":
                store.rate(f"p{k}x{j}", side, scores_of(k * 10 + j), f"browser-{k}")
            store.vote(f"p{k}x{j}", "tie", f"browser-{k}")  # votes and ratings interleave
        return k

    with ThreadPoolExecutor(30) as pool:
        assert sorted(pool.map(student, range(30))) == list(range(30))
    reopened = ArenaStore(tmp_path / "arena.sqlite3")
    ratings = reopened.ratings()
    assert len(ratings) == 300 and len({r["browser_session"] for r in ratings}) == 30
    assert len(reopened.votes()) == 150
    assert {(r["pair_id"], r["side"], r["relevance"]) for r in ratings} == {
        (f"p{k}x{j}", side, scores_of(k * 10 + j)["relevance"]) for k in range(30) for j in range(5) for side in "AB"}


@pytest.mark.parametrize("call, message", [
    (lambda s: s.rate("never-served", "A", GOOD, "b1"), "pair_id 'never-served' was not served to this session"),
    (lambda s: s.rate("pair0", "A", GOOD, "someone-else"), "was not served to this session"),
    (lambda s: s.rate("pair0", "C", GOOD, "b1"), "side must be 'A' or 'B'.*got 'C'"),
    (lambda s: s.rate("pair0", None, GOOD, "b1"), "side must be 'A' or 'B'.*got 'NoneType'"),
    (lambda s: s.rate("pair0", "A", {**GOOD, "fluency": 6}, "b1"), "fluency must be a whole number from 1 .* got 6"),
    (lambda s: s.rate("pair0", "A", {**GOOD, "relevance": 0}, "b1"), "relevance must be .* got 0"),
    (lambda s: s.rate("pair0", "A", {**GOOD, "coherence": 2.5}, "b1"), "coherence must be .* got float"),
    (lambda s: s.rate("pair0", "A", {**GOOD, "coherence": True}, "b1"), "coherence must be .* got True"),
    (lambda s: s.rate("pair0", "A", {**GOOD, "consistency": "five"}, "b1"), "consistency must be .* got 'five'"),
    (lambda s: s.rate("pair0", "A", {k: v for k, v in GOOD.items() if k != "fluency"}, "b1"), "fluency must be .* got NoneType"),
    (lambda s: s.rate("pair0", "A", {**GOOD, "humour": 5}, "b1"), "scores has unknown criteria humour"),
    (lambda s: s.rate("pair0", "A", [4, 5, 3, 2], "b1"), "scores must be a mapping"),
    (lambda s: s.rate("'; DROP TABLE ratings; --", "A", GOOD, "b1"), "pair_id .* is not one the arena served"),
])
def test_bad_ratings_are_refused_naming_the_field(tmp_path, call, message):
    store = ArenaStore(tmp_path / "arena.sqlite3")
    store.record_pair(make_pair("pair0"), "b1")
    with pytest.raises(ArenaError, match=message):
        call(store)
    assert store.ratings() == [] and store.rate("pair0", "A", GOOD, "b1")["relevance"] == 4


def test_ratings_count_in_the_class_session_current_when_given_and_export(tmp_path):
    store = ArenaStore(tmp_path / "arena.sqlite3")
    store.record_pair(ServedPair("p1", "d1", "x", "base", "=HYPERLINK(1)", "lora", "ok", "a", "b"), "b")
    store.rate("p1", "A", GOOD, "b")
    old, new = store.current_class(), store.new_class("Tuesday")
    store.rate("p1", "B", {c: 5 for c in CRITERIA}, "b")  # served in the old session, rated in the new one
    assert [r["side"] for r in store.ratings(old["id"])] == ["A"]
    assert [r["side"] for r in store.ratings(new["id"])] == ["B"]
    with store.export_ratings_csv(tmp_path / "r.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["class_name"], r["side"], r["model"], r["source"], r["relevance"], r["blind"]) for r in rows] == [
        (old["name"], "A", "base", "'=HYPERLINK(1)", "4", "1"), ("Tuesday", "B", "lora", "ok", "5", "1")]
    assert list(rows[0]) == ["rating_id", "class_session", "class_name", "login", "browser_session", "pair_id", "side",
                             "dialogue_id", "model", "source", *CRITERIA, "blind", "rated_at_utc"]


# ---- statistics ----------------------------------------------------------------------------------
@pytest.mark.parametrize("df, table", [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (29, 2.045), (120, 1.980)])
def test_t_quantile_matches_the_printed_table(df, table):
    """Two-sided 95% critical values of Student's t, as printed in every t table."""
    assert round(t_quantile(0.975, df), 3) == table


def test_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 7, 30, 500, 1000, 1001, 50_000):
        for p in (0.9, 0.975, 0.995):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9, abs=1e-9)


def independent_interval(values):
    """Mean ± t·s/√n written out by hand: statistics module, t from the printed table (n = 10 only)."""
    mean = statistics.fmean(values)
    half = 2.262157 * statistics.stdev(values) / math.sqrt(len(values))  # t(0.975, 9)
    return mean, max(1.0, mean - half), min(5.0, mean + half)


def test_mean_interval_equals_an_independent_computation():
    values = [4, 5, 3, 4, 2, 5, 4, 3, 4, 1]
    for got, want in zip(mean_interval(values), independent_interval(values)):
        assert got == pytest.approx(want, abs=1e-6)
    assert mean_interval([5] * 9 + [4]) == pytest.approx((4.9, 4.9 - 2.262157 * math.sqrt(0.1) / math.sqrt(10), 5.0),
                                                         abs=1e-6)  # clipped at the top of the scale
    mean, low, high = mean_interval([3])
    assert mean == 3 and math.isnan(low) and math.isnan(high)
    assert all(math.isnan(x) for x in mean_interval([]))


def test_rating_table_per_model_and_criterion():
    rng = random.Random(7)
    ratings = [{"model": m, "source": "s", **{c: rng.randint(1, 5) for c in CRITERIA}}
               for m in ["lora"] * 10 + ["base"] * 10] + [{"model": "full", "source": "s", **GOOD}]
    table = rating_table(ratings)
    assert table["n_ratings"] == 21 and table["criteria"] == list(CRITERIA)
    rows = {r["model"]: r for r in table["rows"]}
    assert [r["model"] for r in table["rows"]] == ["base", "full", "lora"]
    for model in ("base", "lora"):
        assert rows[model]["ratings"] == 10
        for c in CRITERIA:
            want = independent_interval([r[c] for r in ratings if r["model"] == model])
            got = (rows[model][c], rows[model][f"{c}_low"], rows[model][f"{c}_high"])
            assert got == pytest.approx(want, abs=1e-6)
    assert rows["full"]["ratings"] == 1 and rows["full"]["fluency"] == 3 and math.isnan(rows["full"]["fluency_low"])
    assert rating_table([])["rows"] == []
