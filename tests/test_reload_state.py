"""The page shows the server's slots on every load, and a refused Apply leaves the slot as it was.

Issue 7, findings 3 and 4: after a reload the Compare status boxes and pickers said "no model
yet" for loaded slots and Evaluate's Models kept the start-up slots; a refused source turned the
status box into a red "Error" badge and the picker kept the rejected path.
"""
from __future__ import annotations

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from summarizer.inference.slots import ModelSlots
from summarizer.inference.slot_config import SlotConfig
from tests.app_server import running_app
from tests.browser import click, element, new_driver, open_tab, requires_chromium, value, wait_for
from ui.compare import tab as compare
from ui.evaluate import tab as evaluate
from ui.context import Studio


@pytest.fixture
def studio(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path):
    from summarizer.toxicity import ToxicityScorer
    return Studio(ModelSlots(SlotConfig(base=str(tiny_t5))), ToxicityScorer(str(tiny_classifier)),
                  str(dialogsum_dir), tmp_path / "runs")


def test_load_hooks_return_the_slots_set_after_start(studio, random_adapter):
    before = compare.page_state(studio)
    assert before[2].startswith("no model yet") and before[5].value is None
    studio.slots.set_source("lora", str(random_adapter))
    base, full, lora, detox, full_pick, lora_pick, detox_pick = compare.page_state(studio)
    assert base.startswith(studio.slots.source("base")) and full.startswith("no model yet")
    assert lora == f"{random_adapter} (loads on first use)" and detox.startswith("no model yet")
    assert lora_pick.value == str(random_adapter) and full_pick.value is None
    assert evaluate.models_now(studio).value == ["base", "lora"]


def test_page_load_lists_the_runs_folder_once(studio, random_adapter, monkeypatch):
    """Every page load builds the three pickers: one listing of the runs folder serves them all,
    and a slot whose source is a run still shows that run in its picker."""
    import json
    import shutil

    for run_id, method in (("lora-20260101-000000-001", "lora"), ("full-20260101-000000-002", "full")):
        run = studio.runs_dir / run_id
        shutil.copytree(random_adapter, run / "model")
        (run / "status.json").write_text(json.dumps({"state": "completed", "method": method}))
    lora_run = studio.runs_dir / "lora-20260101-000000-001"
    studio.slots.set_source("lora", str(lora_run))
    listings = []
    real = compare.finished_runs
    monkeypatch.setattr(compare, "finished_runs", lambda *a, **k: listings.append(a) or real(*a, **k))
    *_, full_pick, lora_pick, detox_pick = compare.page_state(studio)
    assert len(listings) == 1
    assert lora_pick.value == str(lora_run) and lora_pick.choices == [(f"{lora_run.name} (lora)", str(lora_run))]
    assert full_pick.value is None and [c[1] for c in full_pick.choices] == [str(studio.runs_dir / "full-20260101-000000-002")]
    assert detox_pick.choices == [] and detox_pick.value is None


def test_refused_apply_keeps_the_slot_and_resets_the_picker(studio, random_adapter, tmp_path):
    compare.apply_source(studio, "lora", str(random_adapter))
    shown = studio.slots.describe("lora")
    assert shown.endswith("(loaded)")
    with pytest.warns(UserWarning, match="does not exist"):  # gr.Warning outside a request warns
        status, picker = compare.apply_in_page(studio, "lora", str(tmp_path / "missing"))
    assert status == shown and picker.value == str(random_adapter)
    assert studio.slots.source("lora") == str(random_adapter)


@pytest.fixture(scope="module")
def served(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory):
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory.mktemp("runs")) as (studio, url):
        yield studio, url


def test_api_refusal_still_raises_with_the_message(served, tmp_path):
    studio, url = served
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(AppError, match="is a file, expected a model folder"):
        Client(url, verbose=False).predict(str(tmp_path / "weights.bin"), api_name="/set_full")
    assert studio.slots.source("full") is None


def open_accordion(driver, label: str) -> None:
    """Click the accordion header labelled ``label`` (its content renders when open)."""
    from selenium.webdriver.common.by import By
    header = wait_for(driver, lambda d: next(iter(d.find_elements(
        By.XPATH, f"//button[.//span[normalize-space(.)='{label}']]")), None), timeout=60)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", header)
    header.click()


@requires_chromium
def test_reloaded_page_shows_a_slot_set_through_the_api(served, random_adapter, tmp_path):
    studio, url = served
    assert Client(url, verbose=False).predict(str(random_adapter), api_name="/set_lora").endswith("(loaded)")
    driver = new_driver(tmp_path / "profile", size="1400,1000")
    try:
        open_tab(driver, "Compare", url)
        open_accordion(driver, "Models in the slots")
        want = f"{random_adapter} (loaded)"
        wait_for(driver, lambda d: value(d, "#compare-source-lora textarea") == want, timeout=60)
        assert value(driver, "#compare-pick-lora input") == str(random_adapter)
        assert value(driver, "#compare-source-full textarea").startswith("no model yet")
        # A refused source in the page: a warning, the slot unchanged, the picker reset.
        box = element(driver, "#compare-pick-lora input")
        from selenium.webdriver.common.keys import Keys
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(str(tmp_path / "missing"), Keys.TAB)
        click(driver, "#compare-apply-lora")
        toast = wait_for(driver, lambda d: d.execute_script(
            "return [...document.querySelectorAll('.toast-body')].map(t => t.innerText).join(' ')"))
        assert "does not exist" in toast
        wait_for(driver, lambda d: value(d, "#compare-pick-lora input") == str(random_adapter), timeout=30)
        assert value(driver, "#compare-source-lora textarea") == want
        assert "Error" not in element(driver, "#compare-source-lora").text
        open_tab(driver, "Evaluate")
        checked = wait_for(driver, lambda d: d.execute_script(
            "return [...document.querySelectorAll('#evaluate-models input[type=checkbox]')]"
            ".filter(c => c.checked).map(c => c.closest('label').innerText.trim())"))
        assert checked == ["Base (original)", "LoRA (peft)"]
    finally:
        driver.quit()
