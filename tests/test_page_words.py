"""Numbers and states with a word (issue 21, item 5), through the API of the real app on the tiny
models: Evaluate's trainable parameters and shared seconds, the tiny-model line, Compare's one
message for an empty dialogue, the Arena caption's clock, and Gradio's untranslated
``common.complete``."""
from __future__ import annotations


import pytest
from gradio_client import Client

from summarizer.inference.slot_config import SLOT_LABELS
from tests.app_server import running_app

BASE, LORA = SLOT_LABELS["base"], SLOT_LABELS["lora"]


@pytest.fixture(scope="module")
def served(tiny_t5, tiny_classifier, random_adapter, dialogsum_dir, tmp_path_factory):
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory.mktemp("runs"),
                     lora=random_adapter) as (studio, url):
        yield studio, Client(url, verbose=False)


def _cell(table: dict, metric: str, model: str) -> str:
    row = next(r for r in table["data"] if r[0] == metric)
    return row[table["headers"].index(model)]


def test_evaluate_says_the_base_was_not_trained_and_why_two_models_share_a_time(served, tmp_path, monkeypatch):
    studio, client = served
    monkeypatch.setenv("STUDIO_RESULTS_DIR", str(tmp_path))
    client.predict("summary", api_name="/set_task")
    status, table, *_ = client.predict(["base", "lora"], 2, "test", 8, api_name="/evaluate")
    own, total = studio.slots.trainable_parameters("base")
    assert _cell(table, "Trainable parameters", BASE) == f"none: not trained ({total:,} parameters)"
    lora_own, lora_total = studio.slots.trainable_parameters("lora")
    assert _cell(table, "Trainable parameters", LORA) == f"{lora_own:,} ({100 * lora_own / lora_total:.2f}%)"
    base_s, lora_s = _cell(table, "Seconds per summary", BASE), _cell(table, "Seconds per summary", LORA)
    assert base_s.endswith(f"(one pass with {LORA})") and lora_s.endswith(f"(one pass with {BASE})")
    assert base_s.split()[0] == lora_s.split()[0]  # the same number: one mixed pass
    assert "one mixed pass on the shared base model" in status and "--per-model-timing" in status


def test_the_tiny_models_are_said_to_give_meaningless_outputs(served):
    from ui.common import tiny_model_line

    studio, client = served
    line = tiny_model_line(studio)
    assert line.startswith("**Test-size models: the outputs are meaningless.**")
    assert "The base model (261,632 parameters)" in line and "the toxicity classifier (" in line
    page = client.config["components"]
    (shown,) = [c for c in page if c.get("props", {}).get("elem_id") == "tiny-model-line"]
    assert shown["props"]["value"] == line  # above the tabs: on every tab


def test_a_real_size_model_gets_no_tiny_line(monkeypatch):
    from summarizer.inference import meta_model

    monkeypatch.setattr(meta_model, "_size_or_none", lambda source, stamp, classifier: 76_961_152)
    assert meta_model.tiny_models({"base": "google/flan-t5-small", "tox": "x"}, classifiers=("tox",)) == {}
    monkeypatch.setattr(meta_model, "_size_or_none", lambda source, stamp, classifier: None)
    assert meta_model.tiny_models({"base": "unknown/model"}) == {}  # unknown size is not "tiny"
