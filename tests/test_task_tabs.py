"""The response task in Prompting and Compare: the cut dialogue, its reference, a run's task beside its slot."""
from __future__ import annotations

import json
import shutil

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from summarizer.data import load_split
from summarizer.tasks import RESPONSE_TEMPLATE, response_example
from tests.app_server import running_app
from training.full import SPEC as FULL
from training.lora import SPEC as LORA

SETTINGS = (2, 16, 0, "greedy", 0.7, 50, 1.0, 4, 42)  # count, max/min new, strategy, temperature, ...


@pytest.fixture(scope="module")
def response_run(random_adapter, tmp_path_factory):
    """A run folder whose adapter was 'trained' for the response task (its status says so)."""
    run = tmp_path_factory.mktemp("runs") / "lora-response"
    shutil.copytree(random_adapter, run / "model")
    (run / "status.json").write_text(json.dumps({"state": "completed", "method": "lora", "slot": "lora",
                                                 "task": "response"}))
    return run


@pytest.fixture(scope="module")
def served(tiny_t5, tiny_classifier, dialogsum_dir, response_run, tmp_path_factory):
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory.mktemp("app-runs"),
                     lora=response_run / "model") as (studio, url):
        yield studio, Client(url, verbose=False)


def test_prompting_with_the_response_task_reads_the_cut_dialogue_and_scores_the_next_turn(served, dialogsum_dir):
    studio, client = served
    row = load_split(str(dialogsum_dir), "test")[3]
    example = response_example(row)
    client.predict("response", api_name="/set_task")  # this session's task from now on
    prompt, _, summary, _, rouge = client.predict(row["dialogue"], "zero-shot", "", *SETTINGS, api_name="/summarize")
    assert prompt == RESPONSE_TEMPLATE.format(dialogue=example["dialogue"])
    assert rouge["references"] == example["references"]  # the next turn, not the summaries
    pasted, *_ = client.predict("#Person1#: Shall we go?\n#Person2#: Yes.", "zero-shot", "", *SETTINGS,
                                api_name="/summarize")
    assert pasted == RESPONSE_TEMPLATE.format(dialogue="#Person1#: Shall we go?\n#Person2#: Yes.")
    with pytest.raises(AppError, match="Prompt: the response task takes zero-shot or raw"):
        client.predict(row["dialogue"], "few-shot", "", *SETTINGS, api_name="/summarize")
    other = Client(client.src, verbose=False)  # another session: still the default task
    summary_task, *_ = other.predict(row["dialogue"], "zero-shot", "", *SETTINGS, api_name="/summarize")
    assert "Summary:" in summary_task
    with pytest.raises(AppError, match="Task must be one of summary, response"):
        other.predict("poem", api_name="/set_task")


def test_compare_says_when_a_slot_was_trained_for_another_task(served, dialogsum_dir):
    studio, client = served
    row = load_split(str(dialogsum_dir), "test")[5]
    client.predict("summary", api_name="/set_task")
    notes, *_, results = client.predict(row["dialogue"], 16, api_name="/compare")
    assert "The lora slot's run was trained for the response task, not summary" in notes
    lora = next(r for r in results["slots"] if r["slot"] == "lora")
    assert lora["trained_task"] == "response" and results["task"] == "summary"
    client.predict("response", api_name="/set_task")
    notes, *_, results = client.predict(row["dialogue"], 16, api_name="/compare")
    assert "trained for" not in notes and results["references"] == response_example(row)["references"]
    from ui.compare.tab import slot_line

    assert slot_line(studio, "lora").endswith("; trained for the response task")


def test_the_train_forms_offer_the_task():
    for spec in (FULL, LORA):
        (field,) = [f for f in spec.fields if f.name == "task"]
        assert field.choices == ("summary", "response") and field.kind is str


def test_evaluate_tab_on_the_response_task_judges_the_next_turn(served, dialogsum_dir):
    studio, client = served
    client.predict("response", api_name="/set_task")
    status, table, *_, preds, files = client.predict(["base"], 2, "test", 8, api_name="/evaluate")
    rows = load_split(str(dialogsum_dir), "test")
    expected = [response_example(rows[i])["references"][0] for i in range(2)]
    import pandas as pd

    (predictions,) = [f for f in files if f.endswith("predictions.csv")]
    assert sorted(pd.read_csv(predictions)["human_summary_1"]) == sorted(expected)
    (results_json,) = [f for f in files if f.endswith("results.json")]
    assert json.loads(open(results_json).read())["task"] == "response"


def test_prompt_lab_on_the_response_task_fills_templates_with_the_cut_dialogues(served, dialogsum_dir):
    studio, client = served
    gen = (8, 0, "greedy", 0.7, 50, 1.0, 4, 42)
    client.predict("response", api_name="/set_task")
    status, table, chart, outputs, files = client.predict(
        "base", "test", 2, 0, RESPONSE_TEMPLATE, "", "", "", "", "", *gen, api_name="/prompt_lab")
    (lab_json,) = [f for f in files if f.endswith(".json")]
    meta = json.loads(open(lab_json).read())
    assert meta["task"] == "response"
    built = [response_example(r) for r in load_split(str(dialogsum_dir), "test")]
    contexts = {e["dialogue"] for e in built if e}
    assert all(row[outputs["headers"].index("dialogue")] in contexts for row in outputs["data"])
