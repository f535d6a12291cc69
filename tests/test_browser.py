"""The app in headless Chromium: Compare and Prompting driven by clicks, screenshots saved.

Set ``STUDIO_SCREENSHOT_DIR`` to also write ``screenshot-compare.png`` and
``screenshot-prompting.png`` there (that is how ``assets/`` is made for the README).
Skipped, saying why, when Debian's chromium or chromedriver is missing.
"""
from __future__ import annotations

import pytest

from summarizer.generation import GenerationSettings
from summarizer.prompts import build_prompt
from tests.app_server import running_app
from tests.browser import (click, new_driver, open_tab, requires_chromium, save_screenshot,
                           set_number, value, wait_for)

SLOTS = ("base", "full", "lora", "detox")

pytestmark = requires_chromium


@pytest.fixture(scope="module")
def served(tiny_t5, tiny_classifier, random_adapter, dialogsum_dir, tmp_path_factory):
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory.mktemp("runs"),
                     full=tiny_t5, lora=random_adapter) as (studio, url):
        yield studio, url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = new_driver(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def test_compare_tab_shows_four_summaries(served, browser, tmp_path):
    studio, url = served
    open_tab(browser, "Compare", url)
    set_number(browser, "#compare-index input", 2)
    click(browser, "#compare-load")
    row = studio.split("test")[2]
    wait_for(browser, lambda d: value(d, "#compare-dialogue textarea") == row["dialogue"])
    set_number(browser, "#compare-max-new input", 40)
    click(browser, "#compare-run")
    summaries = wait_for(browser, lambda d: all(texts := [value(d, f"#compare-summary-{s} textarea") for s in SLOTS])
                         and texts)
    prompt = build_prompt("zero-shot", row["dialogue"], tokenizer=studio.slots.tokenizer).text
    direct = studio.slots.generate(["base", "lora"], [prompt], GenerationSettings(max_new_tokens=40))
    assert summaries[0] == direct["base"][0] == summaries[1]
    assert summaries[2] == direct["lora"][0]
    assert summaries[3].startswith("no model yet")
    assert value(browser, "#compare-scores-base textarea").startswith("reward ")
    assert value(browser, "#compare-scores-detox textarea") == "empty slot"
    save_screenshot(browser, tmp_path, "screenshot-compare.png")


def test_prompting_tab_shows_prompt_and_keeps_html_as_text(served, browser, tmp_path):
    studio, url = served
    open_tab(browser, "Prompting", url)
    click(browser, "#prompting-load")
    row = studio.split("test")[0]
    wait_for(browser, lambda d: value(d, "#prompting-dialogue textarea") == row["dialogue"])
    click(browser, "#prompting-settings button")
    set_number(browser, "#gen-max-new input", 40)
    click(browser, "#prompting-run")
    summary = wait_for(browser, lambda d: value(d, "#prompting-summary textarea"))
    assert summary
    prompt_text = value(browser, "#prompting-prompt textarea")
    assert prompt_text.startswith("Summarize the following conversation.")
    # The summary streams in first; the ROUGE table comes with the final values.
    wait_for(browser, lambda d: "ROUGE-1" in d.find_element("css selector", "#prompting-rouge").text)
    save_screenshot(browser, tmp_path, "screenshot-prompting.png")
    # User HTML is shown as text: no script element is created from it.
    from selenium.webdriver.common.by import By
    box = browser.find_element(By.CSS_SELECTOR, "#prompting-dialogue textarea")
    box.clear()
    box.send_keys("#Person1#: <img src=x onerror=\"window.pwned=1\"><script>window.pwned=1</script>")
    click(browser, "#prompting-run")
    wait_for(browser, lambda d: "<script>" in value(d, "#prompting-prompt textarea"))
    assert browser.execute_script("return window.pwned === undefined")
    wait_for(browser, lambda d: "no reference" in d.find_element(By.CSS_SELECTOR, "#prompting-rouge").text)
