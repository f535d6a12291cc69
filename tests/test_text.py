import re

import pytest

from summarizer.text import check_index, clean_dialogue, clean_text, parse_indices


def test_clean_text_strips_controls_keeps_newlines_tabs_and_html():
    raw = "\x00#Person1#: Hi\x07 there\r\n#Person2#:\tHello\x1b\x7f <b>x</b>\r"
    assert clean_text(raw) == "#Person1#: Hi there\n#Person2#:\tHello <b>x</b>"


def test_clean_text_replaces_undecodable_bytes_and_surrogates():
    assert clean_text(b"caf\xe9 ok") == "caf\ufffd ok"
    assert clean_text("a\ud800b") == "a\ufffdb"
    assert clean_text(None) == ""


@pytest.mark.parametrize("text, message", [("", "empty"), (" \n\t\x00 ", "empty"),
                                           ("x" * 21, "21 characters, over the limit of 20")])
def test_clean_dialogue_rejects_empty_and_too_long(text, message):
    with pytest.raises(ValueError, match=message):
        clean_dialogue(text, max_chars=20)


def test_parse_indices_and_check_index():
    assert parse_indices(" 40, 80 7", 100) == [40, 80, 7]
    assert parse_indices("", 100) == []
    with pytest.raises(ValueError, match="whole numbers"):
        parse_indices("4, -1", 100)
    with pytest.raises(ValueError, match="out of range"):
        parse_indices("100", 100)
    assert check_index(3.0, 5, "test") == 3
    with pytest.raises(ValueError, match="out of range"):
        check_index(5, 5, "test")
    with pytest.raises(ValueError, match="whole"):
        check_index(None, 5, "test")


def test_row_index_keys_are_cleaned():
    from ui.context import row_index

    index = row_index({"id": ["x"], "dialogue": ["a\r\nb "], "references": [["s1", "s2"]]})
    assert {k: v["references"] for k, v in index.items()} == {"a\nb": ["s1", "s2"]}


@pytest.mark.parametrize("value, message", [
    ("eight", "got the text 'eight'"), (float("nan"), "got nan"), (float("inf"), "got inf"),
    ([3], r"got a list \(\[3\]\)"), (True, "got a bool"), (None, "got nothing"), (2.5, "got 2.5"),
    (10, r"got 10 \(out of range\)"), (-1, r"got -1 \(out of range\)"), pytest.param(2**16609, "got a 16610-bit integer", id="huge-int"),
])
def test_whole_number_names_the_field_and_its_range(value, message):
    from summarizer.text import whole_number

    with pytest.raises(ValueError, match=rf"^Seed must be a whole number 0\.\.9, {message}"):
        whole_number(value, "Seed", 0, 9)
    assert whole_number(4.0, "Seed", 0, 9) == 4 and isinstance(whole_number(4.0, "Seed", 0, 9), int)


def test_real_number_refuses_non_finite_and_non_numbers():
    from summarizer.text import real_number

    assert real_number(2, "Top-p") == 2.0
    assert real_number(" 0.5 ", "Top-p") == 0.5  # plain decimal text is a number (the one rule)
    for bad, message in [(float("nan"), "finite"), (float("-inf"), "finite"), ("0x1", "got the text"),
                         ("5e-1", "got the text"), ("inf", "got the text"), (10**400, "finite")]:
        with pytest.raises(ValueError, match=f"Top-p must be a .*{message}"):
            real_number(bad, "Top-p")


# One rule for numbers sent as values or as text: (value, the whole number it is, or None = refused).
WHOLE_TABLE = [
    (3, 3), (3.0, 3), ("3", 3), (" 3 ", 3), ("7.0", 7), ("+4", 4), ("\t5\n", 5),
    ("1_0", None), ("0x10", None), ("1e3", None), ("1e400", None), ("inf", None), ("nan", None),
    ("-inf", None), ("", None), ("  ", None), ("eight", None), ("2.5", None), (2.5, None),
    ("٣", None), ("9" * 40, None), (True, None), (False, None), (None, None), ([3], None), ({"a": 3}, None),
    (float("nan"), None), (float("inf"), None),
]


def _fake_prompting_studio(n_train: int):
    """Just enough of a Studio for ``pick_examples``: a train split and a tokenizer slot."""
    from types import SimpleNamespace

    train = [{"dialogue": f"d{i}", "references": [f"r{i}"]} for i in range(n_train)]
    return SimpleNamespace(split=lambda name: train, slots=SimpleNamespace(tokenizer=None))


def _through_prompting_count(value):
    """The Prompting tab's example count (few-shot, no numbers listed) -> how many examples."""
    from types import SimpleNamespace

    from ui.prompting import pick_examples

    shortest = SimpleNamespace(first=lambda n, tokenizer: list(range(n)))
    return len(pick_examples(_fake_prompting_studio(20), "few-shot", "", value, shortest))


def _through_settings(key: str):
    from summarizer.inference.generation import GenerationSettings

    return lambda value: getattr(GenerationSettings.from_dict({key: value}), key)


# entry -> (call, the field named in its refusals); each takes the value, gives the whole number.
WHOLE_ENTRIES = {
    "text.whole_number": (lambda v: __import__("summarizer.text").text.whole_number(v, "Seed", 0, 9), "Seed"),
    "check_index": (lambda v: check_index(v, 10, "test"), "Dialogue number"),
    "GenerationSettings.seed": (_through_settings("seed"), "seed"),
    "GenerationSettings.max_new_tokens": (_through_settings("max_new_tokens"), "max new tokens"),
    "Prompting example count": (_through_prompting_count, "How many examples (few-shot, when no numbers are given)"),
}


@pytest.mark.parametrize("entry", list(WHOLE_ENTRIES))
@pytest.mark.parametrize("value, want", WHOLE_TABLE, ids=[repr(v)[:12] for v, _ in WHOLE_TABLE])
def test_every_number_field_follows_one_rule(entry, value, want):
    """Finding 2: the same text is a number (or not) for every field of the app. Before, "2" was
    refused as an example count but accepted as max new tokens, and "1_0" was 10 on Compare."""
    call, field = WHOLE_ENTRIES[entry]
    if want is None:
        with pytest.raises(ValueError, match=rf"(?:^|: ){re.escape(field)} must be a whole number"):
            call(value)
    else:
        got = call(value)
        assert got == want and type(got) is int


@pytest.mark.parametrize("value, want", [(0.5, 0.5), (1, 1.0), ("0.5", 0.5), (" .5 ", 0.5), ("1.", 1.0),
                                         ("5e-1", None), ("0x1", None), ("1_0", None), ("nan", None),
                                         ("inf", None), (float("inf"), None), (True, None), ([1], None),
                                         (10**400, None)])
def test_real_numbers_follow_the_same_rule(value, want):
    from summarizer.inference.generation import GenerationSettings
    from summarizer.text import real_number

    entries = [(lambda v: real_number(v, "Top-p"), "Top-p must be a finite number"),
               (lambda v: GenerationSettings.from_dict({"top_p": v}).top_p, r"top-p must be a number in \(0, 1\]")]
    for call, message in entries:
        if want is None:
            with pytest.raises(ValueError, match=message):
                call(value)
        else:
            got = call(value)
            assert got == want and type(got) is float


def test_parse_indices_names_the_field_and_refuses_huge_numbers():
    with pytest.raises(ValueError, match=r"^Example dialogues must be whole numbers 0\.\.99"):
        parse_indices("1" * 5000, 100)  # int() of this is slow, and refused above 4,300 digits
    with pytest.raises(ValueError, match=r"^Example dialogues must be text"):
        parse_indices([1, 2], 100)
    with pytest.raises(ValueError, match=r"^Example dialogues: number 100 is out of range"):
        parse_indices("100", 100)


def test_scorer_limit_message_is_about_the_scorer():
    from ui.toxicity import SCORER_LIMIT

    with pytest.raises(ValueError, match="over the limit of 20,000; the toxicity scorer .*first 512 tokens") as err:
        clean_dialogue("x" * 20_001, what="text", why_limit=SCORER_LIMIT)
    assert "prompts are cut" not in str(err.value)


@pytest.mark.parametrize("cell,safe", [("=1+1", "'=1+1"), ("\t=cmd", "'\t=cmd"), ("\r@x", "'\r@x"),
                                       ("-2", "'-2"), ("fine", "fine"), (3, 3)])
def test_spreadsheet_safe_cells(cell, safe):
    """One rule for every CSV the studio writes (Compare handout, Arena votes)."""
    from summarizer.text import spreadsheet_safe

    assert spreadsheet_safe(cell) == safe
