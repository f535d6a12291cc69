"""The app in headless Chromium: Compare and Prompting driven by clicks, screenshots saved.

Set ``STUDIO_SCREENSHOT_DIR`` to also write ``screenshot-compare.png`` and
``screenshot-prompting.png`` there (that is how ``assets/`` is made for the README).
Skipped, saying why, when Debian's chromium or chromedriver is missing.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from summarizer.generation import GenerationSettings
from summarizer.prompts import build_prompt
from tests.app_server import running_app

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SLOTS = ("base", "full", "lora", "detox")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def served(tiny_t5, tiny_classifier, random_adapter, dialogsum_dir, tmp_path_factory):
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory.mktemp("runs"),
                     full=tiny_t5, lora=random_adapter) as (studio, url):
        yield studio, url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1300",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def value(driver, css: str) -> str:
    return driver.execute_script(f"const e = document.querySelector({css!r}); return e ? e.value : '';") or ""


def wait_for(driver, condition, timeout=120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.3).until(lambda d: condition(d))


def click(driver, css: str) -> None:
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.CSS_SELECTOR, css)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.click()


def open_tab(driver, url: str, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    tab = wait_for(driver, lambda d: next(iter(d.find_elements(
        By.XPATH, f"//button[@role='tab' and normalize-space(.)='{name}']")), None), timeout=60)
    tab.click()


def save_screenshot(driver, tmp_path: Path, name: str) -> Path:
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(max(height, 900), 2400))
    driver.execute_script("window.scrollTo(0, 0);")
    path = tmp_path / name
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000
    if os.environ.get("STUDIO_SCREENSHOT_DIR"):
        target = Path(os.environ["STUDIO_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return path


def set_number(driver, css: str, number: int) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.CSS_SELECTOR, css)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(number), Keys.TAB)


def test_compare_tab_shows_four_summaries(served, browser, tmp_path):
    studio, url = served
    open_tab(browser, url, "Compare")
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
    open_tab(browser, url, "Prompting")
    click(browser, "#prompting-load")
    row = studio.split("test")[0]
    wait_for(browser, lambda d: value(d, "#prompting-dialogue textarea") == row["dialogue"])
    browser.find_element("xpath", "//*[@id='prompting-settings']//button").click()
    set_number(browser, "#gen-max-new input", 40)
    click(browser, "#prompting-run")
    summary = wait_for(browser, lambda d: value(d, "#prompting-summary textarea"))
    assert summary
    prompt_text = value(browser, "#prompting-prompt textarea")
    assert prompt_text.startswith("Summarize the following conversation.")
    assert "ROUGE-1" in browser.find_element("css selector", "#prompting-rouge").text
    save_screenshot(browser, tmp_path, "screenshot-prompting.png")
    # User HTML is shown as text: no script element is created from it.
    from selenium.webdriver.common.by import By
    box = browser.find_element(By.CSS_SELECTOR, "#prompting-dialogue textarea")
    box.clear()
    box.send_keys("#Person1#: <img src=x onerror=\"window.pwned=1\"><script>window.pwned=1</script>")
    click(browser, "#prompting-run")
    wait_for(browser, lambda d: "<script>" in value(d, "#prompting-prompt textarea"))
    assert browser.execute_script("return window.pwned === undefined")
    assert "no reference" in browser.find_element(By.CSS_SELECTOR, "#prompting-rouge").text
