"""Lessons from the page: save the set-up, open it again (also after a restart with --lesson)."""
from __future__ import annotations

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from summarizer.lessons import list_lessons, load_lesson
from tests.app_server import running_app
from ui.lessons import page_values

GENERATION = (40, 5, "sampling", 0.9, 20, 0.8, 3, 7)
TEMPLATES = ("Summarize: {dialogue}", "", "What happened? {dialogue}", "", "", "")


def _page(dialogue):
    return (dialogue, "response", "zero-shot", "40, 80", 3, *GENERATION, *TEMPLATES)


def test_a_lesson_round_trips_and_a_restart_with_it_restores_the_page(
        tiny_t5, tiny_classifier, random_adapter, dialogsum_dir, tmp_path):
    runs = tmp_path / "runs"
    argv = ("--auth", "teacher:t", "--student-auth", "ann:a")
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, runs, argv, lora=random_adapter) as (studio, url):
        teacher = Client(url, auth=("teacher", "t"), verbose=False)
        student = Client(url, auth=("ann", "a"), verbose=False)
        page = _page("#Person1#: Shall we start?\n#Person2#: Yes, let's.")
        with pytest.raises(AppError, match="needs the teacher's login"):
            student.predict("Monday", *page, api_name="/save_lesson")
        status, _ = teacher.predict("Monday", *page, api_name="/save_lesson")
        assert "Saved" in status
        with pytest.raises(AppError, match="already"):
            teacher.predict("monday", *page, api_name="/save_lesson")  # names are unique, without case
        ((name, path, _),) = list_lessons(runs)
        assert name == "Monday" and load_lesson(path).slots["lora"] == studio.slots.source("lora")
        teacher.predict("", api_name="/set_lora")  # the class moves on: the slot is emptied
        status, *restored = teacher.predict(path.name, api_name="/open_lesson")
        assert "Opened **Monday**" in status and tuple(restored[:len(page)]) == page
        assert restored[-2:] == ["", "pasted (no reference)"]  # a pasted dialogue: no reference
        assert studio.slots.source("lora") is not None  # the lesson's slot is back
        with pytest.raises(AppError, match="no lesson named"):
            teacher.predict("../../etc/passwd", api_name="/open_lesson")
    # the next day: a restart with --lesson; every page load (a reload) shows its values
    argv = ("--lesson", str(path))
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path / "runs2", argv) as (studio, url):
        assert studio.lesson.name == "Monday" and studio.slots.source("lora") is not None
        assert tuple(page_values(studio, studio.lesson, len(TEMPLATES))) == page


def test_a_lesson_naming_a_missing_folder_says_which(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path, capsys):
    import json

    path = tmp_path / "old.json"
    path.write_text(json.dumps({"name": "Old", "version": 1, "slots": {"lora": str(tmp_path / "gone")}}))
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path / "runs", ("--lesson", str(path))) as (studio, _):
        assert studio.slots.source("lora") is None  # the missing folder was not applied
    assert f"The lora slot's folder {tmp_path / 'gone'} does not exist" in capsys.readouterr().out
