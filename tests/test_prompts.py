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


# --- Linear-time fitting (issue 8 finding 1): same result as the old one-at-a-time algorithm. ---

def _old_cut_dialogue(mode, dialogue, examples, tokenizer, max_tokens):
    """The pre-fix algorithm: binary search re-tokenizing the whole prompt O(log n) times."""
    from summarizer.prompts import _render_unchecked

    ends = [end for _, end in tokenizer(dialogue, add_special_tokens=False,
                                        return_offsets_mapping=True)["offset_mapping"]]
    prefix = lambda k: dialogue[: ends[k - 1]] if k else ""
    lo, hi = 0, len(ends)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(tokenizer, _render_unchecked(mode, prefix(mid), examples)) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return prefix(lo)


def old_build_prompt(mode, dialogue, examples, tokenizer, max_tokens):
    """(text, n_tokens, shots kept, chars cut) as the pre-fix build_prompt made them: drop the last
    example and re-tokenize the whole prompt until it fits, then cut the dialogue."""
    from summarizer.prompts import _render_unchecked

    examples = list(examples[:1] if mode == "one-shot" else examples)
    text = render(mode, dialogue, examples)
    n = count_tokens(tokenizer, text)
    while n > max_tokens and examples:
        examples.pop()
        text = _render_unchecked(mode, dialogue, examples)
        n = count_tokens(tokenizer, text)
    cut_chars = 0
    if n > max_tokens:
        cut = _old_cut_dialogue(mode, dialogue, examples, tokenizer, max_tokens)
        cut_chars = len(dialogue) - len(cut)
        text = _render_unchecked(mode, cut, examples)
        n = count_tokens(tokenizer, text)
    return text, n, len(examples), cut_chars


class CountingTokenizer:
    """Wraps a tokenizer and counts calls and the characters they read."""

    def __init__(self, tokenizer):
        self.tokenizer, self.calls, self.chars = tokenizer, 0, 0

    def __call__(self, text, **kwargs):
        self.calls += 1
        self.chars += sum(map(len, text)) if isinstance(text, list) else len(text)
        return self.tokenizer(text, **kwargs)


@pytest.fixture(scope="module")
def dialogsum(dialogsum_dir):
    from summarizer.data import load_split

    return load_split(str(dialogsum_dir), "train"), load_split(str(dialogsum_dir), "test")


def _examples(train, indices):
    return [Example(train[i]["dialogue"], train[i]["references"][0], f"train #{i}") for i in indices]


def test_fitting_equals_the_old_algorithm(tokenizer, dialogsum):
    train, test = dialogsum
    cases = 0
    for t in (0, 1, 7, 42, 99):
        target = test[t]["dialogue"]
        for mode, shots in [("zero-shot", []), ("raw", []), ("one-shot", [3]), ("few-shot", [0, 1]),
                            ("few-shot", list(range(10))), ("few-shot", [5, 900, 12, 40, 2])]:
            for limit in (40, 128, 300, 512, 1024, 2048):
                ex = _examples(train, shots)
                p = build_prompt(mode, target, ex, tokenizer=tokenizer, max_tokens=limit)
                assert (p.text, p.n_tokens, p.shots_used, p.truncated_chars) == \
                    old_build_prompt(mode, target, ex, tokenizer, limit), (t, mode, shots, limit)
                cases += 1
    assert cases == 180


@pytest.mark.parametrize("n_examples", [10, 100])
def test_fitting_calls_the_tokenizer_a_bounded_number_of_times(tokenizer, dialogsum, n_examples):
    train, test = dialogsum
    ex = _examples(train, range(n_examples))
    counting = CountingTokenizer(tokenizer)
    p = build_prompt("few-shot", test[0]["dialogue"], ex, tokenizer=counting, max_tokens=512)
    # Full prompt, shot blocks (one batched call), a few verifications, the dialogue's offsets for
    # the cut, a few verifications, the final count. The old algorithm made n_examples + 11 calls.
    assert counting.calls <= 9, counting.calls
    # Characters read stay within a small multiple of the input (linear, not quadratic).
    total = sum(len(e.dialogue) + len(e.summary) for e in ex) + len(test[0]["dialogue"])
    assert counting.chars <= 3 * total + 8 * 4 * 512, (counting.chars, total)
    assert p.n_tokens <= 512 and (p.text, p.n_tokens, p.shots_used, p.truncated_chars) == \
        old_build_prompt("few-shot", test[0]["dialogue"], ex, tokenizer, 512)


def test_kept_shots_report_their_token_cost(tokenizer):
    ex = [Example("#Person1#: Hi.", "They greet.", "train #7"), Example("#Person1#: Bye.", "They part.", "train #9")]
    p = build_prompt("few-shot", "#Person1#: Where is the bank?", ex, tokenizer=tokenizer)
    assert [s for s, _ in p.shot_tokens] == ["train #7", "train #9"]
    for (_, cost), e in zip(p.shot_tokens, ex):
        block = f"Dialogue:\n\n{e.dialogue}\n\nWhat was going on?\n{e.summary}\n\n\n"
        assert cost == len(tokenizer(block, add_special_tokens=False).input_ids)


# --- The Prompt Lab's fit shares build_prompt's cutter: same prompts, no more tokenizer calls. ---

def _old_fit(template, dialogue, tokenizer, max_tokens):
    """The pre-fix lab_templates.fit: a plain binary search re-tokenizing the whole prompt."""
    from summarizer.prompt_lab.templates import fill

    text = fill(template, dialogue)
    n = count_tokens(tokenizer, text)
    if n <= max_tokens:
        return text, n, 0
    ends = [e for _, e in tokenizer(dialogue, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]
    prefix = lambda k: dialogue[: ends[k - 1]] if k else ""
    lo, hi = 0, len(ends)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(tokenizer, fill(template, prefix(mid))) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    text = fill(template, prefix(lo))
    return text, count_tokens(tokenizer, text), len(dialogue) - len(prefix(lo))


@pytest.mark.parametrize("template", ["Summarize the following conversation.\n\n{dialogue}\n\nSummary: ",
                                      "Dialogue:\n\n{dialogue}\n\nWhat was going on?\n", "{dialogue}",
                                      "Twice {{literal}}: {dialogue}\n--\n{dialogue}\nSummary:"])
def test_lab_fit_equals_the_old_binary_search(tokenizer, dialogsum, template):
    from summarizer.prompt_lab.templates import fit

    _, test = dialogsum
    for row in test.select(range(60)):
        for limit in (24, 128, 512):
            assert fit(template, row["dialogue"], tokenizer, limit) == \
                _old_fit(template, row["dialogue"], tokenizer, limit), (row["id"], limit)


def test_lab_fit_calls_the_tokenizer_no_more_than_build_prompt(tokenizer, dialogsum):
    from summarizer.prompt_lab.templates import fit
    from summarizer.prompts import ZERO_SHOT_TEMPLATE

    _, test = dialogsum
    lab, course, cut = CountingTokenizer(tokenizer), CountingTokenizer(tokenizer), 0
    for row in test.select(range(200)):
        text, n, chars = fit(ZERO_SHOT_TEMPLATE, row["dialogue"], lab, 128)
        p = build_prompt("zero-shot", row["dialogue"], tokenizer=course, max_tokens=128)
        assert (text, n, chars) == (p.text, p.n_tokens, p.truncated_chars)
        cut += chars > 0
    assert cut > 100  # most dialogues are cut at 128 tokens, so the cutter is what is counted
    assert lab.calls <= course.calls, (lab.calls, course.calls)
