"""The task setting (summarizer.tasks): response examples cut from real DialogSum dialogues, their
prompt, a tiny LoRA run trained on them, and the Evaluate CLI scoring next turns.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from summarizer.data import load_split
from summarizer.evaluation.evaluate import build_prompts
from summarizer.prompts import ZERO_SHOT_TEMPLATE
from summarizer.runs import RunFolder
from summarizer.tasks import (RESPONSE_TEMPLATE, TASKS, check_task, context_turns, examples, load_examples,
                              prompt, response_example, split_turns)
from training import lora
from training.config import parse_config
from training.seq2seq import load_rows

# DialogSum test_0 (dialogsum_test.csv), its first three turns as they are in the file.
TEST_0_TURN_1 = "#Person1#: Ms. Dawson, I need you to take a dictation for me."
TEST_0_TURN_2 = "#Person2#: Yes, sir..."
TEST_0_TURN_3 = ("This should go out as an intra-office memorandum to all employees by this afternoon. "
                 "Are you ready?")
TINY = ["--train_size", "8", "--val_size", "2", "--batch_size", "4", "--max_source_tokens", "96",
        "--max_target_tokens", "32", "--eval_steps", "2"]


@pytest.fixture(scope="module")
def test_rows(dialogsum_dir):
    return load_split(dialogsum_dir, "test", limit=20)


# ---- examples -------------------------------------------------------------------------------------
def test_response_example_of_a_hand_checked_dialogue(test_rows):
    row = test_rows[0]
    assert row["id"] == "test_0" and len(split_turns(row["dialogue"])) == 13
    ex = response_example(row)
    # k = 2 + sha256("0:test_0") % 11 = 2: the first two turns are the context, the third the reference
    assert ex["context_turns"] == 2 and ex["speaker"] == "#Person1#" and ex["task"] == "response"
    assert ex["dialogue"] == f"{TEST_0_TURN_1}\n{TEST_0_TURN_2}"
    assert ex["references"] == [TEST_0_TURN_3]  # the speaker tag is not part of the reference
    assert ex["id"] == "test_0" and ex["topic"] == row["topic"]
    assert prompt("response", ex["dialogue"]) == (
        "Continue the following conversation with the next turn.\n\n"
        f"{TEST_0_TURN_1}\n{TEST_0_TURN_2}\n\nNext turn: ")


def test_k_is_reproducible_keeps_two_turns_and_depends_on_the_seed(test_rows):
    first = [response_example(r) for r in test_rows]
    again = examples(list(test_rows), "response")
    assert [e["context_turns"] for e in first] == [e["context_turns"] for e in again]
    for row, ex in zip(test_rows, first):
        turns = split_turns(row["dialogue"])
        k = ex["context_turns"]
        assert 2 <= k <= len(turns) - 1
        assert ex["dialogue"] == "\n".join(turns[:k]) and turns[k].endswith(ex["references"][0])
    other_seed = [context_turns(r["id"], len(split_turns(r["dialogue"])), seed=1) for r in test_rows]
    assert other_seed != [e["context_turns"] for e in first]  # the seed changes the cuts
    assert len({e["context_turns"] for e in first}) > 3  # not one fixed cut


def test_short_dialogues_are_skipped_and_continuation_lines_kept():
    rows = [{"id": "a", "dialogue": "#Person1#: Hi.\n#Person2#: Hello.", "references": ["greet"], "topic": ""},
            {"id": "b", "dialogue": "#Person1#: One.\n#Person2#: Two,\nstill two.\n#PErson1#: Three.",
             "references": ["count"], "topic": ""}]
    built = examples(rows, "response")
    assert [e["id"] for e in built] == ["b"]  # a has two turns: no context of two plus a next turn
    assert built[0]["dialogue"] == "#Person1#: One.\n#Person2#: Two,\nstill two."  # k = 2, the only choice
    assert built[0]["references"] == ["Three."] and built[0]["speaker"] == "#PErson1#"
    assert examples(built, "response") == built  # already built: unchanged


def test_dataset_counts_limits_and_the_summary_task_unchanged(dialogsum_dir):
    test = load_split(dialogsum_dir, "test")
    assert examples(test, "summary") is test
    built = examples(test, "response")
    assert len(built) == 495 and built.column_names[-3:] == ["task", "context_turns", "speaker"]
    first = load_examples(dialogsum_dir, "test", "response", limit=7)
    assert len(first) == 7 and first["id"] == built["id"][:7]
    assert all(len(refs) == 1 for refs in first["references"])


def test_refusals_name_the_field_and_the_choices(test_rows):
    assert TASKS == ("summary", "response") and check_task("response") == "response"
    with pytest.raises(ValueError, match=r"--task must be one of summary, response, got 'reply'"):
        check_task("reply", "--task")
    with pytest.raises(ValueError, match=r"^task must be one of summary, response, got None"):
        examples(test_rows, None)
    with pytest.raises(ValueError, match="is a response example; task summary needs the DialogSum rows"):
        examples(examples(list(test_rows), "response"), "summary")
    with pytest.raises(ValueError, match="task must be one of summary, response, got 'Summary'"):
        lora.LoraRunConfig(task="Summary")


def test_build_prompts_use_the_task_template(tiny_t5, test_rows):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_t5)
    rows = examples(list(test_rows)[:3], "response")
    prompts, cut = build_prompts(rows, tokenizer, task="response")
    assert prompts == [RESPONSE_TEMPLATE.format(dialogue=r["dialogue"]) for r in rows] and cut == 0
    summary, cut = build_prompts(list(test_rows)[:1], tokenizer, max_input_tokens=2048)  # the default task
    assert summary == [ZERO_SHOT_TEMPLATE.format(dialogue=test_rows[0]["dialogue"])] and cut == 0


# ---- a response run and its evaluation --------------------------------------------------------------
def test_training_rows_follow_the_task(dialogsum_dir):
    config = parse_config(lora.LoraRunConfig, ["--dataset", str(dialogsum_dir), "--task", "response"])
    rows = load_rows(config, "validation", 4)
    assert len(rows) == 4 and rows["id"] == ["dev_0", "dev_1", "dev_2", "dev_3"]
    assert rows[0]["prompt"].startswith("Continue the following conversation with the next turn.\n\n#Person1#: Hello")
    assert rows[0]["summary"] == "Does this happen all the time or mostly when you are active?"  # dev_0, k = 6
    summary = load_rows(parse_config(lora.LoraRunConfig, ["--dataset", str(dialogsum_dir)]), "validation", 1)
    assert summary[0]["prompt"].startswith("Summarize the following conversation.")


@pytest.fixture(scope="module")
def response_run(tiny_t5, dialogsum_dir, tmp_path_factory) -> RunFolder:
    run_dir = tmp_path_factory.mktemp("runs") / "lora-response"
    assert lora.main(["--base_model", str(tiny_t5), "--dataset", str(dialogsum_dir), "--task", "response",
                      *TINY, "--max_steps", "2", "--lora_r", "4", "--lora_alpha", "8",
                      "--run_dir", str(run_dir)]) == 0
    return RunFolder(run_dir)


def test_a_response_run_records_its_task(response_run):
    status = response_run.status()
    assert status["state"] == "completed", status.get("error")
    assert status["task"] == "response"
    assert json.loads(response_run.config_file.read_text())["task"] == "response"
    card = (response_run.path / "README.md").read_text()
    assert "for the `response` task (write the next turn" in card and "Task: `response`." in card
    assert "`Continue the following conversation with the next turn.\\n\\n{dialogue}\\n\\nNext turn: `" in card
    assert '"task": "response"' in card  # the config block


def test_cli_evaluates_a_response_run_on_next_turns(response_run, tiny_t5, tiny_classifier, dialogsum_dir,
                                                   tmp_path, capsys):
    from summarizer.evaluation.__main__ import main

    out = tmp_path / "results"
    assert main(["--base-model", str(tiny_t5), "--run", str(response_run.path), "--task", "response",
                 "--toxicity-model", str(tiny_classifier), "--dataset", str(dialogsum_dir), "--n", "4",
                 "--max-new-tokens", "8", "--bootstrap", "50", "--out", str(out), "--offline", "--quiet"]) == 0
    assert "task: response" in capsys.readouterr().out
    meta = json.loads((out / "results.json").read_text())
    assert meta["task"] == "response" and meta["task_template"] == RESPONSE_TEMPLATE
    assert meta["ids"] == ["test_0", "test_1", "test_2", "test_3"]
    expected = load_examples(dialogsum_dir, "test", "response", limit=4)
    preds = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert [c for c in preds.columns if c.startswith("human_summary_")] == ["human_summary_1"]
    assert list(preds["human_summary_1"]) == [refs[0] for refs in expected["references"]]
    assert preds.loc[0, "human_summary_1"] == TEST_0_TURN_3 and list(preds["dialogue"]) == expected["dialogue"]
    results = pd.read_csv(out / "results.csv")
    assert list(results["model"]) == ["base", "lora"] and (results["n_dialogues"] == 4).all()
    assert results["reward_mean"].notna().all() and results["bleu"].between(0, 100).all()
    assert results["rouge1_best"].between(0, 100).all()


def test_cli_refuses_an_unknown_task(capsys):
    from summarizer.evaluation.__main__ import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args(["--task", "reply"])
    assert exit_.value.code == 2 and "argument --task: invalid choice: 'reply'" in capsys.readouterr().err


def test_cli_scores_next_turns_produced_elsewhere(dialogsum_dir, tmp_path):
    from summarizer.evaluation.__main__ import main

    file = tmp_path / "turns.csv"
    file.write_text(f'id,mine\ntest_0,"{TEST_0_TURN_3}"\ntest_1,Sure.\n')
    out = tmp_path / "results"
    assert main(["--predictions", str(file), "--task", "response", "--no-toxicity", "--dataset", str(dialogsum_dir),
                 "--bootstrap", "50", "--out", str(out), "--offline"]) == 0
    meta = json.loads((out / "results.json").read_text())
    assert meta["task"] == "response" and meta["task_template"] is None and meta["ids"] == ["test_0", "test_1"]
    preds = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert preds.loc[0, "human_summary_1"] == TEST_0_TURN_3 and preds.loc[0, "mine_rouge1"] == pytest.approx(100)
    assert pd.read_csv(out / "results.csv").loc[0, "rouge1_best"] < 100  # "Sure." is not test_1's next turn
