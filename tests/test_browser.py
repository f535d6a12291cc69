"""The app in headless Chromium: Compare and Prompting driven by clicks, screenshots saved.

Set ``STUDIO_SCREENSHOT_DIR`` to also write ``screenshot-compare.png`` and
``screenshot-prompting.png`` there (that is how ``assets/`` is made for the README).
Skipped, saying why, when Debian's chromium or chromedriver is missing.
"""
from __future__ import annotations

import pytest

from summarizer.inference.generation import GenerationSettings
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
    click(browser, "#compare-export")
    files = wait_for(browser, lambda d: d.execute_script(
        "return [...document.querySelectorAll('#compare-handout a')].map(a => decodeURI(a.href))"), timeout=60)
    assert sorted(f.rsplit("/", 1)[1] for f in files) == ["compare-handout.csv", "compare-handout.md"]
    import csv
    import io
    import urllib.request

    href = next(f for f in files if f.endswith(".csv"))
    with urllib.request.urlopen(href, timeout=60) as answer:  # the file the browser downloads
        table = list(csv.DictReader(io.StringIO(answer.read().decode("utf-8"), newline="")))
    assert [r["text"] for r in table if r["part"] == "dialogue"] == [row["dialogue"]]
    by_model = {r["model"]: r["text"] for r in table if r["part"] == "summary"}
    assert by_model["Base (original)"] == direct["base"][0] and by_model["LoRA (peft)"] == direct["lora"][0]
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


# Elements that scroll sideways inside ``root`` (and whether the page itself does).
OVERFLOW_JS = """
const root = document.querySelector(arguments[0]) || document.body;
const wide = [...root.querySelectorAll('*')].filter(e => {
    const s = getComputedStyle(e);
    return e.offsetParent !== null && ['auto', 'scroll'].includes(s.overflowX) && e.scrollWidth > e.clientWidth + 1;
}).map(e => (e.id || e.className) + ' ' + e.scrollWidth + '>' + e.clientWidth);
return {wide, page: document.documentElement.scrollWidth > window.innerWidth};
"""


def font_px(driver, css: str) -> float:
    return driver.execute_script(f"return parseFloat(getComputedStyle(document.querySelector({css!r})).fontSize)")


def test_presenter_mode_enlarges_text_and_nothing_scrolls_sideways(served, tmp_path):
    studio, url = served
    driver = new_driver(tmp_path / "profile", size="1400,1000")
    try:
        open_tab(driver, "Compare", url)
        click(driver, "#compare-load")
        wait_for(driver, lambda d: value(d, "#compare-dialogue textarea") == studio.split("test")[0]["dialogue"])
        set_number(driver, "#compare-max-new input", 30)
        click(driver, "#compare-run")
        wait_for(driver, lambda d: value(d, "#compare-scores-lora textarea").startswith("reward"))
        normal = font_px(driver, "#compare-summary-base textarea")
        assert not driver.execute_script("return document.body.classList.contains('presenter')")
        click(driver, "#presenter-toggle input")
        wait_for(driver, lambda d: d.execute_script("return document.body.classList.contains('presenter')"))
        big = font_px(driver, "#compare-summary-base textarea")
        assert big >= 1.2 * normal, (normal, big)
        assert driver.execute_script(OVERFLOW_JS, "#compare-summary-base") == {"wide": [], "page": False}
        assert driver.execute_script(OVERFLOW_JS, "body")["page"] is False
        save_screenshot(driver, tmp_path, "screenshot-compare-presenter.png")
        driver.set_window_size(1400, 1000)
        open_tab(driver, "Evaluate")
        set_number(driver, "#evaluate-n input[type=number]", 2)
        set_number(driver, "#evaluate-max-new input[type=number]", 10)
        click(driver, "#evaluate-run")
        wait_for(driver, lambda d: "LoRA (peft)" in d.find_element("css selector", "#evaluate-results").text)
        assert driver.execute_script(OVERFLOW_JS, "#evaluate-results") == {"wide": [], "page": False}
        assert driver.execute_script(OVERFLOW_JS, "#evaluate-predictions") == {"wide": [], "page": False}
        assert font_px(driver, "#evaluate-results td") >= 17
        save_screenshot(driver, tmp_path, "screenshot-evaluate-presenter.png")
        click(driver, "#presenter-toggle input")  # and off again
        wait_for(driver, lambda d: not d.execute_script("return document.body.classList.contains('presenter')"))
    finally:
        driver.quit()


def test_presenter_flag_starts_the_page_in_presenter_mode(served, tmp_path):
    import app
    from tests.app_server import free_port

    studio, _ = served
    args = app.parse_args(["--presenter", "--port", str(free_port())])
    assert args.presenter
    demo = app.build_demo(studio, presenter_mode=args.presenter)
    app.launch(demo, args, prevent_thread_lock=True, quiet=True)
    driver = new_driver(tmp_path / "profile", size="1400,1000")
    try:
        driver.get(f"http://127.0.0.1:{args.port}/")
        wait_for(driver, lambda d: d.execute_script("return document.body.classList.contains('presenter')"), 60)
        assert driver.execute_script("return document.querySelector('#presenter-toggle input').checked")
    finally:
        driver.quit()
        demo.close()
