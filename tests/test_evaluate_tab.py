"""The Evaluate tab, launched for real: the /evaluate API through gradio_client, and one browser run.

Only this tab is built (inside a Blocks with one other tab to switch from), so these tests do not
depend on the other tabs.
"""
import os
import time
from pathlib import Path

import pytest

from tests.app_server import free_port
from tests.browser import new_driver, requires_chromium



@pytest.fixture(scope="module")
def app_url(tiny_t5, random_adapter, tiny_classifier, dialogsum_dir, tmp_path_factory):
    import gradio as gr

    from summarizer.models import ModelSlots, SlotConfig
    from summarizer.toxicity import ToxicityScorer
    from ui import evaluate
    from ui.context import Studio

    old = os.environ.get("STUDIO_RESULTS_DIR")
    os.environ["STUDIO_RESULTS_DIR"] = str(tmp_path_factory.mktemp("results"))
    studio = Studio(ModelSlots(SlotConfig(base=str(tiny_t5), detox=str(random_adapter))),
                    ToxicityScorer(str(tiny_classifier)), str(dialogsum_dir), tmp_path_factory.mktemp("runs"))
    with gr.Blocks() as demo:
        with gr.Tabs():
            with gr.Tab("Home", id="home"):
                gr.Markdown("Another tab")
            with gr.Tab("Evaluate", id="evaluate"):
                evaluate.build(studio)
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()
    if old is None:
        os.environ.pop("STUDIO_RESULTS_DIR", None)
    else:
        os.environ["STUDIO_RESULTS_DIR"] = old


def test_api_evaluate_returns_table_sorted_predictions_and_files(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    status, table, chart, tox, preds, files = client.predict(["base", "detox"], 3, "test", 12, api_name="/evaluate")
    assert "3 dialogues" in status and "summary alone" in status
    assert table["headers"][0] == "Model" and [r[0] for r in table["data"]] == ["Base (original)", "PPO detox"]
    assert chart["type"] == "plotly" and '"error_y"' in chart["plot"]
    assert "before (base) vs after (detox)" in tox["plot"]
    change = [r[preds["headers"].index("detox_reward_change")] for r in preds["data"]]
    assert len(change) == 3 and change == sorted(change, reverse=True)  # largest change first
    assert sorted(Path(f).name for f in files) == ["predictions.csv", "results.csv", "results.json"]


def test_api_names_empty_slot(app_url):
    from gradio_client import Client

    with pytest.raises(Exception, match="no model yet"):
        Client(app_url, verbose=False).predict(["lora"], 2, "test", 8, api_name="/evaluate")


@requires_chromium
def test_browser_runs_an_evaluation_and_shows_table_and_chart(app_url, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver = new_driver(tmp_path / "chromium-profile", size="1400,2200")
    try:
        driver.get(app_url)
        wait = WebDriverWait(driver, 120)
        wait.until(EC.element_to_be_clickable((By.XPATH, "//button[@role='tab'][contains(., 'Evaluate')]"))).click()
        for elem_id, value in (("evaluate-n", "3"), ("evaluate-max-new", "12")):
            box = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, f"#{elem_id} input[type=number]")))
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys(value, Keys.TAB)
        time.sleep(0.5)
        driver.find_element(By.ID, "evaluate-run").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#evaluate-chart .js-plotly-plot")))
        wait.until(lambda d: "PPO detox" in d.find_element(By.ID, "evaluate-results").text)
        time.sleep(1)  # let plotly finish drawing
        text = driver.find_element(By.ID, "evaluate-results").text
        assert "Base (original)" in text and "ROUGE-1" in text
        assert "3 dialogues" in driver.find_element(By.TAG_NAME, "body").text
        shot = Path(os.environ.get("STUDIO_SCREENSHOTS") or tmp_path) / "evaluate-tab.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
