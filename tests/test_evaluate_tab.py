"""The Evaluate tab, launched for real: the /evaluate API through gradio_client, and one browser run.

Only this tab is built (inside a Blocks with one other tab to switch from), so these tests do not
depend on the other tabs.
"""
import os
import time
from pathlib import Path

import pytest

from tests.app_server import serving
from tests.browser import new_driver, open_tab_with_numbers, requires_chromium



@pytest.fixture(scope="module")
def app_url(tiny_t5, random_adapter, tiny_classifier, dialogsum_dir, tmp_path_factory):
    import gradio as gr

    from summarizer.inference.slots import ModelSlots
    from summarizer.inference.slot_config import SlotConfig
    from summarizer.toxicity import ToxicityScorer
    from ui.evaluate import tab as evaluate
    from ui.context import Studio

    studio = Studio(ModelSlots(SlotConfig(base=str(tiny_t5), detox=str(random_adapter))),
                    ToxicityScorer(str(tiny_classifier)), str(dialogsum_dir), tmp_path_factory.mktemp("runs"))
    with gr.Blocks() as demo:
        with gr.Tabs():
            with gr.Tab("Home", id="home"):
                gr.Markdown("Another tab")
            with gr.Tab("Evaluate", id="evaluate"):
                evaluate.build(studio)
    with serving(demo, tmp_path_factory.mktemp("results")) as url:
        yield url


def test_api_evaluate_returns_table_sorted_predictions_and_files(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    status, table, chart, tox, preds, files = client.predict(["base", "detox"], 3, "test", 12, api_name="/evaluate")
    assert "3 dialogues" in status and "summary alone" in status
    # One row per metric, one column per model (fits a 1400 px projector).
    assert table["headers"] == ["Metric", "Base (original)", "PPO detox"]
    metrics = [r[0] for r in table["data"]]
    # The course labs' protocol comes first, for every ROUGE type, with the intervals; best over
    # the references follows and is never below it.
    assert metrics[:4] == [f"{n} lab-comparable [95% CI]" for n in ("ROUGE-1", "ROUGE-2", "ROUGE-L", "ROUGE-Lsum")]
    assert "BLEU" in metrics and len(metrics) == 21
    for name in ("ROUGE-1", "ROUGE-2", "ROUGE-L", "ROUGE-Lsum"):
        lab, best = (table["data"][metrics.index(m)] for m in (f"{name} lab-comparable [95% CI]", f"{name} (best ref.)"))
        assert all(float(lab[k].split(" [")[0]) <= float(best[k]) for k in (1, 2))
    assert "Which ROUGE to compare" in status and "Intervals, differences and the chart use lab-comparable" in status
    delta = table["data"][metrics.index("ΔROUGE-1 vs base (lab-comparable) [95% CI]")]
    assert delta[1] == "" and delta[2].count("[") == 1  # no difference of base with itself
    assert chart["type"] == "plotly" and '"error_y"' in chart["plot"]
    # The detox chart and the per-dialogue table come as updates: visibility and title change.
    assert tox["visible"] and "before (base) vs after (detox)" in tox["value"]["plot"]
    assert preds["label"].startswith("Per-dialogue predictions: largest PPO detox reward change vs base first")
    preds = preds["value"]
    assert preds["headers"] == ["Dialogue", "Model", "Summary", "ROUGE-1", "P(hate)", "Reward", "Δ reward vs base"]
    assert [r[1] for r in preds["data"]] == ["Base (original)", "PPO detox"] * 3  # one row per dialogue and model
    change = [r[6] for r in preds["data"][1::2]]
    assert len(change) == 3 and change == sorted(change, reverse=True)  # largest change first
    assert all(r[6] == "" for r in preds["data"][0::2])  # base vs itself: no change
    assert sorted(Path(f).name for f in files) == ["predictions.csv", "results.csv", "results.json"]


def test_api_base_alone_draws_no_detox_chart(app_url):
    from gradio_client import Client

    status, table, chart, tox, preds, files = Client(app_url, verbose=False).predict(
        ["base"], 2, "test", 8, api_name="/evaluate")
    assert table["headers"] == ["Metric", "Base (original)"]
    assert tox["visible"] is False and tox.get("value") is None
    assert "in dataset order" in preds["label"] and "detox" not in preds["label"]
    assert [r[0] for r in preds["value"]["data"]] == ["test_0", "test_1"]  # nothing to sort by


def _equal_reference_rows():
    """Two dialogues with two references each (as every DialogSum split has equal counts)."""
    return [{"id": "a", "dialogue": "d a", "references": ["the cat is on the mat", "a cat sat there"]},
            {"id": "b", "dialogue": "d b", "references": ["he paid the bill. she left.", "she left early"]}]


def test_results_table_shows_the_lab_protocol_for_every_rouge_type_first():
    """Under the tab's rule (lab) each ROUGE type's lab-comparable figure leads, with the interval of
    its per-dialogue form; ROUGE-2 best over the references reads higher than the labs' figure."""
    from summarizer.evaluation.evaluate import score_summaries
    from summarizer.evaluation.rouge import PROTOCOLS_NOTE, score_lab
    from ui.evaluate.tab import TAB_RULE, metrics_by_model

    rows = _equal_reference_rows()
    summaries = ["the cat sat on the mat", "she left early. he paid."]
    result = score_summaries(rows, {"mine": summaries}, None, rule=TAB_RULE, n_resamples=200)
    r = result.results[0]
    lab = score_lab(summaries, [x["references"] for x in rows])
    for k in ("rouge1", "rouge2", "rougeL", "rougeLsum"):  # equal reference counts: the two forms agree
        assert r[f"{k}_lab"] == pytest.approx(lab[k]) and r[f"{k}_ci_low"] <= lab[k] <= r[f"{k}_ci_high"]
    assert r["rouge2_best"] > r["rouge2_lab"] + 10
    table = metrics_by_model(result.results)
    shown = dict(zip(table["Metric"], table["mine"]))
    assert shown["ROUGE-2 lab-comparable [95% CI]"].startswith(f"{lab['rouge2']:.1f} [")
    assert shown["ROUGE-2 (best ref.)"] == f"{r['rouge2_best']:.1f}"
    assert list(shown)[:4] == ["ROUGE-1 lab-comparable [95% CI]", "ROUGE-2 lab-comparable [95% CI]",
                               "ROUGE-L lab-comparable [95% CI]", "ROUGE-Lsum lab-comparable [95% CI]"]
    assert all(w in PROTOCOLS_NOTE for w in ("Lab-comparable", "Best ref.", "mean over refs", "7.60"))


def test_evaluate_and_upload_default_to_the_lab_protocol(tmp_path, monkeypatch):
    """The Evaluate button and the upload score under the labs' protocol, not best over references."""
    from contextlib import contextmanager
    from types import SimpleNamespace

    import summarizer.evaluation.evaluate
    from ui.evaluate import predictions_upload
    from ui.evaluate import tab

    seen = {}

    def record(*args, rule="best", **kwargs):
        seen.setdefault("rule", []).append(rule)
        raise ValueError("stop here")

    monkeypatch.setattr(tab, "evaluate", record)
    rows = _equal_reference_rows()

    @contextmanager
    def running(key):
        yield SimpleNamespace(is_set=lambda: False)

    studio = SimpleNamespace(slots=SimpleNamespace(is_filled=lambda s: True), toxicity=None, max_input_tokens=512,
                             split=lambda name: _Split(rows), running=running)
    with pytest.raises(Exception, match="stop here"):
        tab._runner(studio)(["base"], 2, "test", 16, SimpleNamespace(session_hash="s"))
    monkeypatch.setattr(summarizer.evaluation.evaluate, "score_summaries", record)
    monkeypatch.setattr(predictions_upload, "_tokenizer", lambda studio: (None, "not needed here"))
    upload = tmp_path / "mine.csv"
    upload.write_text("id,mine\na,x\nb,y\n")
    with pytest.raises(ValueError, match="stop here"):
        predictions_upload.score_file(SimpleNamespace(split=lambda name: rows, toxicity=None, dataset="fake"),
                                      str(upload), "test", False)
    assert seen["rule"] == ["lab", "lab"]


class _Split(list):
    """A split stand-in with datasets' ``select``."""

    def select(self, indices):
        return [self[i] for i in indices]


def test_per_dialogue_title_says_what_it_is_sorted_by():
    import pandas as pd

    from ui.evaluate.tab import sorted_predictions

    frame = pd.DataFrame({"id": ["a", "b"], "base_reward": [0.0, 0.0], "lora_reward_change": [0.1, 0.5]})
    table, title = sorted_predictions(frame)
    assert list(table["id"]) == ["b", "a"] and "largest LoRA (peft) reward change vs base first" in title
    table, title = sorted_predictions(frame[["id", "base_reward"]])
    assert list(table["id"]) == ["a", "b"] and "in dataset order" in title and "detox" not in title


def test_api_names_empty_slot(app_url):
    from gradio_client import Client

    with pytest.raises(Exception, match="no model yet"):
        Client(app_url, verbose=False).predict(["lora"], 2, "test", 8, api_name="/evaluate")


# Elements inside the results table that scroll sideways (scrollWidth > clientWidth), and header
# cells whose text takes more than one line (a word broken over lines, as "ROUG/E-2" was).
LAYOUT_JS = """
const root = document.querySelector(arguments[0]);
const wide = [...root.querySelectorAll('*')].filter(e => {
    const s = getComputedStyle(e);
    return ['auto', 'scroll'].includes(s.overflowX) && e.scrollWidth > e.clientWidth + 1;
}).map(e => e.className + ' ' + e.scrollWidth + '>' + e.clientWidth);
const lines = th => {  // distinct line tops of the header's own text (not its sort buttons)
    const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
    const tops = new Set();
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        if (!n.textContent.trim()) continue;
        const range = document.createRange();
        range.selectNodeContents(n);
        for (const r of range.getClientRects()) if (r.width > 0) tops.add(Math.round(r.top));
    }
    return tops.size;
};
const multiLine = [...root.querySelectorAll('thead th')].filter(th => lines(th) > 1)
    .map(th => th.innerText + ': ' + lines(th) + ' lines');
const headers = [...root.querySelectorAll('thead th')].map(th => th.innerText.trim());
return {wide, multiLine, headers, pageWide: document.documentElement.scrollWidth > window.innerWidth};
"""


def table_layout(driver, css: str = "#evaluate-results") -> dict:
    return driver.execute_script(LAYOUT_JS, css)


@requires_chromium
def test_browser_runs_an_evaluation_and_the_table_fits_1400px(app_url, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver = new_driver(tmp_path / "chromium-profile", size="1400,1000")
    try:
        open_tab_with_numbers(driver, app_url, "Evaluate", {"evaluate-n": 3, "evaluate-max-new": 12})
        wait = WebDriverWait(driver, 120)
        driver.find_element(By.ID, "evaluate-run").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#evaluate-chart .js-plotly-plot")))
        wait.until(lambda d: "PPO detox" in d.find_element(By.ID, "evaluate-results").text)
        time.sleep(1)  # let plotly finish drawing
        text = driver.find_element(By.ID, "evaluate-results").text
        assert "Base (original)" in text and "ROUGE-2 (best ref.)" in text
        assert "3 dialogues" in driver.find_element(By.TAG_NAME, "body").text
        layout = table_layout(driver)
        assert layout["headers"][:3] == ["Metric", "Base (original)", "PPO detox"]
        assert layout["wide"] == [] and layout["multiLine"] == [] and not layout["pageWide"], layout
        per_dialogue = table_layout(driver, "#evaluate-predictions")
        assert per_dialogue["wide"] == [] and per_dialogue["multiLine"] == [], per_dialogue
        title = driver.find_element(By.ID, "evaluate-predictions").text
        assert "largest PPO detox reward change vs base first" in title
        assert driver.find_element(By.ID, "evaluate-toxicity").is_displayed()
        driver.execute_script("document.querySelector('#evaluate-results').scrollIntoView({block: 'start'});"
                              "window.scrollBy(0, -120);")
        folder = Path(os.environ.get("STUDIO_SCREENSHOT_DIR") or tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(folder / "screenshot-evaluate.png"))
    finally:
        driver.quit()


def test_cancel_flags_live_on_each_studio(tiny_t5, tiny_classifier, tmp_path):
    from summarizer.inference.slots import ModelSlots
    from summarizer.inference.slot_config import SlotConfig
    from summarizer.toxicity import ToxicityScorer
    from ui.evaluate import tab as evaluate
    from ui.context import Studio

    def studio():
        return Studio(ModelSlots(SlotConfig(base=str(tiny_t5))), ToxicityScorer(str(tiny_classifier)), "x", tmp_path)

    one, two = studio(), studio()
    with one.running("session-a") as flag:
        assert one.request_cancel("session-a") and flag.is_set() and not two.request_cancel("session-a")
    assert not one.request_cancel("session-a") and one._cancel_flags == {}  # gone once the job ends
    with one.running(None) as flag:
        assert one.request_cancel("api") and flag.is_set() and not hasattr(evaluate, "_cancel_flags")



def _upload_studio(n_rows: int):
    """A stand-in Studio for the upload: ``n_rows`` train dialogues, no toxicity, no model."""
    from types import SimpleNamespace

    rows = [{"id": f"train_{i}", "dialogue": f"#Person1#: hello {i}", "references": ["hi"]} for i in range(n_rows)]
    return SimpleNamespace(split=lambda name: rows, toxicity=None, dataset="fake", slots=None)


def _predictions_csv(path: Path, n_dialogues: int, n_models: int) -> str:
    header = "id," + ",".join(f"m{j}" for j in range(n_models))
    lines = [f"train_{i}," + ",".join(["a summary"] * n_models) for i in range(n_dialogues)]
    path.write_text("\n".join([header, *lines]) + "\n")
    return str(path)


def test_upload_over_an_evaluate_runs_size_is_refused_before_scoring(tmp_path, monkeypatch):
    """An upload scores at most as many summaries as an Evaluate run (its dialogue cap x every slot)."""
    import summarizer.evaluation.evaluate
    from summarizer.inference.slot_config import SLOTS
    from summarizer.evaluation.predictions_file import PredictionsFileError
    from ui.evaluate import predictions_upload
    from ui.evaluate.tab import MAX_DIALOGUES

    scored = []

    def no_scoring(rows, summaries, *args, **kwargs):
        scored.append(len(rows) * len(summaries))
        raise RuntimeError("scoring reached")

    monkeypatch.setattr(summarizer.evaluation.evaluate, "score_summaries", no_scoring)
    monkeypatch.setattr(predictions_upload, "_tokenizer", lambda studio: (None, "not needed here"))
    studio = _upload_studio(MAX_DIALOGUES + 1)
    too_many = _predictions_csv(tmp_path / "big.csv", MAX_DIALOGUES + 1, len(SLOTS))
    with pytest.raises(PredictionsFileError, match=rf"{MAX_DIALOGUES + 1} dialogues x {len(SLOTS)} model columns"
                                                   rf".*at most {MAX_DIALOGUES * len(SLOTS):,} per file"
                                                   r".*Split the file, keep fewer model columns.*--predictions"):
        predictions_upload.score_file(studio, too_many, "train", False)
    assert scored == []  # refused before any scoring
    at_cap = _predictions_csv(tmp_path / "at_cap.csv", MAX_DIALOGUES, len(SLOTS))
    with pytest.raises(RuntimeError, match="scoring reached"):
        predictions_upload.score_file(studio, at_cap, "train", False)
    assert scored == [MAX_DIALOGUES * len(SLOTS)]


def test_uploads_read_the_base_tokenizer_once_and_say_when_tokens_are_not_counted(tiny_t5, dialogsum_dir, tmp_path,
                                                                                 monkeypatch):
    from transformers import AutoTokenizer

    from summarizer.inference.slots import ModelSlots
    from summarizer.inference.slot_config import SlotConfig
    from ui.evaluate import predictions_upload
    from ui.context import Studio

    monkeypatch.setenv("STUDIO_RESULTS_DIR", str(tmp_path / "results"))
    loads, real = [], AutoTokenizer.from_pretrained  # counted wherever it is called from
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", lambda source, **kw: loads.append(str(source)) or real(source, **kw))
    file = tmp_path / "mine.csv"
    file.write_text("id,mine\ntest_0,A memo about messaging.\ntest_1,Two people talk.\n")
    studio = Studio(ModelSlots(SlotConfig(base=str(tiny_t5))), None, str(dialogsum_dir), tmp_path / "runs")
    for _ in range(2):
        status, *_, results = predictions_upload.score_file(studio, str(file), "test", False)
        assert "counted with the base model's tokenizer" in status and results[0]["gen_tokens_mean"] > 0
    assert loads == [str(tiny_t5)]  # two uploads, one tokenizer load, no model load
    assert not studio.slots.is_loaded("base")

    no_tokenizer = tmp_path / "no-tokenizer"  # a base whose tokenizer cannot be read
    no_tokenizer.mkdir()
    studio = Studio(ModelSlots(SlotConfig(base=str(no_tokenizer))), None, str(dialogsum_dir), tmp_path / "runs")
    status, *_, results = predictions_upload.score_file(studio, str(file), "test", False)
    assert f"Summary tokens were not counted (The base slot needs a model folder with config.json; {no_tokenizer} has none" \
        in status  # checked by kind before any load (summarizer.inference.model_sources.check_kind)
    assert "counted with" not in status and results[0]["gen_tokens_mean"] != results[0]["gen_tokens_mean"]  # NaN


def test_cancel_reaches_the_running_evaluation_whatever_other_clients_send(tiny_t5, tiny_classifier,
                                                                          dialogsum_dir, tmp_path, monkeypatch):
    """5000 Cancel requests from other sessions keep no flag and do not lose the running one's."""
    import threading
    from types import SimpleNamespace

    from summarizer.evaluation.evaluate import EvaluationCancelled
    from summarizer.inference.slots import ModelSlots
    from summarizer.inference.slot_config import SlotConfig
    from summarizer.toxicity import ToxicityScorer
    from ui.evaluate import tab as evaluate
    from ui.context import Studio

    studio = Studio(ModelSlots(SlotConfig(base=str(tiny_t5))), ToxicityScorer(str(tiny_classifier)),
                    str(dialogsum_dir), tmp_path)
    started, release, outcome = threading.Event(), threading.Event(), []

    def blocked_evaluation(*args, should_stop, **kwargs):  # stands in for a long evaluation
        started.set()
        release.wait()
        if should_stop():
            raise EvaluationCancelled("cancelled")
        return "finished without seeing the Cancel"

    monkeypatch.setattr(evaluate, "evaluate", blocked_evaluation)
    run, cancel = evaluate._runner(studio), evaluate._canceller(studio)
    worker = threading.Thread(target=lambda: outcome.append(
        run(["base"], 2, "test", 16, SimpleNamespace(session_hash="running"), progress=lambda *a, **k: None)))
    worker.start()
    try:
        assert started.wait(60)
        for i in range(5000):
            assert cancel(SimpleNamespace(session_hash=f"x{i}")).startswith("Nothing to cancel")
        assert list(studio._cancel_flags) == ["running"]
        assert cancel(SimpleNamespace(session_hash="running")).startswith("Cancelling")
    finally:
        release.set()
        worker.join()
    assert outcome[0][0] == "Evaluation cancelled." and studio._cancel_flags == {}
