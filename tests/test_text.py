import pytest

from summarizer.text import check_index, clean_dialogue, clean_text, parse_indices, reference_index


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


def test_reference_index_keys_are_cleaned():
    index = reference_index(["a\r\nb "], [["s1", "s2"]])
    assert index == {"a\nb": ["s1", "s2"]}
