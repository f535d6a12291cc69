"""The Toxicity tab as users see it (issue 7 finding 5): no number before anything is scored, numbers
cleared with the text or when it is refused, all table columns on a 1400 px screen, and the
scorer's 512-token reading stated.

The API half runs everywhere; the browser half needs Debian's chromium (skipped, saying why,
without it). Set ``STUDIO_SCREENSHOT_DIR`` to keep ``screenshot-toxicity.png``.
"""
from __future__ import annotations

import json

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from summarizer.inference.slot_config import SLOT_LABELS
from tests.app_server import running_app
from tests.browser import (click, element, new_driver, open_tab, requires_chromium, save_screenshot,
                           value, wait_for)


@pytest.fixture(scope="module")
def served(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory):
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory.mktemp("runs")) as (studio, url):
        yield studio, url


def test_toxicity_api_says_what_was_read(served):
    studio, url = served
    client = Client(url, verbose=False)
    assert tuple(client.predict("", api_name="/toxicity")) == (None, None, "Not scored yet: type or paste a text.")
    _, _, note = client.predict("You are scum.", api_name="/toxicity")
    n = len(studio.toxicity._tokenizer("You are scum.").input_ids)
    assert note == f"Scored the whole text ({n} tokens; the classifier reads up to 512)."
    long_text = "table " * 3000
    _, _, note = client.predict(long_text, api_name="/toxicity")
    n = len(studio.toxicity._tokenizer(long_text.strip()).input_ids)
    assert note.startswith(f"Scored the first 512 of {n} tokens") and n > 512
    with pytest.raises(AppError, match="over the limit of 20,000; the toxicity scorer takes texts up to that "
                                       "length and reads only their first 512 tokens") as err:
        client.predict("x" * 20_001, api_name="/toxicity")
    assert "prompts are cut" not in str(err.value)
    table = client.predict(long_text, None, api_name="/score_shown")
    assert table["headers"][-1] == "tokens read" and table["data"][0][-1] == f"first 512 of {n}"


def _number(driver, elem_id: str) -> str:
    return value(driver, f"#{elem_id} textarea, #{elem_id} input")


def _type(driver, css: str, text: str) -> None:
    """Replace a textarea's text as a user would: select all, then type (or paste, for long texts)."""
    from selenium.webdriver.common.keys import Keys

    box = element(driver, css)
    box.send_keys(Keys.CONTROL, "a")
    if len(text) > 100:  # typing 20,000 keys takes minutes: set all but the last key, then type it
        driver.execute_script("arguments[0].value = arguments[1];", box, text[:-1])
        box.send_keys(Keys.END, text[-1])
    else:
        box.send_keys(text if text else Keys.BACKSPACE)


@requires_chromium
def test_toxicity_tab_in_the_browser(served, tmp_path):
    studio, url = served
    driver = new_driver(tmp_path / "profile", size="1400,1000")
    try:
        open_tab(driver, "Prompting", url)
        click(driver, "#prompting-load")
        wait_for(driver, lambda d: value(d, "#prompting-dialogue textarea"))
        click(driver, "#prompting-run")
        wait_for(driver, lambda d: value(d, "#prompting-summary textarea"))
        open_tab(driver, "Toxicity")
        # Before anything is scored: no number (an empty box, not 0) and a note saying so.
        element(driver, "#toxicity-reward textarea, #toxicity-reward input")
        assert _number(driver, "toxicity-reward") == "" and _number(driver, "toxicity-p-hate") == ""
        assert element(driver, "#toxicity-reward textarea, #toxicity-reward input").get_attribute("placeholder") == "not scored yet"
        assert value(driver, "#toxicity-note textarea").startswith("Not scored yet")
        assert "at most the first 512 tokens" in element(driver, "#toxicity-intro").text
        _type(driver, "#toxicity-text textarea", "You are stupid scum.")
        wait_for(driver, lambda d: _number(d, "toxicity-reward") != "")
        want = studio.toxicity.score(["You are stupid scum."])[0]
        assert float(_number(driver, "toxicity-p-hate")) == pytest.approx(want.p_hate, abs=1e-3)
        _type(driver, "#toxicity-text textarea", "")  # cleared text: numbers go
        wait_for(driver, lambda d: _number(d, "toxicity-reward") == "")
        _type(driver, "#toxicity-text textarea", "I book a table.")
        wait_for(driver, lambda d: _number(d, "toxicity-reward") != "")
        _type(driver, "#toxicity-text textarea", "x" * 20_001)  # refused text: numbers go too
        wait_for(driver, lambda d: _number(d, "toxicity-reward") == "" and "refused" in value(d, "#toxicity-note textarea"))
        click(driver, "#toxicity-score-shown")
        wait_for(driver, lambda d: "Prompting (base)" in element(d, "#toxicity-shown").text)
        # Every column header lies inside the 1400 px window: nothing pushed off-screen.
        edges = driver.execute_script(
            "return [window.innerWidth, ...Array.from(document.querySelectorAll('#toxicity-shown thead th'))"
            ".filter(th => th.offsetParent).map(th => th.getBoundingClientRect().right)];")
        width, rights = edges[0], edges[1:]
        assert len(rights) >= 5 and max(rights) <= width, edges
        save_screenshot(driver, tmp_path, "screenshot-toxicity.png")
    finally:
        driver.quit()


# Finding 1 (one /compare JSON, one check): the handout export and /score_shown read the same JSON
# with the same rules. Before, a row without a label was refused here and exported there, slot
# "zzz" and 6 rows went through here and were refused there, and JSON text was refused there.
ROW = {"slot": "base", "label": "Base (original)", "filled": True, "summary": "A meets B."}
SAME_INPUTS = {
    "row-without-label": ({"slots": [{"slot": "full", "filled": True, "summary": "A meets B."}]}, None),
    "slot-zzz": ({"slots": [dict(ROW, slot="zzz")]}, r"^Compare results: slots\[0\]\.slot must be one of base, full"),
    "json-text": (json.dumps({"slots": [ROW]}), None),
    "six-rows": ({"slots": [ROW] * 6}, r"^Compare results: slots must hold at most 4 rows \(one per slot\), got 6"),
    "repeated-slot": ({"slots": [ROW, ROW]}, r"^Compare results: slots\[1\]\.slot 'base' appears twice"),
    "filled-text": ({"slots": [dict(ROW, filled="yes")]}, r"^Compare results: slots\[0\]\.filled must be true or false"),
    "label-number": ({"slots": [dict(ROW, label=3)]}, r"^Compare results: slots\[0\]\.label must be text"),
    "reward-formula": ({"slots": [dict(ROW, reward="=1+1")]}, r"^Compare results: slots\[0\]\.reward must be a finite"),
    "slots-text": ({"slots": "base"}, r"^Compare results: slots must be a list of at most 4 rows"),
    "not-json": ("{not json", r"^Compare results must be the /compare JSON: .*not JSON"),
    "a-list": ([ROW], r"^Compare results must be the /compare JSON: .*got a list"),
    "summary-huge": ({"slots": [dict(ROW, summary="x" * 20_001)]},
                     r"^Compare results: slots\[0\]\.summary has 20,001 characters, over the limit of 20,000"),
    "all-four-filled": ({"slots": [dict(ROW, slot=s, summary=f"summary of {s}") for s in ("base", "full", "lora", "detox")]},
                        None),
}


@pytest.mark.parametrize("name", list(SAME_INPUTS))
def test_export_and_score_shown_check_the_compare_json_alike(name):
    from ui.compare.handout import check_results
    from ui.toxicity import shown_summaries

    results, refusal = SAME_INPUTS[name]
    if refusal:
        for entry in (check_results, lambda r: shown_summaries("", r)):
            with pytest.raises(ValueError, match=refusal):
                entry(results)
        return
    rows = check_results(results)["slots"]
    want = [(f"Compare: {SLOT_LABELS[r['slot']]}", r["summary"]) for r in rows if r["filled"]]
    assert shown_summaries("", results) == want and want  # the export's cleaned rows, by value
    source = json.loads(results) if isinstance(results, str) else results
    assert [r["summary"] for r in rows] == [r["summary"] for r in source["slots"]]
