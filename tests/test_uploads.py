"""A teacher's own dialogues: the file checks (hostile cases by name) and the split ``uploaded``."""
from __future__ import annotations

import json

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from summarizer.uploads import MAX_UPLOAD_BYTES, UploadError, read_dialogues
from tests.app_server import running_app

GOOD_CSV = ("id,dialogue,summary1,summary2\n"
            'd1,"#Person1#: Hello.\n#Person2#: Hi, how are you?","Two people greet.","They say hello."\n'
            'd2,"#Person1#: =HYPERLINK(""http://x"")\n#Person2#: What?",,\n')


def test_a_csv_with_numbered_summaries_becomes_a_split():
    rows = read_dialogues(GOOD_CSV.encode("utf-8-sig"), "mine.csv")
    assert rows["id"] == ["d1", "d2"]
    assert rows[0]["dialogue"] == "#Person1#: Hello.\n#Person2#: Hi, how are you?"
    assert rows[0]["references"] == ["Two people greet.", "They say hello."] and rows[1]["references"] == []
    assert rows[1]["dialogue"].startswith('#Person1#: =HYPERLINK("http://x")')  # a formula stays text


def test_jsonl_with_a_references_list_and_default_ids():
    lines = [json.dumps({"dialogue": "#Person1#: A.\n#Person2#: B.", "references": ["A and B."]}),
             "", json.dumps({"dialogue": "#Person1#: C."})]
    rows = read_dialogues("\n".join(lines).encode(), "mine.jsonl")
    assert rows["id"] == ["uploaded_1", "uploaded_2"] and rows["references"] == [["A and B."], []]


@pytest.mark.parametrize("data, name, named", [
    (b"x" * (MAX_UPLOAD_BYTES + 1), "big.csv", "over the limit"),
    ("id,dialog\n1,hi\n".encode(), "a.csv", "no 'dialogue' column (columns: 'id', 'dialog')"),
    ("dialogue,dialogue\nhi,ho\n".encode(), "a.csv", "appears twice"),
    ("dialogue\ncafé\n".encode("latin-1"), "a.csv", "not UTF-8"),
    (b"dialogue\n   \n\x00\n", "a.csv", "dialogue 1"),
    ("dialogue,id\nhi,1\nho,1\n".encode(), "a.csv", "the id '1' appears twice"),
    ('dialogue,id\n"a, b",1,extra\n'.encode(), "a.csv", "line 2: 3 fields"),
    (b'{"dialogue": 5}\n', "a.jsonl", "'dialogue' must be text"),
    (b"[1, 2]\n", "a.jsonl", "a JSON object is needed"),
    (b"{not json\n", "a.jsonl", "line 1: not JSON"),
    (b"dialogue\nhi\n", "a.xlsx", "give a .csv or .jsonl"),
    (b"", "a.csv", "no dialogues"),
])
def test_hostile_files_are_refused_by_name(data, name, named):
    with pytest.raises(UploadError) as refused:
        read_dialogues(data, name)
    assert named in str(refused.value)


def test_the_teacher_uploads_and_every_session_loads_the_split(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path):
    upload = tmp_path / "class.csv"
    upload.write_text(GOOD_CSV, encoding="utf-8")
    argv = ("--auth", "teacher:t", "--student-auth", "ann:a")
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path / "runs", argv) as (studio, url):
        student = Client(url, auth=("ann", "a"), verbose=False)
        with pytest.raises(AppError, match="Split 'uploaded': no dialogues uploaded yet"):
            student.predict("uploaded", 0, api_name="/load_dialogue")
        with pytest.raises(AppError, match="needs the teacher's login"):
            student.predict(handle_file(str(upload)), api_name="/upload_dialogues")
        teacher = Client(url, auth=("teacher", "t"), verbose=False)
        status = teacher.predict(handle_file(str(upload)), api_name="/upload_dialogues")
        assert "**2 dialogues** uploaded (1 with reference summaries)" in status
        dialogue, refs, row = student.predict("uploaded", 0, api_name="/load_dialogue")
        assert dialogue.startswith("#Person1#: Hello.") and refs == "1. Two people greet.\n2. They say hello."
        assert "uploaded #0 of 2, id d1" in row
        *_, rouge = student.predict(dialogue, "zero-shot", "", 2, 16, 0, "greedy", 0.7, 50, 1.0, 4, 42,
                                    api_name="/summarize")
        assert rouge["references"] == ["Two people greet.", "They say hello."]  # ROUGE against the upload's
        bad = tmp_path / "bad.csv"
        bad.write_text("text\nhello\n")
        with pytest.raises(AppError, match="no 'dialogue' column"):
            teacher.predict(handle_file(str(bad)), api_name="/upload_dialogues")
        assert len(studio.uploaded) == 2  # the refused file lost nothing
