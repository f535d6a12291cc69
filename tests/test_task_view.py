"""The response task shown as it is judged (issue 21, item 1): Load shows the context up to turn k
and the next turn as the reference, ROUGE says which reference, the output labels say next turn."""
from __future__ import annotations

import pytest
from gradio_client import Client

from summarizer.data import load_split
from summarizer.tasks import RESPONSE_TEMPLATE, response_example, split_turns
from tests.app_server import running_app
from ui.common import judged_against, retarget, rouge_markdown, rouge_report, task_view
from ui.prompting import output_label

SETTINGS = (2, 16, 0, "greedy", 0.7, 50, 1.0, 4, 42)  # count, max/min new, strategy, temperature, ...


@pytest.fixture(scope="module")
def served(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory):
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory.mktemp("runs")) as (studio, url):
        yield studio, Client(url, verbose=False)


def test_load_with_the_response_task_shows_the_context_and_the_next_turn(served, dialogsum_dir):
    studio, client = served
    row = load_split(str(dialogsum_dir), "test")[3]
    example = response_example(row)
    k = example["context_turns"]
    client.predict("response", api_name="/set_task")
    dialogue, refs, info = client.predict("test", 3, api_name="/load_dialogue")
    assert dialogue == example["dialogue"] and len(split_turns(dialogue)) == k  # turns 1..k only
    assert dialogue != row["dialogue"]
    assert refs.endswith(example["references"][0]) and f"Next turn, turn {k + 1} of" in refs
    assert row["references"][0] not in refs  # not the DialogSum summary
    # Summarize on what Load showed: the same prompt as on the whole dialogue, judged on turn k+1.
    prompt, _, _, rouge_md, rouge = client.predict(dialogue, "zero-shot", "", *SETTINGS, api_name="/summarize")
    assert prompt == RESPONSE_TEMPLATE.format(dialogue=example["dialogue"])
    assert rouge["references"] == example["references"]
    assert f"against the next turn, turn {k + 1} ({example['speaker']})" in rouge_md
    # Compare reads the shown context too and says which reference its ROUGE used.
    notes, *_, results = client.predict(dialogue, 16, api_name="/compare")
    assert results["references"] == example["references"] and f"turn {k + 1}" in notes
    # Back to the summary task: the whole dialogue and its human summaries.
    client.predict("summary", api_name="/set_task")
    dialogue, refs, _ = client.predict("test", 3, api_name="/load_dialogue")
    assert dialogue == row["dialogue"] and refs.startswith(f"1. {row['references'][0]}")
    _, _, _, rouge_md, rouge = client.predict(dialogue, "zero-shot", "", *SETTINGS, api_name="/summarize")
    assert f"against the {len(row['references'])} human summaries" in rouge_md


def test_a_change_of_task_shows_the_loaded_dialogue_again(served, dialogsum_dir):
    studio, _ = served
    row = load_split(str(dialogsum_dir), "test")[5]
    example = response_example(row)
    text, box = retarget(studio, row["dialogue"], "response")  # whole -> cut
    assert text == example["dialogue"] and box.label.startswith("Reference: the next turn")
    text, box = retarget(studio, example["dialogue"], "summary")  # cut -> whole
    assert text == row["dialogue"] and box.label == "Human reference summaries"
    _, box = retarget(studio, "#Person1#: Hi.\n#Person2#: Hello.\n#Person1#: Bye.", "response")  # pasted
    assert box.value == ""


def test_labels_and_rouge_note_name_the_task():
    assert output_label("response") == "Next turn (base model)" and output_label("summary") == "Summary (base model)"
    example = {"context_turns": 4, "speaker": "#Person2#", "references": ["Yes."]}
    md = rouge_markdown(rouge_report("Yes.", ["Yes."], judged_against(example, "response")))
    assert "against the next turn, turn 5 (#Person2#)" in md
    short = {"id": "x", "dialogue": "#Person1#: Hi.\n#Person2#: Hello.", "references": ["They greet."], "topic": "t"}
    text, refs = task_view(short, "response")  # too short for the task: whole, and the box says why
    assert text == short["dialogue"] and refs.startswith("No next turn")
