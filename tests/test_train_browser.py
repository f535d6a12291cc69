"""Browser test of the Train tab: start a LoRA run, watch the chart update, see it finish.

Headless Chromium through selenium (Debian's chromium + chromium-driver); skipped when absent.
"""
from __future__ import annotations

import pytest

from tests.app_server import running_app
from summarizer.inference.generation import GenerationSettings
from tests.browser import (click, element, new_driver, open_tab, requires_chromium, save_screenshot, set_number,
                           value as input_value, wait_for)

pytestmark = requires_chromium


@pytest.fixture
def app_url(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path):
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path / "runs") as (studio, url):
        yield url, studio


@pytest.fixture
def browser(tmp_path):
    driver = new_driver(tmp_path / "chromium-profile", size="1400,2400")
    yield driver
    driver.quit()


def test_start_lora_run_from_train_tab(app_url, browser, tmp_path):
    from gradio_client import Client
    from selenium.webdriver.common.by import By

    from summarizer.runs import finished_runs

    url, studio = app_url
    open_tab(browser, "Train", url)
    open_tab(browser, "LoRA")
    for name, value in (("train-size", 8), ("max-steps", 4), ("batch-size", 4), ("lora-r", 4)):
        set_number(browser, f"#train-lora-{name} input", value)
    wait_for(browser, lambda _: "--max_steps=4" in browser.find_element(By.TAG_NAME, "body").text, timeout=60)
    assert "Estimated time" in browser.find_element(By.ID, "train-lora-estimate").text
    browser.find_element(By.ID, "train-lora-start").click()

    # the live chart gets points while the run runs, the table shows it completed
    wait_for(browser, lambda _: browser.execute_script(
        "return document.querySelectorAll('#train-plot .scatterlayer .point').length") > 0, timeout=300)
    wait_for(browser, lambda _: "completed" in browser.find_element(By.ID, "train-runs").text, timeout=300)
    assert "step 4/4" in browser.find_element(By.ID, "train-progress-box").text
    save_screenshot(browser, tmp_path, "screenshot-train.png")

    (run,) = finished_runs(studio.runs_dir, "lora")
    # A reload brings back the selected run's method and settings, not the defaults (issue 7 #7),
    # and the estimate now says it is calibrated from the finished run.
    open_tab(browser, "Train", url)
    lora_tab = "//button[@role='tab' and normalize-space(.)='LoRA']"
    wait_for(browser, lambda _: browser.find_element(By.XPATH, lora_tab).get_attribute("aria-selected") == "true",
             timeout=60)
    wait_for(browser, lambda _: input_value(browser, "#train-lora-lora-r input") == "4", timeout=60)
    assert input_value(browser, "#train-lora-max-steps input") == "4"
    wait_for(browser, lambda _: "calibrated from 1 finished lora run" in
             browser.find_element(By.ID, "train-lora-estimate").text, timeout=60)
    log = wait_for(browser, lambda _: input_value(browser, "#train-log textarea"), timeout=60)
    assert "\r" not in log and f"Run {run.run_id} completed" in log  # the latest lines, not the start
    client = Client(url, verbose=False)
    listed = client.predict(api_name="/list_runs")
    assert [(r["run_id"], r["state"]) for r in listed] == [(run.run_id, "completed")]
    # The finished run is a choice of the Compare tab's LoRA picker, and fills the slot.
    open_tab(browser, "Compare")
    browser.find_element(By.XPATH, "//button[contains(., 'Models in the slots')]").click()
    click(browser, "#compare-refresh")
    click(browser, "#compare-pick-lora input")
    wait_for(browser, lambda _: run.run_id in browser.find_element(By.TAG_NAME, "body").text, timeout=30)
    assert run.run_id in client.predict(str(run.path), api_name="/set_lora")
    assert studio.slots.generate(["lora"], ["#Person1#: Hi."], GenerationSettings(max_new_tokens=5))["lora"][0]


def test_overlay_export_and_delete_from_train_tab(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path, browser):
    """Planted finished runs: their curves overlaid with the differing setting in the legend, the
    picked run exported with its upload command, then deleted after typing its id."""
    import json

    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    root = tmp_path / "runs"
    runs = {"lora-20260101-000000-001": 4, "lora-20260101-000000-002": 8}
    for i, (run_id, r) in enumerate(runs.items()):
        (root / run_id / "model").mkdir(parents=True)
        (root / run_id / "model" / "adapter_model.safetensors").write_bytes(b"weights")
        (root / run_id / "status.json").write_text(json.dumps({"state": "completed", "method": "lora", "created": i}))
        (root / run_id / "config.json").write_text(json.dumps({"lora_r": r}))
        (root / run_id / "metrics.jsonl").write_text("".join(
            json.dumps({"step": s, "loss": 3.0 - s / (i + 2)}) + "\n" for s in (1, 2, 3)))
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, root) as (studio, url):
        open_tab(browser, "Train", url)
        def button(text):  # rendered once the page has loaded
            return wait_for(browser, lambda _: browser.find_element(By.XPATH, f"//button[contains(., '{text}')]"))

        button("Compare runs").click()
        try:
            element(browser, "#train-overlay-runs input", timeout=15)
        except TimeoutException:  # under load the click can come before the page binds it: once more
            button("Compare runs").click()
        for run_id in runs:
            box = element(browser, "#train-overlay-runs input")
            box.send_keys(run_id)
            box.send_keys(Keys.ENTER)
        wait_for(browser, lambda _: "lora_r=8" in browser.find_element(By.ID, "train-overlay-plot").text, timeout=60)
        wait_for(browser, lambda _: browser.execute_script(  # 2 runs x 3 steps
            "return document.querySelectorAll('#train-overlay-plot .scatterlayer .point').length") == 6, timeout=30)
        button("Export or delete").click()
        picked = wait_for(browser, lambda _: input_value(browser, "#train-run-picked input"), timeout=60)
        click(browser, "#train-export")
        wait_for(browser, lambda _: "huggingface-cli upload" in browser.find_element(By.ID, "train-upload-command").text,
                 timeout=60)
        set_text = element(browser, "#train-delete-confirm textarea, #train-delete-confirm input")
        set_text.send_keys(picked, Keys.TAB)
        click(browser, "#train-delete")
        wait_for(browser, lambda _: f"Deleted run {picked}" in browser.find_element(By.ID, "train-delete-result").text,
                 timeout=60)
        assert not (root / picked).exists() and len([p for p in root.iterdir() if p.name.startswith("lora-")]) == 1
