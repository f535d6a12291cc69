"""Arena: SQLite votes (restart, 30 concurrent voters, refusals), the leaderboard's statistics
against independent computations, and the tab's endpoints through gradio_client.

The served app has base = tiny T5 and lora = a random adapter (two filled slots), real DialogSum.
"""
from __future__ import annotations

import csv
import math
import random
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from summarizer.arena.leaderboard import leaderboard
from summarizer.arena.store import ArenaError, ArenaStore, ServedPair
from summarizer.arena.leaderboard import bradley_terry, to_rating, wilson_interval, win_matrix
from summarizer.inference.generation import GenerationSettings
from summarizer.prompts import build_prompt
from summarizer.text import spreadsheet_safe
from tests.app_server import running_app
from tests.browser import click, new_driver, open_tab, requires_chromium, save_screenshot, value, wait_for


def connect(url: str) -> Client:
    """A gradio_client session; a long read timeout because 30 clients queue for one CPU here."""
    return Client(url, verbose=False, httpx_kwargs={"timeout": 600})


def make_pair(pair_id: str, a="base", b="lora") -> ServedPair:
    return ServedPair(pair_id, "test_1", "#Person1#: Hi.", a, f"src-{a}", b, f"src-{b}", "sum A", "sum B")


def votes_of(triples):
    """Leaderboard input from (model A, model B, vote) triples; each model's source is 's'."""
    return [{"model_a": a, "source_a": "s", "model_b": b, "source_b": "s", "vote": v} for a, b, v in triples]


# ---- store ---------------------------------------------------------------------------------------
def test_votes_survive_a_restart(tmp_path):
    path = tmp_path / "arena.sqlite3"
    first = ArenaStore(path)
    for k in range(3):
        first.record_pair(make_pair(f"pair{k}"), "browser-1")
    first.vote("pair0", "A", "browser-1")
    first.vote("pair1", "both bad", "browser-1")
    klass = first.current_class()
    del first  # the app stops; a new process opens the same file
    second = ArenaStore(path)
    assert [(v["dialogue_id"], v["model_a"], v["source_b"], v["vote"]) for v in second.votes()] == [
        ("test_1", "base", "src-lora", "A"), ("test_1", "base", "src-lora", "both bad")]
    assert second.current_class() == klass
    # A pair served before the restart can still be voted on, once.
    assert second.vote("pair2", "tie", "browser-1")["model_b"] == "lora"
    with pytest.raises(ArenaError, match="already has your vote"):
        second.vote("pair0", "B", "browser-1")
    assert len(ArenaStore(path).votes()) == 3


def test_votes_survive_the_app_being_killed(tmp_path):
    """A process that votes and is then killed (SIGKILL: no clean shutdown) loses no answered vote."""
    script = (f"import os, signal; from summarizer.arena.store import ArenaStore; from tests.test_arena import make_pair\n"
              f"s = ArenaStore({str(tmp_path / 'arena.sqlite3')!r})\n"
              f"for k in range(5):\n    s.record_pair(make_pair(f'p{{k}}'), 'b'); s.vote(f'p{{k}}', 'A', 'b')\n"
              f"s.record_pair(make_pair('open'), 'b')\nos.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == -signal.SIGKILL
    store = ArenaStore(tmp_path / "arena.sqlite3")
    assert [v["vote"] for v in store.votes()] == ["A"] * 5
    assert store.vote("open", "B", "b")["vote"] == "B"  # the pair served before the kill is still votable


def test_thirty_concurrent_voters_are_all_stored(tmp_path):
    store = ArenaStore(tmp_path / "arena.sqlite3")
    barrier = threading.Barrier(30)

    def student(k: int) -> int:
        barrier.wait()  # all 30 start writing at the same moment
        for j in range(10):
            store.record_pair(make_pair(f"p{k}x{j}"), f"browser-{k}")
            store.vote(f"p{k}x{j}", random.Random(k * 100 + j).choice(["A", "B", "tie", "both bad"]), f"browser-{k}")
        return k

    with ThreadPoolExecutor(30) as pool:
        assert sorted(pool.map(student, range(30))) == list(range(30))
    votes = ArenaStore(tmp_path / "arena.sqlite3").votes()
    assert len(votes) == 300 and len({v["browser_session"] for v in votes}) == 30


@pytest.mark.parametrize("call, message", [
    (lambda s: s.vote("never-served", "A", "b1"), "pair_id 'never-served' was not served"),
    (lambda s: s.vote("pair0", "A", "someone-else"), "was not served to this session"),
    (lambda s: s.vote("pair0", "C", "b1"), "vote must be one of 'A', 'B', 'tie', 'both bad'; got 'C'"),
    (lambda s: s.vote("pair0", 1, "b1"), "vote must be a string"),
    (lambda s: s.vote(12345, "A", "b1"), "pair_id must be a string, got int"),
    (lambda s: s.vote("x" * 100_000, "A", "b1"), "pair_id has 100,000 characters, over the limit of 64"),
    (lambda s: s.vote("'; DROP TABLE votes; --", "A", "b1"), "pair_id .* is not one the arena served"),
    (lambda s: s.new_class("n" * 101), "class session name has 101 characters"),
])
def test_bad_requests_are_refused_naming_the_field(tmp_path, call, message):
    store = ArenaStore(tmp_path / "arena.sqlite3")
    store.record_pair(make_pair("pair0"), "b1")
    with pytest.raises(ArenaError, match=message):
        call(store)
    assert store.votes() == [] and store.vote("pair0", "both_bad", "b1")["vote"] == "both bad"


def test_new_class_session_resets_the_board_but_keeps_votes_and_export(tmp_path):
    store = ArenaStore(tmp_path / "arena.sqlite3")
    store.record_pair(make_pair("p1"), "b")
    store.vote("p1", "A", "b")
    old = store.current_class()
    new = store.new_class("Tuesday class")
    assert new["name"] == "Tuesday class" and store.current_class()["id"] == new["id"] != old["id"]
    assert store.votes(new["id"]) == [] and len(store.votes(old["id"])) == 1
    store.record_pair(make_pair("p2", a="lora", b="base"), "b")
    store.vote("p2", "B", "b")
    out = store.export_csv(tmp_path / "votes.csv")
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["class_name"], r["model_a"], r["vote"], r["winner"]) for r in rows] == [
        (old["name"], "base", "A", "base"), ("Tuesday class", "lora", "B", "base")]


def test_export_neutralises_spreadsheet_formulas(tmp_path):
    store = ArenaStore(tmp_path / "arena.sqlite3")
    store.record_pair(ServedPair("p1", "d", "x", "base", "=HYPERLINK(1)", "lora", "ok", "a", "b"), "b")
    store.vote("p1", "tie", "b")
    text = store.export_csv(tmp_path / "v.csv").read_text(encoding="utf-8")
    assert "'=HYPERLINK(1)" in text and ",=HYPERLINK" not in text


# ---- statistics ----------------------------------------------------------------------------------
def mm_bradley_terry(W: np.ndarray) -> np.ndarray:
    """Reference: Hunter's (2004) MM iteration p_i <- W_i / sum_j N_ij / (p_i + p_j), run to a fixed
    point; log-strengths with mean 0. Written independently of the app's Newton fit."""
    N, wins, p = W + W.T, W.sum(1), np.ones(len(W))
    for _ in range(200_000):
        new = wins / (N / (p[:, None] + p[None, :])).sum(1)
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(np.log(new / p))) < 1e-13:
            break
        p = new
    return np.log(new) - np.log(new).mean()


HAND_MADE = [  # 4 models; every model wins and loses something, with ties and "both bad"
    *[("base", "lora", "B")] * 6, *[("base", "lora", "A")] * 2, ("lora", "base", "tie"),
    *[("full", "base", "A")] * 5, *[("full", "base", "B")] * 3, ("base", "full", "both bad"),
    *[("detox", "lora", "A")] * 3, *[("detox", "lora", "B")] * 4, ("detox", "lora", "tie"),
    *[("full", "detox", "A")] * 2, ("full", "detox", "B"), *[("lora", "full", "A")] * 4, ("lora", "full", "B"),
]


def test_bradley_terry_equals_an_independent_mm_fit():
    names = ["base", "detox", "full", "lora"]
    coded = [(names.index(a), names.index(b), v) for a, b, v in HAND_MADE]
    W = win_matrix(coded, 4)
    assert W[0, 3] == 2.5 and W[3, 0] == 6.5 and W[2, 0] == 5.5  # ties add half a win each way
    fitted, regularized = bradley_terry(W)
    assert not regularized
    np.testing.assert_allclose(fitted, mm_bradley_terry(W), atol=1e-8)
    board = {r["model"]: r for r in leaderboard(votes_of(HAND_MADE))["rows"]}
    for k, name in enumerate(names):
        assert board[name]["rating"] == pytest.approx(to_rating(mm_bradley_terry(W))[k], abs=1e-5)
        assert board[name]["rating_low"] <= board[name]["rating"] <= board[name]["rating_high"]


@pytest.mark.parametrize("wins, losses, ties", [(7, 3, 0), (1, 4, 0), (3, 1, 2)])
def test_two_models_have_the_closed_form(wins, losses, ties):
    """For two models the BT MLE is P(A beats B) = (w + t/2) / (w + l + t)."""
    triples = [("base", "lora", "A")] * wins + [("base", "lora", "B")] * losses + [("lora", "base", "tie")] * ties
    rows = {r["model"]: r for r in leaderboard(votes_of(triples))["rows"]}
    share = (wins + ties / 2) / (wins + losses + ties)
    gap = rows["base"]["rating"] - rows["lora"]["rating"]
    assert 1 / (1 + 10 ** (-gap / 400)) == pytest.approx(share, abs=1e-9)
    assert (rows["base"]["wins"], rows["base"]["losses"], rows["base"]["ties"]) == (wins, losses, ties)
    assert rows["base"]["win_rate"] == pytest.approx(wins / (wins + losses))


def test_both_bad_counts_as_a_tie_in_the_rating():
    with_ties = leaderboard(votes_of([("base", "lora", "A")] * 3 + [("base", "lora", "tie")] * 2))["rows"]
    with_bad = leaderboard(votes_of([("base", "lora", "A")] * 3 + [("base", "lora", "both bad")] * 2))["rows"]
    assert [r["rating"] for r in with_ties] == pytest.approx([r["rating"] for r in with_bad])
    assert with_bad[0]["both_bad"] == 2 and with_bad[0]["ties"] == 0


def test_lopsided_votes_fit_like_the_reference_and_absent_models_are_nan():
    W = np.array([[0, 500, 500, 0], [1, 0, 300, 0], [1, 1, 0, 0], [0, 0, 0, 0.]])  # model 3 never played
    fitted, regularized = bradley_terry(W)
    assert not regularized and math.isnan(fitted[3])
    np.testing.assert_allclose(fitted[:3], mm_bradley_terry(W[:3, :3]), atol=1e-7)


def test_a_model_that_never_wins_gets_a_finite_lowest_rating():
    board = leaderboard(votes_of([("base", "lora", "A")] * 4 + [("full", "lora", "A")] * 2 + [("base", "full", "A")]))
    assert board["regularized"] and [r["model"] for r in board["rows"]] == ["base", "full", "lora"]
    assert all(math.isfinite(r["rating"]) and math.isfinite(r["rating_low"]) for r in board["rows"])


def test_groups_that_never_met_are_ranked_apart_and_the_board_says_so():
    """base/lora and full/detox never met: no vote says which pair is stronger, so each group is
    centred on 1000, ranked apart, and the method text (shown under the board) says so."""
    votes = votes_of([("base", "lora", "A")] * 3 + [("base", "lora", "B")]
                     + [("full", "detox", "A")] * 9 + [("full", "detox", "B")] * 3)
    board = leaderboard(votes)
    assert board["groups"] == 2
    assert [(r["group"], r["model"]) for r in board["rows"]] == [(1, "base"), (1, "lora"), (2, "full"), (2, "detox")]
    for g in (1, 2):
        ratings = [r["rating"] for r in board["rows"] if r["group"] == g]
        assert sum(ratings) / 2 == pytest.approx(1000)
        assert all(r["rating_low"] <= r["rating"] <= r["rating_high"] for r in board["rows"] if r["group"] == g)
    # Within a group the closed form still holds: P(base beats lora) = 3/4.
    rows = {r["model"]: r for r in board["rows"]}
    assert 1 / (1 + 10 ** (-(rows["base"]["rating"] - rows["lora"]["rating"]) / 400)) == pytest.approx(0.75)
    assert "2 groups of models that never met" in board["method"]
    assert "group 1: base, lora; group 2: detox, full" in board["method"]
    # One vote across the groups joins them: one scale, no note.
    joined = leaderboard(votes + votes_of([("lora", "full", "tie")]))
    assert joined["groups"] == 1 and "never met" not in joined["method"]
    assert {r["group"] for r in joined["rows"]} == {1}


def test_wilson_interval_matches_the_textbook_value():
    low, high = wilson_interval(8, 10)  # Brown, Cai & DasGupta (2001): 8/10 -> [0.490, 0.943]
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_empty_leaderboard():
    assert leaderboard([]) == {"rows": [], "n_votes": 0, "regularized": False, "method": leaderboard([])["method"]}


# ---- the tab through gradio_client ---------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tiny_t5, tiny_classifier, random_adapter, dialogsum_dir, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, runs, lora=random_adapter) as (studio, url):
        yield studio, url, runs


def test_a_pair_is_blind_and_its_vote_reveals_the_models(served):
    studio, url, _ = served
    client = connect(url)
    pair = client.predict(api_name="/arena_next")
    assert set(pair) == {"pair_id", "dialogue_id", "dialogue", "summary_a", "summary_b"}
    row = next(r for r in studio.split("test") if r["id"] == pair["dialogue_id"])
    assert pair["dialogue"] == row["dialogue"]
    result = client.predict(pair["pair_id"], "B", api_name="/arena_vote")
    assert {result["model_a"], result["model_b"]} == {"base", "lora"} and result["vote"] == "B"
    prompt = build_prompt("zero-shot", row["dialogue"], tokenizer=studio.slots.tokenizer).text
    direct = studio.slots.generate([result["model_a"], result["model_b"]], [prompt], GenerationSettings())
    assert (pair["summary_a"], pair["summary_b"]) == (direct[result["model_a"]][0], direct[result["model_b"]][0])
    assert result["source_b"] == studio.slots.source(result["model_b"])
    with pytest.raises(AppError, match="already has your vote"):
        client.predict(pair["pair_id"], "A", api_name="/arena_vote")
    other = connect(url)  # another browser session cannot vote on this pair
    second = client.predict(api_name="/arena_next")
    with pytest.raises(AppError, match="was not served to this session"):
        other.predict(second["pair_id"], "A", api_name="/arena_vote")


@pytest.mark.parametrize("args, message", [
    (("made-up-pair", "A"), "pair_id 'made-up-pair' was not served"),
    ((None, "A"), "pair_id must be a string, got NoneType"),
    ((7, "A"), "pair_id must be a string, got int"),
    (("p" * 50_000, "A"), "pair_id has 50,000 characters"),
    (("PAIR", "maybe"), "vote must be one of"),
])
def test_bad_votes_through_the_api_name_the_field(served, args, message):
    client = connect(served[1])
    pair = client.predict(api_name="/arena_next")
    args = tuple(pair["pair_id"] if a == "PAIR" else a for a in args)
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/arena_vote")
    assert client.predict(pair["pair_id"], "tie", api_name="/arena_vote")["vote"] == "tie"


def test_thirty_concurrent_clients_leaderboard_session_and_export(served):
    studio, url, _ = served
    client = connect(url)
    client.predict("arena test", api_name="/arena_new_session")

    def student(k: int) -> str:
        me = connect(url)
        pair = me.predict(api_name="/arena_next")
        return me.predict(pair["pair_id"], ["A", "B", "tie", "both bad"][k % 4], api_name="/arena_vote")["vote"]

    with ThreadPoolExecutor(30) as pool:
        votes = list(pool.map(student, range(30)))
    assert sorted(votes) == sorted(["A", "B", "tie", "both bad"][k % 4] for k in range(30))
    board = client.predict("current", api_name="/arena_leaderboard")
    assert board["n_votes"] == 30 and board["class_session"]["name"] == "arena test"
    assert {r["model"] for r in board["rows"]} == {"base", "lora"}
    assert all(r["votes"] == 30 for r in board["rows"])
    assert sum(r["wins"] for r in board["rows"]) == votes.count("A") + votes.count("B")
    votes_csv, ratings_csv = client.predict("current", api_name="/arena_export")
    with open(votes_csv, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30 and len({r["browser_session"] for r in rows}) == 30
    assert Path(ratings_csv).name.startswith("arena-ratings-current-")
    client.predict("", api_name="/arena_new_session")
    assert client.predict("current", api_name="/arena_leaderboard")["n_votes"] == 0
    assert client.predict("all", api_name="/arena_leaderboard")["n_votes"] >= 30
    for bad in ("everything", ["current"], 3):
        with pytest.raises(AppError, match="scope must be one of 'current', 'all'"):
            client.predict(bad, api_name="/arena_leaderboard")
    with pytest.raises(AppError, match="scope must be one of 'current', 'all'; got 'everything'"):
        client.predict("everything", api_name="/arena_export")
    with pytest.raises(AppError, match="class session name must be a string"):
        client.predict(5, api_name="/arena_new_session")


def test_thirty_concurrent_raters_through_the_api_and_the_board_shows_the_means(served):
    """30 clients each rate both summaries of a served pair (then vote); the leaderboard's ratings
    equal the mean and t-interval computed here by hand, and the export carries every rating."""
    studio, url, _ = served
    client = connect(url)
    client.predict("rating test", api_name="/arena_new_session")

    def student(k: int) -> list[dict]:
        me = connect(url)
        pair = me.predict(api_name="/arena_next")
        out = [me.predict(pair["pair_id"], side, *(1 + (k + j + (side == "B")) % 5 for j in range(4)),
                          api_name="/arena_rate") for side in "AB"]
        me.predict(pair["pair_id"], "tie", api_name="/arena_vote")
        with pytest.raises(AppError, match="side A of pair_id .* already has your rating"):
            me.predict(pair["pair_id"], "A", 5, 5, 5, 5, api_name="/arena_rate")
        return out

    with ThreadPoolExecutor(30) as pool:
        results = [r for pair in pool.map(student, range(30)) for r in pair]
    assert len(results) == 60 and all(r["blind"] and "model" not in r for r in results)
    stored = {(r["pair_id"], r["side"]): r for r in ArenaStore(served[2] / "arena.sqlite3").ratings()}
    board = client.predict("current", api_name="/arena_leaderboard")["ratings"]
    assert board["n_ratings"] == 60 and {r["model"] for r in board["rows"]} == {"base", "lora"}
    t29 = {29: 2.045230, 59: 2.000995}  # t(0.975, df) from the printed table
    for row in board["rows"]:
        mine = [r for r in results if stored[(r["pair_id"], r["side"])]["model"] == row["model"]]
        assert row["ratings"] == len(mine)
        for c in ("relevance", "coherence", "fluency", "consistency"):
            x = [r[c] for r in mine]
            mean = sum(x) / len(x)
            half = t29[len(x) - 1] * math.sqrt(sum((v - mean) ** 2 for v in x) / (len(x) - 1)) / math.sqrt(len(x))
            assert (row[c], row[f"{c}_low"], row[f"{c}_high"]) == pytest.approx(
                (mean, max(1, mean - half), min(5, mean + half)), abs=1e-5)
    _, ratings_csv = client.predict("current", api_name="/arena_export")
    with open(ratings_csv, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 60 and {(r["pair_id"], r["side"], int(r["fluency"])) for r in rows} == {
        (spreadsheet_safe(r["pair_id"]), r["side"], r["fluency"]) for r in results}  # an id may start with "-"


@pytest.mark.parametrize("args, message", [
    (("made-up-pair", "A", 3, 3, 3, 3), "pair_id 'made-up-pair' was not served"),
    (("PAIR", "C", 3, 3, 3, 3), "side must be 'A' or 'B'"),
    (("PAIR", "A", 3, 3, 9, 3), "fluency must be a whole number from 1 .* got 9"),
    (("PAIR", "A", None, 3, 3, 3), "relevance must be a whole number"),
])
def test_bad_ratings_through_the_api_name_the_field(served, args, message):
    client = connect(served[1])
    pair = client.predict(api_name="/arena_next")
    args = tuple(pair["pair_id"] if a == "PAIR" else a for a in args)
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/arena_rate")
    assert client.predict(pair["pair_id"], "B", 1, 2, 3, 4, api_name="/arena_rate")["consistency"] == 4


def test_votes_survive_an_app_restart(served, tiny_t5, tiny_classifier, random_adapter, dialogsum_dir):
    _, url, runs = served
    client = connect(url)
    pair = client.predict(api_name="/arena_next")
    client.predict(pair["pair_id"], "A", api_name="/arena_vote")
    client.predict(pair["pair_id"], "B", 2, 3, 4, 5, api_name="/arena_rate")
    before = client.predict("all", api_name="/arena_leaderboard")
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, runs, lora=random_adapter) as (_, url2):
        after = connect(url2).predict("all", api_name="/arena_leaderboard")
        assert after["n_votes"] == before["n_votes"] and after["ratings"] == before["ratings"]


def test_one_filled_slot_says_how_to_fill_another(served, random_adapter):
    client = connect(served[1])
    client.predict("", api_name="/set_lora")
    try:
        with pytest.raises(AppError, match="at least two filled model slots.*Models in the slots"):
            client.predict(api_name="/arena_next")
    finally:
        client.predict(str(random_adapter), api_name="/set_lora")


def test_mcp_server_lists_the_arena_tools(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path):
    pytest.importorskip("mcp", reason="--mcp needs the mcp extra: pip install 'gradio[mcp]==6.31.0'")
    import httpx

    import app
    from tests.app_server import free_port

    args = app.parse_args(["--base-model", str(tiny_t5), "--toxicity-model", str(tiny_classifier), "--dataset",
                           str(dialogsum_dir), "--runs-dir", str(tmp_path), "--device", "cpu",
                           "--port", str(free_port()), "--mcp"])
    demo = app.build_demo(app.make_studio(args))
    app.launch(demo, args, prevent_thread_lock=True, quiet=True)
    try:
        schema = httpx.get(f"http://127.0.0.1:{args.port}/gradio_api/mcp/schema", timeout=30).json()
    finally:
        demo.close()
    names = {tool["name"] for tool in schema}
    assert {"arena_next", "arena_vote", "arena_rate", "arena_leaderboard", "arena_new_session", "arena_export"} <= names


@requires_chromium
def test_the_tab_in_a_browser_hides_names_until_the_vote(served, tmp_path):
    studio, url, runs = served
    store = ArenaStore(runs / "arena.sqlite3")
    before = len(store.votes())
    driver = new_driver(tmp_path / "profile")
    try:
        open_tab(driver, "Arena", url)  # opening the tab shows the first pair (a click on New pair
        # here raced it: the later of the two pairs replaced the rated one and enabled Rate again)
        first = wait_for(driver, lambda d: value(d, "#arena-summary-a textarea") and value(d, "#arena-dialogue textarea"))
        assert "base" not in driver.find_element("css selector", "#arena-reveal").text  # nothing revealed yet
        rated_before = len(store.ratings())
        for criterion, score in zip(("relevance", "coherence", "fluency", "consistency"), (4, 3, 5, 2)):
            click(driver, f"#arena-rate-a-{criterion} input[value='{score}']")
        click(driver, "#arena-rate-a")  # blind: rated before the vote
        wait_for(driver, lambda d: len(store.ratings()) == rated_before + 1)
        rating = store.ratings()[-1]
        assert (rating["side"], rating["relevance"], rating["coherence"], rating["fluency"], rating["consistency"],
                rating["blind"]) == ("A", 4, 3, 5, 2, True)
        wait_for(driver, lambda d: not d.find_element("css selector", "#arena-rate-a").is_enabled())
        click(driver, "#arena-vote-a")
        reveal = wait_for(driver, lambda d: value(d, "#arena-reveal textarea"))
        assert reveal.startswith("You chose: A is better. A was ") and "LoRA (peft)" in reveal and "Base" in reveal
        # The next pair comes at once: the vote buttons work again on a newly served pair.
        wait_for(driver, lambda d: d.find_element("css selector", "#arena-vote-a").is_enabled())
        wait_for(driver, lambda d: d.find_element("css selector", "#arena-rate-a").is_enabled())  # the new pair's
        checked = "return [...document.querySelectorAll('[id^=arena-rate-] input')].filter(e => e.checked).length"
        wait_for(driver, lambda d: d.execute_script(checked) == 0)  # the new pair's radios start unset
        votes = store.votes()
        assert len(votes) == before + 1 and votes[-1]["vote"] == "A"
        assert value(driver, "#arena-dialogue textarea") and first
        click(driver, "#arena-refresh")
        wait_for(driver, lambda d: "LoRA (peft)" in d.find_element("css selector", "#arena-board").text)
        wait_for(driver, lambda d: "Fluency" in d.find_element("css selector", "#arena-ratings").text.title())
        save_screenshot(driver, tmp_path, "screenshot-arena.png")
    finally:
        driver.quit()
