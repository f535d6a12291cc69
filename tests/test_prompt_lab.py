"""Prompt Lab: hand-checked numbers on fake slots, the best-template rule, validation, CLI and the tab's API."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from summarizer.inference.generation import GenerationSettings
from summarizer.prompt_lab.templates import MAX_TEMPLATE_CHARS, TemplateError, check_templates, fill, preset
from summarizer.prompt_lab.lab import MIN_VERDICT_N, best_template, display_table, pick_dialogues, run_lab, verdict
from summarizer.prompts import TARGET_TEMPLATE, ZERO_SHOT_TEMPLATE, count_tokens
from tests.app_server import serving
from tests.browser import new_driver, open_tab_with_numbers, requires_chromium
from tests.test_evaluation import ROWS

ROOT = Path(__file__).resolve().parents[1]
GREEDY = GenerationSettings(max_new_tokens=16)
BOOT = dict(n_resamples=500)


class FakeSlots:
    """Answers each prompt by its first word: known summaries per template, no model."""

    device, dtype = "cpu", "float32"
    answers = {"Perfect": ["the cat is on the mat", "x y"],  # = the first references: ROUGE 100
               "Close": ["the cat sat on the mat", "x y z"]}

    def __init__(self, tokenizer):
        self.tokenizer, self.calls = tokenizer, []

    def is_filled(self, slot):
        return slot == "base"

    def load(self, slots):
        pass

    def tokenizer_of(self, slot):
        return self.tokenizer

    def source(self, slot):
        return "fake/base"

    def generate(self, slots, prompts, settings, batch_size=8, on_batch=None):
        self.calls.append(list(prompts))
        out = [self.answers[p.split(":")[0]][0 if p.endswith(ROWS[0]["dialogue"]) else 1] for p in prompts]
        if on_batch:
            on_batch(len(prompts), len(prompts))
        return {s: out for s in slots}


@pytest.fixture(scope="module")
def tokenizer(tiny_t5):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tiny_t5)


def test_two_templates_on_fake_slots_give_hand_checked_numbers(tokenizer):
    slots = FakeSlots(tokenizer)
    templates = ["Perfect: {dialogue}", "Close: {dialogue}"]
    result = run_lab(slots, "base", templates, ROWS, GREEDY, **BOOT)
    t1, t2 = result.table
    # One length-sorted batch (K x N = 4 prompts <= batch size 8) holding every filled template.
    assert len(slots.calls) == 1
    assert sorted(slots.calls[0]) == sorted(fill(t, r["dialogue"]) for t in templates for r in ROWS)
    assert t1["rouge1"] == pytest.approx(100) and t1["rouge1_ci_low"] == pytest.approx(100)
    # Close: row a 5/6 against its best reference; row b "x y z" vs "x y": P 2/3, R 1 -> F 0.8.
    assert t2["rouge1"] == pytest.approx(100 * (5 / 6 + 0.8) / 2)
    assert t2["rouge2"] == pytest.approx(100 * (3 / 5 + 2 / 3) / 2)  # bigrams: 3/5 and (P 1/2, R 1)
    assert t2["rouge1_diff_vs_first"] == pytest.approx(100 * ((5 / 6 - 1) + (0.8 - 1)) / 2)
    assert t1["rouge1_diff_vs_first"] == 0 and (t1["rouge1_diff_ci_low"], t1["rouge1_diff_ci_high"]) == (0, 0)
    # Paired differences are -1/6 and -1/5: every resample lies between them.
    assert 100 * -1 / 5 - 1e-9 <= t2["rouge1_diff_ci_low"] <= t2["rouge1_diff_ci_high"] <= 100 * -1 / 6 + 1e-9
    assert t1["summary_words_mean"] == 4 and t2["summary_words_mean"] == 4.5
    assert t1["template_tokens"] == count_tokens(tokenizer, "Perfect: ")
    assert t1["prompt_tokens_mean"] == pytest.approx(sum(count_tokens(tokenizer, fill(templates[0], r["dialogue"]))
                                                         for r in ROWS) / 2)
    # T1 beats T2 on both dialogues, but two dialogues cannot show it: the exact paired test's
    # smallest p is 2 / 2**2 = 0.5, so no template is marked and the table says why.
    assert (t1["best"], t2["best"]) == (False, False) and result.meta["best"] is None
    assert result.meta["verdict"] == "no verdict" and t2["rouge1_diff_p"] == pytest.approx(0.5)
    assert display_table(result)["best (exact paired test)"].tolist() == ["no verdict: N < 6"] * 2
    out = result.outputs[1]
    assert (out["id"], out["reference_1"], out["T2_summary"]) == ("b", "x y", "x y z")
    assert out["T2_rouge1"] == pytest.approx(80)


def test_best_is_marked_only_when_its_ci_excludes_every_other(tokenizer):
    # A tie with T1 (the same answers under another name): no template is marked.
    slots = FakeSlots(tokenizer)
    slots.answers = {**slots.answers, "Same": slots.answers["Perfect"]}
    result = run_lab(slots, "base", ["Perfect: {dialogue}", "Close: {dialogue}", "Same: {dialogue}"],
                     ROWS, GREEDY, **BOOT)
    assert not any(r["best"] for r in result.table) and result.meta["best"] is None
    # The rule on its own: the top mean must beat each other template on paired CIs.
    clearly = [[0.9, 0.8, 0.85, 0.95, 0.9, 0.88], [0.5, 0.4, 0.45, 0.6, 0.5, 0.52]]
    assert best_template(clearly, {"n_resamples": 500, "confidence": 0.95, "seed": 0}) == 0
    mixed = [[0.9, 0.1, 0.8, 0.2, 0.7, 0.3], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]]  # higher mean, CI spans 0
    assert best_template(mixed, {"n_resamples": 500, "confidence": 0.95, "seed": 0}) is None
    three = [clearly[0], clearly[1], [0.9, 0.8, 0.85, 0.95, 0.9, 0.87]]  # excludes one but not the other
    assert best_template(three, {"n_resamples": 500, "confidence": 0.95, "seed": 0}) is None
    assert best_template(clearly[:1], {"n_resamples": 10, "confidence": 0.95, "seed": 0}) is None


BOOT95 = {"n_resamples": 500, "confidence": 0.95, "seed": 0}


def test_no_verdict_below_the_n_the_exact_test_needs():
    """One template better on every dialogue: marked from N = 6 (p = 2/64), never below."""
    assert MIN_VERDICT_N == 6
    for n in range(1, 9):
        better, worse = [0.6 + 0.01 * i for i in range(n)], [0.2 + 0.01 * i for i in range(n)]
        index, why = verdict([worse, better], BOOT95)
        assert (index, why) == ((1, "best") if n >= MIN_VERDICT_N else (None, "no verdict")), n


def _se(rate: float, sims: int) -> float:
    return (rate * (1 - rate) / sims) ** 0.5


def test_false_best_rate_of_equal_templates_by_simulation():
    """Equal templates (calibration's model): the rule before issue 17 marked one in far more than
    5% of runs at small N; the exact test marks none below N = 6 and at most 5% from there (up to
    2.5 Monte Carlo standard errors of the simulated share)."""
    from summarizer.prompt_lab.calibration import false_best_rate

    sims = 1000
    for n in (2, 3, 5):
        assert false_best_rate("bootstrap", 2, n, 300) > 0.05 + 2.5 * _se(0.05, 300), n
        assert false_best_rate("exact", 2, n, sims) == 0, n
    for n in (6, 8, 12, 20):  # 20: Monte Carlo permutations (above 16 dialogues)
        rate = false_best_rate("exact", 2, n, sims, seed=n)
        assert 0 < rate <= 0.05 + 2.5 * _se(0.05, sims), (n, rate)
    for n in (6, 12):
        assert false_best_rate("exact", 6, n, 300, seed=n) <= 0.05 + 2.5 * _se(0.05, 300), n


def test_false_best_size_is_at_most_five_percent_exactly():
    """The ★ rate of two equal templates is exactly the share of sign patterns of the per-dialogue
    differences that get a verdict (each pattern equally likely under the null): at most 5%."""
    import itertools

    import numpy as np

    rng = np.random.default_rng(0)
    for n in (6, 7, 8, 10):
        size = rng.uniform(0.01, 0.3, size=n)  # |a_i - b_i|, no ties
        marked = 0
        for signs in itertools.product((-1, 1), repeat=n):
            d = size * np.array(signs)
            marked += best_template([list(0.5 + d / 2), list(0.5 - d / 2)], BOOT95) is not None
        assert 0 < marked / 2 ** n <= 0.05, (n, marked)


def test_differences_to_t1_are_holm_adjusted_and_the_interval_says_unadjusted(tokenizer):
    """Six equal templates: the unadjusted ΔROUGE-1 CIs call one 'different from T1' in far more
    than 5% of runs; Holm-adjusted exact p < 0.05 does so in at most 5% (within Monte Carlo error)."""
    from summarizer.prompt_lab.calibration import false_differs_rate

    assert false_differs_rate("none", 6, 12, 300) > 0.05 + 2.5 * _se(0.05, 300)
    assert false_differs_rate("holm", 6, 12, 300) <= 0.05 + 2.5 * _se(0.05, 300)
    slots = FakeSlots(tokenizer)
    result = run_lab(slots, "base", ["Perfect: {dialogue}", "Close: {dialogue}"], ROWS, GREEDY, **BOOT)
    shown = display_table(result)
    assert "ΔROUGE-1 vs T1 [95% CI, unadjusted]" in shown.columns
    assert shown["p vs T1 (exact, Holm-adjusted)"].tolist() == ["", "0.500"]


@pytest.mark.parametrize("take_turns", [True, False])
def test_other_requests_get_the_model_between_batches(tiny_t5, take_turns):
    """In turns (the Prompt Lab's way), a request that waits for the model runs before the lab's
    last batch; in one pass (Evaluate's way) it waits for the whole pass."""
    import threading
    import time

    from summarizer.inference.slots import ModelSlots
    from summarizer.inference.slot_config import SlotConfig

    slots = ModelSlots(SlotConfig(base=str(tiny_t5)))
    log, waiting = [], threading.Event()
    generate = slots.generate

    def logged(group, prompts, *args, **kwargs):
        out = generate(group, prompts, *args, **kwargs)
        log.append(threading.current_thread().name)
        return out

    slots.generate = logged
    other = threading.Thread(name="other", target=lambda: (waiting.set(), slots.generate(["base"], ["hi"], GREEDY)))

    def on_progress(frac, message):
        if message.startswith("Generating") and not other.is_alive() and not waiting.is_set():
            other.start()
            waiting.wait()
            time.sleep(0.3)  # let the other request block on the model's lock

    run_lab(slots, "base", ["A: {dialogue}", "B: {dialogue}"], ROWS, GREEDY, batch_size=1, n_resamples=20,
            on_progress=on_progress, take_turns=take_turns)
    other.join(timeout=60)
    lab_calls = [i for i, who in enumerate(log) if who != "other"]
    if take_turns:
        assert len(lab_calls) == 4 and log.index("other") < lab_calls[-1]  # served between lab batches
    else:
        assert len(lab_calls) == 1 and log[-1] == "other"  # served after the whole pass


def test_cancel_stops_between_batches(tokenizer):
    from summarizer.evaluation.evaluate import EvaluationCancelled

    slots, asked = FakeSlots(tokenizer), []
    stop = lambda: asked.append(1) or True
    with pytest.raises(EvaluationCancelled):
        run_lab(slots, "base", ["Perfect: {dialogue}", "Close: {dialogue}"], ROWS, GREEDY, batch_size=1,
                should_stop=stop)
    assert len(slots.calls) == 1 and len(asked) == 1  # one batch of four, then stopped


def test_templates_are_validated_with_the_field_named():
    with pytest.raises(TemplateError, match=r"Template T2 has no \{dialogue\}"):
        check_templates(["{dialogue}", "Summarize it."])
    with pytest.raises(TemplateError, match=r"Template T1 has a brace other than .*'\{name\}'"):
        check_templates(["Hi {name}: {dialogue}"])
    assert check_templates(["Literal {{x}}: {dialogue}"]) == ["Literal {{x}}: {dialogue}"]
    assert fill("Literal {{x}}: {dialogue}", "a {b}") == "Literal {x}: a {b}"
    with pytest.raises(TemplateError, match=f"Template T1 has {MAX_TEMPLATE_CHARS + 1:,} characters"):
        check_templates(["{dialogue}" + "x" * (MAX_TEMPLATE_CHARS + 1 - 10)])
    with pytest.raises(TemplateError, match="at most 6"):
        check_templates(["{dialogue}"] * 7)
    with pytest.raises(TemplateError, match="Template T3 is empty"):
        check_templates(["{dialogue}", "{dialogue}", " "])
    with pytest.raises(ValueError, match=r"Dialogues \(N\) must be 1..200"):
        pick_dialogues(500, 201, 0)
    assert pick_dialogues(500, 5, 1) == pick_dialogues(500, 5, 1) != pick_dialogues(500, 5, 2)


class AnySlots(FakeSlots):
    """Answers every prompt with one summary and counts the prompts generated."""

    def generate(self, slots, prompts, settings, batch_size=8, on_batch=None):
        self.calls.append(list(prompts))
        return {s: ["two people talk"] * len(prompts) for s in slots}


def _lab_handler(tokenizer, dataset, tmp_path, monkeypatch):
    """The Run button's handler over a Studio whose slots are :class:`AnySlots` (no model)."""
    from types import SimpleNamespace

    from ui.context import Studio
    from ui.prompt_lab import _runner

    monkeypatch.setenv("STUDIO_RESULTS_DIR", str(tmp_path / "results"))
    slots = AnySlots(tokenizer)
    run = _runner(Studio(slots, None, str(dataset), tmp_path / "runs"))
    request = SimpleNamespace(session_hash="test")
    return slots, lambda seed: run("base", "test", 2, seed, "{dialogue}", "", "", "", "", "", *SETTINGS,
                                   request=request, progress=lambda *a, **k: None)


def test_handler_takes_a_whole_float_seed_and_refuses_a_bad_one_before_generating(tokenizer, dialogsum_dir,
                                                                                 tmp_path, monkeypatch):
    import gradio as gr

    slots, run = _lab_handler(tokenizer, dialogsum_dir, tmp_path, monkeypatch)
    status, *_, files, _table = run("7.0")  # as an API client may send it
    assert "picked by seed 7)" in status and len(slots.calls) == 1
    written = {Path(f).name: f for f in files}
    assert json.loads(Path(written["prompt_lab.json"]).read_text())["dialogue_seed"] == 7
    for bad in ("7.5", "seven", -1):
        slots.calls.clear()
        with pytest.raises(gr.Error, match="Dialogue seed must be a whole number"):
            run(bad)
        assert slots.calls == []  # refused before any generation


def test_cancel_reaches_the_running_lab_whatever_other_clients_send(tokenizer, dialogsum_dir, tmp_path, monkeypatch):
    """5000 Cancel requests from other sessions keep no flag; this session's Cancel stops its run."""
    import threading
    from types import SimpleNamespace

    import ui.prompt_lab as lab_ui
    from summarizer.evaluation.evaluate import EvaluationCancelled
    from ui.context import Studio

    monkeypatch.setenv("STUDIO_RESULTS_DIR", str(tmp_path / "results"))
    started, release = threading.Event(), threading.Event()

    def blocked_lab(*args, should_stop, **kwargs):  # stands in for a long run
        started.set()
        release.wait()
        if should_stop():
            raise EvaluationCancelled("cancelled")
        raise AssertionError("finished without seeing the Cancel")

    monkeypatch.setattr(lab_ui, "run_lab", blocked_lab)
    studio = Studio(AnySlots(tokenizer), None, str(dialogsum_dir), tmp_path / "runs")
    run, cancel = lab_ui._runner(studio), lab_ui._canceller(studio)
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(run(
        "base", "test", 2, 0, "{dialogue}", "", "", "", "", "", *SETTINGS,
        request=SimpleNamespace(session_hash="mine"), progress=lambda *a, **k: None)))
    worker.start()
    try:
        assert started.wait(60)
        for i in range(5000):
            assert cancel(SimpleNamespace(session_hash=f"x{i}")).startswith("Nothing to cancel")
        assert list(studio._cancel_flags) == ["prompt-lab:mine"]
        assert cancel(SimpleNamespace(session_hash="mine")).startswith("Cancelling")
    finally:
        release.set()
        worker.join()
    assert outcome[0][0] == "Prompt Lab run cancelled." and studio._cancel_flags == {}


def test_presets_are_the_course_templates(dialogsum_dir):
    from summarizer.data import load_split

    assert preset("zero-shot") == ZERO_SHOT_TEMPLATE == "Summarize the following conversation.\n\n{dialogue}\n\nSummary: "
    assert preset("what-was-going-on") == TARGET_TEMPLATE == "Dialogue:\n\n{dialogue}\n\nWhat was going on?\n"
    train = load_split(dialogsum_dir, "train")
    one = preset("one-shot", train)
    assert check_templates([one]) and one.endswith(TARGET_TEMPLATE)
    assert fill(one, "D").startswith(f"Dialogue:\n\n{train[40]['dialogue']}\n\nWhat was going on?\n{train[40]['references'][0]}")
    assert check_templates([preset("few-shot", train)])


def test_cli_help_and_run(tiny_t5, dialogsum_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    help_text = subprocess.run([sys.executable, "-m", "summarizer.prompt_lab", "--help"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120).stdout
    for flag in ("--template", "--preset", "--model", "--n", "--dialogue-seed", "--strategy", "--out"):
        assert flag in help_text
    cmd = [sys.executable, "-m", "summarizer.prompt_lab", "--base-model", str(tiny_t5), "--dataset", str(dialogsum_dir),
           "--preset", "zero-shot", "--template", "Sum up: {dialogue}", "--n", "3", "--max-new-tokens", "8",
           "--bootstrap", "100", "--out", str(tmp_path), "--offline"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import pandas as pd
    table = pd.read_csv(tmp_path / "prompt_lab.csv")
    assert list(table["template"]) == ["T1", "T2"] and (table["n_dialogues"] == 3).all()
    assert len(pd.read_csv(tmp_path / "prompt_lab_outputs.csv")) == 3
    bad = subprocess.run(cmd[:-3] + ["--offline", "--template", "no placeholder"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and "Template T3 has no {dialogue}" in bad.stderr


@pytest.fixture(scope="module")
def app_url(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory):
    import gradio as gr

    from summarizer.inference.slots import ModelSlots
    from summarizer.inference.slot_config import SlotConfig
    from summarizer.toxicity import ToxicityScorer
    from ui.evaluate import predictions_upload
    from ui import prompt_lab
    from ui.context import Studio

    studio = Studio(ModelSlots(SlotConfig(base=str(tiny_t5))), ToxicityScorer(str(tiny_classifier)),
                    str(dialogsum_dir), tmp_path_factory.mktemp("runs"))
    with gr.Blocks() as demo:
        with gr.Tabs():
            with gr.Tab("Evaluate", id="evaluate"):
                predictions_upload.build(studio)
            with gr.Tab("Prompt Lab", id="prompt-lab"):
                prompt_lab.build(studio)
    with serving(demo, tmp_path_factory.mktemp("results")) as url:
        yield url


SETTINGS = (8, 0, "greedy", 0.7, 50, 1.0, 4, 42)  # max/min new tokens, strategy, temperature, top-k, top-p, beams, seed


def test_api_prompt_lab_returns_table_chart_outputs_and_files(app_url):
    from gradio_client import Client

    templates = (ZERO_SHOT_TEMPLATE, "", "Dialogue:\n\n{dialogue}\n\nWhat was going on?\n", "", "", "")
    status, table, chart, outputs, files = Client(app_url, verbose=False).predict(
        "base", "test", 3, 7, *templates, *SETTINGS, api_name="/prompt_lab")
    assert "3 dialogues" in status and "seed 7" in status
    assert [h.split()[0] for h in table["headers"]] == ["Measure", "T1", "T3"]  # names keep the box numbers
    assert table["data"][0][0] == "rouge1 [95% CI]"  # one row per measure, one column per template
    assert chart["type"] == "plotly" and '"error_y"' in chart["plot"]
    assert len(outputs["data"]) == 3 and {"T1_summary", "T3_summary", "reference_1"} <= set(outputs["headers"])
    assert sorted(Path(f).name for f in files) == ["prompt_lab.csv", "prompt_lab.json", "prompt_lab_outputs.csv"]


def test_api_prompt_lab_names_the_bad_field(app_url):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    with pytest.raises(AppError, match=r"Template T2 has no \{dialogue\}"):
        client.predict("base", "test", 2, 0, "{dialogue}", "Summarize.", "", "", "", "", *SETTINGS,
                       api_name="/prompt_lab")
    with pytest.raises(AppError, match="max new tokens"):
        client.predict("base", "test", 2, 0, "{dialogue}", "", "", "", "", "", 0, *SETTINGS[1:],
                       api_name="/prompt_lab")
    with pytest.raises(AppError, match="lora slot is empty"):
        client.predict("lora", "test", 2, 0, "{dialogue}", "", "", "", "", "", *SETTINGS, api_name="/prompt_lab")


def test_api_score_predictions_upload(app_url, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    good = tmp_path / "mine.csv"
    good.write_text("id,mine\ntest_0,A memo about messaging.\ntest_1,Two people talk.\n")
    client = Client(app_url, verbose=False)
    status, table, chart, files = client.predict(handle_file(str(good)), "test", False, api_name="/score_predictions")
    assert "2 dialogues" in status and table["headers"] == ["Metric", "mine"]  # as the Evaluate table
    assert "ROUGE-1 lab-comparable [95% CI]" in [row[0] for row in table["data"]]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,mine\nnope_1,x\n")
    with pytest.raises(AppError, match="Predictions file: .*'nope_1'"):
        client.predict(handle_file(str(bad)), "test", False, api_name="/score_predictions")


@requires_chromium
def test_browser_runs_the_prompt_lab_and_shows_table_chart_and_outputs(app_url, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver = new_driver(tmp_path / "chromium-profile", size="1400,2600")
    try:
        open_tab_with_numbers(driver, app_url, "Prompt Lab", {"lab-n": 4})
        wait = WebDriverWait(driver, 180)
        driver.find_element(By.ID, "lab-run").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#lab-chart .js-plotly-plot")))
        wait.until(lambda d: "T2" in d.find_element(By.ID, "lab-table").text)
        time.sleep(1)  # let plotly finish drawing
        assert "T1" in driver.find_element(By.ID, "lab-table").text
        driver.set_window_size(1400, 1000)  # a projector: the templates table needs no sideways scrolling
        time.sleep(1)
        assert driver.execute_script(
            "const t = document.querySelector('#lab-table table').parentElement;"
            "return t.scrollWidth <= t.clientWidth + 1 && document.documentElement.scrollWidth <= window.innerWidth")
        assert "T1_summary" in driver.find_element(By.ID, "lab-outputs").text
        assert "4 dialogues" in driver.find_element(By.ID, "lab-status").text
        shot = Path(os.environ.get("STUDIO_SCREENSHOTS") or tmp_path) / "prompt-lab-tab.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
