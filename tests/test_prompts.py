import pytest
from transformers import AutoTokenizer

from summarizer.prompts import Example, build_prompt, count_tokens, few_shot, render, zero_shot


def test_zero_shot_template_exact():
    assert zero_shot("#Person1#: Hi.") == "Summarize the following conversation.\n\n#Person1#: Hi.\n\nSummary: "


def test_one_and_few_shot_templates_exact():
    ex = [Example("A: x", "sx"), Example("B: y", "sy")]
    one = render("one-shot", "T: z", ex)
    assert one == ("Dialogue:\n\nA: x\n\nWhat was going on?\nsx\n\n\n"
                   "Dialogue:\n\nT: z\n\nWhat was going on?\n")
    assert render("few-shot", "T: z", ex) == (
        "Dialogue:\n\nA: x\n\nWhat was going on?\nsx\n\n\n"
        "Dialogue:\n\nB: y\n\nWhat was going on?\nsy\n\n\n"
        "Dialogue:\n\nT: z\n\nWhat was going on?\n")
    assert few_shot("T: z", ex) == render("few-shot", "T: z", ex)
    assert render("raw", "T: z") == "T: z"


@pytest.mark.parametrize("mode", ["one-shot", "few-shot"])
def test_shot_modes_need_examples(mode):
    with pytest.raises(ValueError, match="example"):
        render(mode, "T: z", [])


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_dialogue_rejected(text):
    with pytest.raises(ValueError, match="empty"):
        build_prompt("zero-shot", text)


def test_unknown_mode():
    with pytest.raises(ValueError, match="Unknown prompt mode"):
        build_prompt("two-shot", "A: hi")


@pytest.fixture(scope="module")
def tokenizer(tiny_t5):
    return AutoTokenizer.from_pretrained(tiny_t5)


def test_short_prompt_is_unchanged_and_counted(tokenizer):
    p = build_prompt("zero-shot", "#Person1#: Hello there.", tokenizer=tokenizer)
    assert p.text == zero_shot("#Person1#: Hello there.")
    assert p.n_tokens == count_tokens(tokenizer, p.text) == len(tokenizer(p.text).input_ids)
    assert p.fits and not p.notes and p.truncated_chars == 0


def test_long_dialogue_is_cut_and_reported(tokenizer):
    dialogue = "#Person1#: " + " ".join(f"word{i}" for i in range(2000))
    p = build_prompt("zero-shot", dialogue, tokenizer=tokenizer, max_tokens=100)
    assert p.n_tokens <= 100
    assert p.truncated_chars > 0 and "cut the last" in p.notes[0]
    # The kept text is a prefix of the dialogue inside the unchanged template.
    kept = p.text[len("Summarize the following conversation.\n\n"):-len("\n\nSummary: ")]
    assert dialogue.startswith(kept) and len(kept) == len(dialogue) - p.truncated_chars
    # Maximal: one more token of dialogue would not fit.
    assert count_tokens(tokenizer, zero_shot(dialogue[: len(kept) + 8])) > 100


def test_shots_dropped_before_dialogue_is_cut(tokenizer):
    shots = [Example("#Person1#: " + "long " * 60, f"summary {i}") for i in range(3)]
    target = "#Person1#: Where is the bank?"
    full_len = count_tokens(tokenizer, render("few-shot", target, shots))
    limit = count_tokens(tokenizer, render("few-shot", target, shots[:1])) + 1
    assert full_len > limit
    p = build_prompt("few-shot", target, shots, tokenizer=tokenizer, max_tokens=limit)
    assert p.shots_used == 1 and p.shots_dropped == 2 and p.truncated_chars == 0
    assert p.text == render("few-shot", target, shots[:1])
    assert "Dropped 2 of 3" in p.notes[0]


def test_one_shot_uses_first_example_only(tokenizer):
    shots = [Example("A: a", "first"), Example("B: b", "second")]
    p = build_prompt("one-shot", "T: t", shots, tokenizer=tokenizer)
    assert "first" in p.text and "second" not in p.text and p.shots_used == 1
