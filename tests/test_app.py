"""The app served for real, driven through its named API endpoints with gradio_client.

Slots: base = tiny T5, full = the same tiny T5 (so full == base exactly), lora = a random
adapter (changes the output), detox = empty. DialogSum is the real one.
"""
from __future__ import annotations

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from summarizer.inference.generation import GenerationSettings
from summarizer.prompts import Example, build_prompt
from summarizer.evaluation.rouge import score_one
from summarizer.toxicity import ToxicityScorer
from tests.app_server import running_app

DEFAULTS = GenerationSettings(max_new_tokens=24)


@pytest.fixture(scope="module")
def served(tiny_t5, tiny_classifier, random_adapter, dialogsum_dir, tmp_path_factory):
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory.mktemp("runs"),
                     full=tiny_t5, lora=random_adapter) as (studio, url):
        yield studio, Client(url, verbose=False)


@pytest.fixture(scope="module")
def studio(served):
    return served[0]


@pytest.fixture(scope="module")
def client(served):
    return served[1]


def summarize(client, dialogue, mode="zero-shot", indices="", count=2, settings=DEFAULTS, **changes):
    values = {**settings.to_dict(), **changes}
    return client.predict(dialogue, mode, indices, count, values["max_new_tokens"], values["min_new_tokens"],
                          values["strategy"], values["temperature"], values["top_k"], values["top_p"],
                          values["num_beams"], values["seed"], api_name="/summarize")


def test_load_dialogue_returns_the_row_and_its_references(client, studio):
    dialogue, refs, info = client.predict("test", 3, api_name="/load_dialogue")
    row = studio.split("test")[3]
    assert dialogue == row["dialogue"]
    assert len(row["references"]) == 3 and all(r in refs for r in row["references"])
    assert row["id"] in info
    with pytest.raises(AppError, match="out of range"):
        client.predict("test", 10**6, api_name="/load_dialogue")


@pytest.mark.parametrize("mode, indices, count, shots", [("zero-shot", "", 2, []), ("one-shot", "40, 80", 2, [40]),
                                                         ("few-shot", "", 2, "shortest"), ("raw", "", 2, [])])
def test_summarize_equals_core_functions(client, studio, mode, indices, count, shots):
    row = studio.split("test")[0]
    prompt, info, summary, rouge_md, rouge = summarize(client, row["dialogue"], mode, indices, count)
    train = studio.split("train")
    if shots == "shortest":  # blank numbers: of the 10 shortest train shots, the cheapest in tokens
        short = sorted(range(len(train)), key=lambda i: len(train[i]["dialogue"]) + len(train[i]["references"][0]))[:10]
        cost = lambda i: len(studio.slots.tokenizer(f"Dialogue:\n\n{train[i]['dialogue']}\n\nWhat was going on?\n"
                                                     f"{train[i]['references'][0]}\n\n\n", add_special_tokens=False).input_ids)
        shots = sorted(short, key=lambda i: (cost(i), i))[:count]
    expected = build_prompt(mode, row["dialogue"], [Example(train[i]["dialogue"], train[i]["references"][0]) for i in shots],
                            tokenizer=studio.slots.tokenizer, max_tokens=512)
    assert prompt == expected.text
    assert f"{expected.n_tokens} of 512 tokens" in info and all(n in info for n in expected.notes)
    assert summary and summary == studio.slots.generate(["base"], [expected.text], DEFAULTS)["base"][0]
    want = score_one(summary, row["references"])
    assert rouge["references"] == row["references"]
    assert rouge["best"] == pytest.approx(want["best"]) and rouge["mean"] == pytest.approx(want["mean"])
    assert f"{100 * want['best']['rouge1']:.1f}" in rouge_md and "best" in rouge_md and "mean" in rouge_md


def test_pasted_dialogue_has_no_reference(client):
    _, _, summary, rouge_md, rouge = summarize(client, "#Person1#: Is the shop open?\n#Person2#: Yes, until six.")
    assert summary and rouge["note"] == "no reference" and "no reference" in rouge_md


def test_long_dialogue_is_cut_and_the_notes_say_so(client, studio):
    long = "\n".join(studio.split("test")[i]["dialogue"] for i in range(12))[:15_000]
    prompt, info, summary, _, _ = summarize(client, long)
    assert "cut the last" in info and "512 tokens" in info
    assert len(prompt) < len(long) and summary


def test_control_characters_are_removed_and_html_is_kept_as_text(client):
    prompt, _, _, _, _ = summarize(client, "\x00#Person1#: Hi\x07 there\r\n#Person2#: <script>alert(1)</script>")
    assert prompt == "Summarize the following conversation.\n\n#Person1#: Hi there\n#Person2#: " \
                     "<script>alert(1)</script>\n\nSummary: "


@pytest.mark.parametrize("dialogue, changes, message", [
    ("", {}, "dialogue is empty"),
    ("  \n\t ", {}, "dialogue is empty"),
    ("#Person1#: hello " * 12_000, {}, "over the limit of 20,000"),
    ("#Person1#: hi", {"top_p": 5.0, "strategy": "sampling"}, r"top-p must be in \(0, 1\], got 5"),
    ("#Person1#: hi", {"max_new_tokens": 0}, "max new tokens must be 1..512, got 0"),
])
def test_bad_summarize_input_gives_clear_error_and_app_stays_up(client, dialogue, changes, message):
    with pytest.raises(AppError, match=message):
        summarize(client, dialogue, **changes)
    assert summarize(client, "#Person1#: Hi.\n#Person2#: Hello.")[2]


def test_compare_returns_four_slots(client, studio):
    row = studio.split("test")[5]
    notes, *cells, results = client.predict(row["dialogue"], 24, api_name="/compare")
    summaries, lines = cells[0::2], cells[1::2]
    assert [r["slot"] for r in results["slots"]] == ["base", "full", "lora", "detox"]
    prompt = build_prompt("zero-shot", row["dialogue"], tokenizer=studio.slots.tokenizer).text
    direct = studio.slots.generate(["base", "full", "lora"], [prompt], DEFAULTS)
    assert summaries[:3] == [direct["base"][0], direct["full"][0], direct["lora"][0]]
    assert summaries[1] == summaries[0] and summaries[2] != summaries[0]  # full is the base; lora changes it
    assert summaries[3].startswith("no model yet") and lines[3] == "empty slot"
    scores = ToxicityScorer(studio.toxicity.model_name, device="cpu").score(summaries[:3])
    for slot_row, summary, score in zip(results["slots"], summaries, scores):
        assert slot_row["reward"] == pytest.approx(score.reward, abs=1e-5)
        assert slot_row["p_hate"] == pytest.approx(score.p_hate, abs=1e-6)
        assert slot_row["rouge1"] == pytest.approx(score_one(summary, row["references"])["best"]["rouge1"])
    assert f"reward {scores[0].reward:.2f}" in lines[0]
    assert results["references"] == row["references"]


def test_toxicity_equals_the_scorer(client, tiny_classifier):
    scorer = ToxicityScorer(str(tiny_classifier), device="cpu")
    for text in ["You are stupid scum.", "#Person1# books a table for two."]:
        reward, p_hate, note = client.predict(text, api_name="/toxicity")
        want = scorer.score([text])[0]
        assert reward == pytest.approx(want.reward, abs=1e-4) and p_hate == pytest.approx(want.p_hate, abs=1e-4)
    hateful, neutral = (client.predict(t, api_name="/toxicity")[1] for t in ["You are stupid scum.", "I book a table."])
    assert hateful > neutral
    assert tuple(client.predict("  ", api_name="/toxicity"))[:2] == (None, None)


def test_score_shown_scores_prompting_and_filled_compare_summaries(client):
    results = {"slots": [{"slot": "base", "label": "Base", "filled": True, "summary": "A meets B."},
                         {"slot": "detox", "label": "PPO detox", "filled": False, "summary": "no model yet: ..."}]}
    table = client.predict("You are scum.", results, api_name="/score_shown")
    assert [row[:2] for row in table["data"]] == [["Prompting (base)", "You are scum."], ["Compare: Base (original)", "A meets B."]]
    with pytest.raises(AppError, match="No summaries shown yet"):
        client.predict("", None, api_name="/score_shown")


def test_slot_errors_are_clear_and_good_sources_apply(client, studio, tmp_path, random_adapter, fresh_adapter):
    with pytest.raises(AppError, match="does not exist"):
        client.predict(str(tmp_path / "missing"), api_name="/set_detox")
    with pytest.raises(AppError, match="It is a peft adapter: put it in the lora or detox slot"):
        client.predict(str(random_adapter), api_name="/set_full")
    with pytest.raises(AppError, match="needs a peft adapter folder"):
        client.predict(str(studio.slots.source("base")), api_name="/set_detox")
    assert studio.slots.source("detox") is None and studio.slots.source("full") == studio.slots.source("base")
    # A fresh adapter is a no-op, so the detox slot must then give exactly the base summary.
    assert "loaded" in client.predict(str(fresh_adapter), api_name="/set_detox")
    _, *cells, results = client.predict("#Person1#: Where is the bank?\n#Person2#: Over there.", 24, api_name="/compare")
    assert cells[6] == cells[0] and results["slots"][3]["filled"]
    assert client.predict("", api_name="/set_detox").startswith("no model yet")
    assert studio.slots.source("detox") is None


HOSTILE_SUMMARY = '=HYPERLINK("http://evil","x") <script>alert(1)</script> [click](javascript:alert(1)) | ```'


def test_export_compare_writes_escaped_markdown_and_csv(client, studio):
    import csv
    import io
    from pathlib import Path

    row = studio.split("test")[5]
    *_, results = client.predict(row["dialogue"], 24, api_name="/compare")
    assert results["dialogue"] == row["dialogue"] and results["prompt"].startswith("Summarize the following")
    results["slots"][0]["summary"] = HOSTILE_SUMMARY
    results["slots"][1]["summary"] = "-2+3"
    files = client.predict(results, api_name="/export_compare")
    assert sorted(Path(f).name for f in files) == ["compare-handout.csv", "compare-handout.md"]
    md, table = (Path(next(f for f in files if f.endswith(ext))).read_text() for ext in (".md", ".csv"))
    # Markdown: the dialogue verbatim inside a fence; user text never becomes HTML or a link.
    assert f"```text\n{row['dialogue']}\n```" in md
    assert "<script>" not in md and "&lt;script&gt;" in md and "\\[click\\]\\(javascript:alert\\(1\\)\\)" in md
    assert "\\|" in md and f"{results['slots'][0]['reward']:.2f}" in md
    rows = list(csv.reader(io.StringIO(table)))
    assert rows[0] == ["part", "model", "text", "reward", "p_hate", "rouge1_x100", "rougeL_x100"]
    assert rows[1][:3] == ["dialogue", "", row["dialogue"]]
    summaries = {r[1]: r for r in rows if r[0] == "summary"}
    assert summaries["Base (original)"][2] == "'" + HOSTILE_SUMMARY  # formula injection defused
    assert summaries["Full fine-tune"][2] == "'-2+3"
    assert float(summaries["Base (original)"][3]) == pytest.approx(results["slots"][0]["reward"], abs=1e-4)
    assert summaries["PPO detox"][2].startswith("no model yet") and summaries["PPO detox"][3] == ""
    assert [r[2] for r in rows if r[0].startswith("reference")] == row["references"]


def test_markdown_fence_outlasts_backticks_in_the_dialogue():
    from ui.compare.handout import md_block
    assert md_block("a ```` b").startswith("`````text\n") and md_block("plain").startswith("```text\n")


def test_export_compare_refuses_a_malformed_json(client):
    with pytest.raises(AppError, match="Run Compare first"):
        client.predict(None, api_name="/export_compare")
    with pytest.raises(AppError, match=r"slots\[0\].reward must be a finite number"):
        client.predict({"slots": [{"slot": "base", "summary": "x", "reward": "=1+1"}]}, api_name="/export_compare")


def test_request_value_components_share_one_pass_through():
    """Finding 3: one mechanism for every request-value control. Each passes the request's value
    unchanged (a choice outside the list, text, NaN) and the handler names the field; before,
    Split and Prompt/Strategy checked in gradio's preprocess while the Free* ones did not."""
    import gradio as gr

    from ui import common

    kinds = [common.RawNumber, common.ChoiceField, common.ChoiceRadio, common.FreeSlider,
             common.FreeCheckboxGroup, common.FreeDropdown, common.FreeNumber]
    assert {kind.preprocess for kind in kinds} == {common._pass_through}
    with gr.Blocks():
        split = common.ChoiceField(["train", "test"], label="Split")
        strategy = common.ChoiceRadio(["greedy", "beam"], label="Strategy")
    assert split.preprocess("dev") == "dev" and strategy.preprocess(["x"]) == ["x"]
    assert split.get_block_name() == "dropdown" and strategy.get_block_name() == "radio"  # gradio's front ends
    with pytest.raises(gr.Error, match=r"Split must be one of train, validation, test, got 'dev'\."):
        common.load_dialogue(None, "dev", 0)  # the handler checks before touching the studio
