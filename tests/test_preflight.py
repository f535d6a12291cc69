"""The first-start check: local folder, in the HF cache, to be downloaded, or unavailable with a fix."""
from __future__ import annotations

import os

import pytest

from summarizer import preflight
from tests import hub_cache


def test_each_kind_of_source(tmp_path, tiny_t5, monkeypatch):
    home = tmp_path / "hf-home"
    hub_cache.add_model(home / "hub", "google/flan-t5-base", tiny_t5)
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    assert preflight.check_source("base", str(tiny_t5)).where == preflight.LOCAL
    assert preflight.check_source("base", "google/flan-t5-base").where == preflight.CACHED
    missing = preflight.check_source("base", "google/flan-t5-large", can_download=False)
    assert missing.where == preflight.MISSING
    assert "hf download google/flan-t5-large --local-dir models/flan-t5-large" in missing.text
    assert "--base-model models/flan-t5-large" in missing.text
    later = preflight.check_source("toxicity", "someone/classifier", can_download=True, ask_size=False)
    assert later.where == preflight.DOWNLOAD and "on first use" in later.text
    assert "There is no folder" not in missing.text  # no local "google/" folder: plainly a hub id
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()  # the README's models/ folder is here, the model is not
    meant_folder = preflight.check_source("base", "models/flan-t5-base", can_download=False)
    assert f"There is no folder models/flan-t5-base under {tmp_path}" in meant_folder.text
    gone = preflight.check_source("dataset", "./no/such/folder", can_download=False)
    assert gone.where == preflight.MISSING and "--dataset" in gone.text


def test_dataset_missing_names_the_flag_and_variable():
    check = preflight.check_source("dataset", "someone/not-cached-dialogsum", can_download=False)
    assert "--dataset FOLDER or DIALOGSUM_DIR=FOLDER" in check.text


def test_summary_note_totals_downloads_and_is_empty_when_all_local():
    local = preflight.SourceCheck("base", "x", preflight.LOCAL)
    assert preflight.summary_markdown([local]) == ""
    note = preflight.summary_markdown([
        local, preflight.SourceCheck("base", "google/flan-t5-base", preflight.DOWNLOAD, 990_000_000),
        preflight.SourceCheck("toxicity", "facebook/r", preflight.DOWNLOAD, 499_000_000)])
    assert "about 1.5 GB in all" in note and "about 990 MB" in note


def test_unreachable_hub_switches_the_app_offline(monkeypatch):
    import app

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for var in ("HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(preflight, "hub_reachable", lambda timeout_s=3.0: False)
    assert app.go_offline_if_unreachable() is True
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_DATASETS_OFFLINE"] == "1"


@pytest.mark.parametrize("text,hint", [
    ("We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the cached files.", True),
    ("Error no file named model.safetensors found in directory", False)])
def test_load_error_gets_the_fix_only_for_hub_failures(text, hint):
    message = preflight.explain_load_error("base model", "google/flan-t5-base", OSError(text), "--base-model")
    assert message.startswith("Could not load the base model from 'google/flan-t5-base'")
    assert ("--base-model models/flan-t5-base" in message) is hint


def test_loading_note_says_when_a_first_use_download_is_coming(tiny_t5, monkeypatch):
    assert preflight.loading_note("base model", str(tiny_t5)).startswith("loading the base model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert "downloading the base model someone/not-cached" in preflight.loading_note("base model", "someone/not-cached")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "not in the cache and offline" in preflight.loading_note("base model", "someone/not-cached")


def test_slots_progress_line_names_the_first_unloaded_model(tiny_t5):
    from summarizer.inference.slots import ModelSlots
    from summarizer.inference.slot_config import SlotConfig

    slots = ModelSlots(SlotConfig(base=str(tiny_t5)), device="cpu")
    assert slots.loading_note() == f"loading the base model ({tiny_t5})"
    slots.load(["base"])
    assert slots.loading_note(["base", "full"]) == "generating"  # full is empty: nothing to load
