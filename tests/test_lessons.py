"""Lessons (summarizer/lessons.py): a saved set-up round-trips, hostile lesson files are refused by
field and file, request paths stay inside the lessons folder, and missing models are named."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from summarizer.lessons import (LESSON_VERSION, MAX_LESSON_BYTES, Lesson, LessonError, lessons_dir,
                                list_lessons, load_lesson, missing_sources, save_lesson, slug,
                                uploaded_dataset)
from summarizer.uploads import MAX_UPLOAD_DIALOGUES

TEMPLATE = "Summarize the following conversation.\n\n{dialogue}\n\nSummary: "  # trailing space kept


def full_lesson(**changes) -> Lesson:
    values = dict(
        name="Week 3: few-shot vs LoRA",
        slots={"base": "google/flan-t5-base", "full": None, "lora": "runs/lora-20260131-142501-123",
               "detox": ""},
        backend="ct2", compute_type="int8", task="response",
        dialogue={"split": "uploaded", "number": 1},
        uploaded=[{"id": "d1", "dialogue": "#Person1#: Hello.\r\n#Person2#: Hi.", "references": ["They greet.", " "],
                   "topic": "uploaded"},
                  {"id": "d2", "dialogue": "#Person1#: =HYPERLINK(\"x\")\n#Person2#: What?", "references": []}],
        templates=[TEMPLATE, "   ", "Dialogue:\n{dialogue}\nWhat happened? {{in short}}"],
        generation={"max_new_tokens": "60", "strategy": "beam", "num_beams": 3.0},
        prompt_mode="few-shot", examples="40, 80", shots=3, created="2026-01-31T14:25:01+01:00")
    values.update(changes)
    return Lesson(**values)


def write(folder: Path, name: str, obj) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


# ---- a lesson is checked and normalised when it is made --------------------------------------------

def test_a_lesson_is_normalised_when_made():
    lesson = full_lesson()
    assert lesson.slots == {"base": "google/flan-t5-base", "full": None,
                            "lora": "runs/lora-20260131-142501-123", "detox": None}  # "" empties the slot
    assert lesson.uploaded == [
        {"id": "d1", "dialogue": "#Person1#: Hello.\n#Person2#: Hi.", "references": ["They greet."]},
        {"id": "d2", "dialogue": '#Person1#: =HYPERLINK("x")\n#Person2#: What?', "references": []}]
    assert lesson.templates == [TEMPLATE, "", "Dialogue:\n{dialogue}\nWhat happened? {{in short}}"]
    assert lesson.generation == {"max_new_tokens": 60, "min_new_tokens": 0, "strategy": "beam",
                                 "temperature": 0.7, "top_k": 50, "top_p": 1.0, "num_beams": 3, "seed": 42}
    assert lesson.version == LESSON_VERSION == 1
    defaults = Lesson(name="  Plain  ")
    assert defaults.name == "Plain" and defaults.slots == {"base": None, "full": None, "lora": None, "detox": None}
    assert (defaults.backend, defaults.task, defaults.prompt_mode, defaults.shots) == ("torch", "summary", "zero-shot", 2)
    assert defaults.created[:4].isdigit() and ("+" in defaults.created[19:] or "-" in defaults.created[19:])


def test_a_bad_field_is_refused_by_name_without_a_file():
    with pytest.raises(LessonError, match=r"field 'backend': the inference engine must be one of torch, ct2, got 'tpu'"):
        full_lesson(backend="tpu")
    with pytest.raises(LessonError, match=r"field 'dialogue': names the uploaded split, but the lesson has no uploaded"):
        full_lesson(uploaded=None)
    with pytest.raises(LessonError, match=r"field 'dialogue': the dialogue number must be a whole number 0\.\.1"):
        full_lesson(dialogue={"split": "uploaded", "number": 2})


def test_slug_is_a_safe_file_name_part():
    assert slug("Leçon 1: greetings!") == "lecon-1-greetings"
    assert slug("../../etc/passwd") == "etc-passwd"
    assert slug("日本語") == "lesson"
    assert len(slug("a" * 300)) == 40


# ---- save, list, load ---------------------------------------------------------------------------------

def test_a_lesson_round_trips_field_by_field(tmp_path):
    runs = tmp_path / "runs"
    lesson = full_lesson()
    path = save_lesson(lesson, runs)
    assert path.parent == lessons_dir(runs) == runs / "lessons"
    assert path.name.startswith("week-3-few-shot-vs-lora-") and path.suffix == ".json"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert list_lessons(runs) == [("Week 3: few-shot vs LoRA", path, "2026-01-31T14:25:01+01:00")]
    for given in (path, path.name, str(path), "week 3: FEW-SHOT vs lora"):  # path, file name, lesson name
        loaded = load_lesson(given, runs)
        for name in lesson.to_dict():
            assert getattr(loaded, name) == getattr(lesson, name), name
    assert load_lesson(str(path)) == lesson  # --lesson FILE: any path
    assert json.loads(path.read_text())["generation"]["num_beams"] == 3
    split = uploaded_dataset(loaded)
    assert split["id"] == ["d1", "d2"] and split["references"] == [["They greet."], []]
    assert split["topic"] == ["uploaded", "uploaded"] and uploaded_dataset(Lesson(name="x")) is None


def test_a_pasted_dialogue_and_a_dialogsum_row_round_trip(tmp_path):
    pasted = save_lesson(Lesson(name="pasted", dialogue={"text": " #Person1#: Hi.\x00 "}), tmp_path)
    row = save_lesson(Lesson(name="row", dialogue={"split": "test", "number": "12"}, created="2026-02-01T09:00:00"), tmp_path)
    assert load_lesson(pasted.name, tmp_path).dialogue == {"text": "#Person1#: Hi."}
    assert load_lesson(row.name, tmp_path).dialogue == {"split": "test", "number": 12}
    assert [name for name, _, _ in list_lessons(tmp_path)][-1] == "row"  # newest first: "row" is from 2026-02-01
    assert load_lesson(row.name, tmp_path).created.startswith("2026-02-01T09:00:00")  # naive: local zone added


def test_save_refuses_an_existing_name_unless_overwrite(tmp_path):
    first = save_lesson(full_lesson(), tmp_path)
    with pytest.raises(LessonError, match=rf"A lesson named 'WEEK 3: few-shot vs LoRA' already exists \({first.name}\)"):
        save_lesson(full_lesson(name="WEEK 3: few-shot vs LoRA"), tmp_path)
    again = save_lesson(full_lesson(backend="torch"), tmp_path, overwrite=True)
    assert again == first and load_lesson(first.name, tmp_path).backend == "torch"
    assert len(list_lessons(tmp_path)) == 1
    other = save_lesson(full_lesson(name="Week 3: few-shot vs LoRA?"), tmp_path)  # same slug, other name
    assert other != first and len(list_lessons(tmp_path)) == 2


def test_save_rechecks_a_lesson_changed_after_it_was_made(tmp_path):
    lesson = full_lesson()
    lesson.task = "poem"
    with pytest.raises(LessonError, match=r"field 'task': the task must be one of summary, response, got 'poem'"):
        save_lesson(lesson, tmp_path)
    assert not list_lessons(tmp_path)


def test_list_skips_broken_files_and_says_why(tmp_path):
    good = save_lesson(full_lesson(), tmp_path)
    folder = lessons_dir(tmp_path)
    write(folder, "broken.json", "{not json")
    write(folder, "a-list.json", [1, 2])
    write(folder, "wrong.json", {**full_lesson().to_dict(), "backend": 3})
    write(folder, "notes.txt", "not a lesson file")
    write(folder, ".half.json.123.tmp", "{")
    (folder / "folder.json").mkdir()
    (folder / "link.json").symlink_to(good)
    skipped = []
    assert list_lessons(tmp_path, skipped) == [("Week 3: few-shot vs LoRA", good, "2026-01-31T14:25:01+01:00")]
    why = dict(skipped)
    assert sorted(why) == ["a-list.json", "broken.json", "folder.json", "link.json", "wrong.json"]
    assert "not JSON" in why["broken.json"] and "got a JSON list" in why["a-list.json"]
    assert "field 'backend'" in why["wrong.json"] and "symbolic link" in why["link.json"]
    assert "not a regular file" in why["folder.json"]
    assert list_lessons(tmp_path / "nowhere") == []


# ---- hostile lesson files --------------------------------------------------------------------------------

GOOD = full_lesson().to_dict()


@pytest.mark.parametrize("change, named", [
    ({"name": 5}, "field 'name': the name must be text, got a number (5)."),
    ({"name": "x" * 101}, "field 'name': the name has 101 characters, at most 100"),
    ({"name": " \x00 "}, "field 'name': the name is empty"),
    ({"slots": ["google/flan-t5-base"]}, "field 'slots': must be a JSON object of slot: source"),
    ({"slots": {"base": None, "ppo": "x"}}, "field 'slots': unknown slot(s) 'ppo'"),
    ({"slots": {"lora": 7}}, "field 'slots': the lora slot's source must be text, got a number"),
    ({"slots": {"full": "a\nb"}}, "field 'slots': the full slot's source has a line break"),
    ({"backend": "tpu"}, "field 'backend': the inference engine must be one of torch, ct2, got 'tpu'"),
    ({"compute_type": "int4"}, "field 'compute_type': the compute type must be one of auto, int8"),
    ({"task": ["summary"]}, "field 'task': the task must be one of summary, response"),
    ({"dialogue": "test 3"}, "field 'dialogue': must be null,"),
    ({"dialogue": {"split": "test"}}, "field 'dialogue': must have the keys \"split\" and \"number\""),
    ({"dialogue": {"split": "dev", "number": 1}}, "field 'dialogue': the split must be one of train, validation, test, uploaded"),
    ({"dialogue": {"split": "test", "number": True}}, "field 'dialogue': the dialogue number must be a whole number"),
    ({"dialogue": {"split": "test", "number": 1.5}}, "the dialogue number must be a whole number 0..10000000, got 1.5"),
    ({"dialogue": {"text": ""}}, "field 'dialogue': The pasted dialogue is empty"),
    ({"dialogue": {"text": 3}}, "field 'dialogue': the pasted dialogue must be text"),
    ({"uploaded": {"d1": "hi"}}, "field 'uploaded': must be null or a list of dialogue rows"),
    ({"uploaded": [{"id": "a", "dialogue": "#P: x"}] * 2}, "field 'uploaded': the id 'a' appears twice"),
    ({"uploaded": [{"id": "a"}]}, "field 'uploaded': dialogue 1 must have the keys id, dialogue"),
    ({"uploaded": [{"id": "a", "dialogue": "x", "summary": "y"}]}, "dialogue 1 must have the keys"),
    ({"uploaded": [{"id": "a", "dialogue": ["x"]}]}, "dialogue 1's dialogue must be text, got a JSON list"),
    ({"uploaded": [{"id": "a", "dialogue": "x" * 20_001}]}, "dialogue 1's dialogue has 20,001 characters"),
    ({"uploaded": [{"id": "a", "dialogue": "x", "references": "y"}]}, "dialogue 1's references must be a list"),
    ({"uploaded": [{"id": "a", "dialogue": "x", "references": [{"r": 1}]}]}, "a reference of dialogue 1 must be text"),
    ({"templates": "{dialogue}"}, "field 'templates': must be a list of template texts"),
    ({"templates": ["{dialogue}"] * 7}, "field 'templates': 7 templates, at most 6"),
    ({"templates": ["{dialogue}", "no placeholder"]}, "field 'templates': Template T2 has no {dialogue} placeholder"),
    ({"templates": ["{dialogue} {topic}"]}, "Template T1 has a brace other than {dialogue}"),
    ({"templates": [None]}, "field 'templates': template T1 must be text"),
    ({"generation": {"temperature": "hot"}}, "field 'generation': Invalid generation settings: temperature"),
    ({"generation": {"max_new_tokens": 9999}}, "max new tokens must be 1..512, got 9999"),
    ({"generation": {"beams": 4}}, "field 'generation': Unknown generation settings: beams"),
    ({"generation": [200]}, "field 'generation': Generation settings must be a JSON object"),
    ({"prompt_mode": "two-shot"}, "field 'prompt_mode': the prompt mode must be one of zero-shot, one-shot"),
    ({"examples": "forty, 80"}, "field 'examples': the example numbers must be whole numbers"),
    ({"examples": 40}, "field 'examples': the example numbers must be text, got a number"),
    ({"examples": ", ".join(map(str, range(11)))}, "field 'examples': 11 distinct example numbers, at most 10"),
    ({"shots": 0}, "field 'shots': how many examples must be a whole number 1..10, got 0"),
    ({"shots": [2] * 1_000_000}, "field 'shots': how many examples must be a whole number 1..10, got a JSON list of 1,000,000 item(s)"),
    ({"name": [0] * 1_000_000}, "field 'name': the name must be text, got a JSON list of 1,000,000 item(s)."),
    ({"created": "yesterday"}, "field 'created': must be an ISO 8601 time"),
    ({"created": 1706700000}, "field 'created': must be an ISO 8601 time as text"),
    ({"created": "0001-01-01T00:00:00"}, "field 'created': must be an ISO 8601 time such as"),
    ({"version": 2}, "field 'version': lesson format 2 is not known (made by a newer version of the app"),
    ({"version": True}, "field 'version': must be the number 1, got True"),
    ({"version": "1"}, "field 'version': must be the number 1, got '1'"),
    ({"teacher": "me"}, "unknown field(s) 'teacher'; known fields: name, slots"),
])
def test_a_wrong_field_names_the_field_and_the_file(tmp_path, change, named):
    path = write(lessons_dir(tmp_path), "hostile.json", {**GOOD, **change})
    with pytest.raises(LessonError) as caught:
        load_lesson("hostile.json", tmp_path)
    message = str(caught.value)
    assert message.startswith("Lesson file hostile.json: ") and named in message, message
    assert message.endswith("Fix it in the file, or save the lesson again from the page.")
    with pytest.raises(LessonError, match="Lesson file .*hostile.json: "):
        load_lesson(path)  # the command-line form says the same


@pytest.mark.parametrize("content, named", [
    ("{\"name\": ", "is not JSON (Expecting value)"),
    ("[" * 100_000 + "]" * 100_000, "is not JSON (RecursionError)"),
    (b"\xff\xfe{}", "is not JSON"),
    ("[1, 2]", "a lesson must be a JSON object of field: value, got a JSON list"),
    ("\"a lesson\"", "got a text"),
    ("{\"version\": 1}", "field 'name' is missing"),
    ("{\"name\": \"x\"}", "field 'version' is missing"),
])
def test_a_file_that_is_no_lesson_object_is_refused(tmp_path, content, named):
    folder = lessons_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "bad.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(LessonError, match="^Lesson file bad.json") as caught:
        load_lesson("bad.json", tmp_path)
    assert named in str(caught.value)


def test_a_huge_file_is_refused_by_its_size(tmp_path):
    folder = lessons_dir(tmp_path)
    folder.mkdir(parents=True)
    with open(folder / "huge.json", "wb") as f:
        f.truncate(MAX_LESSON_BYTES + 1)  # sparse: nothing written to disk
    with pytest.raises(LessonError, match=r"Lesson file huge.json is over 20,000,000 bytes"):
        load_lesson("huge.json", tmp_path)


def test_too_many_uploaded_dialogues_are_refused(tmp_path):
    rows = [{"id": f"d{i}", "dialogue": "#Person1#: Hi."} for i in range(MAX_UPLOAD_DIALOGUES + 1)]
    write(lessons_dir(tmp_path), "many.json", {**GOOD, "uploaded": rows, "dialogue": None})
    with pytest.raises(LessonError, match=r"field 'uploaded': 2,001 dialogues, over the limit of 2,000"):
        load_lesson("many.json", tmp_path)
    ok = Lesson(name="full set", uploaded=rows[:-1], dialogue={"split": "uploaded", "number": 1999})
    assert load_lesson(save_lesson(ok, tmp_path).name, tmp_path).uploaded[-1]["id"] == "d1999"


def test_save_refuses_a_lesson_over_the_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr("summarizer.lessons.MAX_LESSON_BYTES", 2_000)
    with pytest.raises(LessonError, match=r"Lesson 'big' would be [0-9,]+ bytes, over the limit of 2,000"):
        save_lesson(Lesson(name="big", dialogue={"text": "#Person1#: " + "word " * 1000}), tmp_path)
    assert list_lessons(tmp_path) == [] and not list(tmp_path.rglob("*.json"))


# ---- paths from a request stay inside the lessons folder -------------------------------------------------

def test_request_paths_cannot_leave_the_lessons_folder(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    inside = save_lesson(full_lesson(), runs)
    outside = write(tmp_path, "outside.json", GOOD)
    beside = write(runs, "beside.json", GOOD)  # in the runs folder, not in lessons/
    monkeypatch.chdir(tmp_path)
    for hostile, named in [
        ("../outside.json", "'..' is not allowed"),
        (f"{lessons_dir(runs)}/../../outside.json", "'..' is not allowed"),
        (str(outside), "is outside the lessons folder"),
        ("outside.json", "does not exist"),  # a bare name is looked up in the lessons folder only
        (str(beside), "is outside the lessons folder"),
        ("runs/beside.json", "is outside the lessons folder"),
        ("/etc/passwd.json", "is outside the lessons folder"),
        ("/etc/passwd", "There is no lesson named '/etc/passwd'"),
        ("lessons/x\x00.json", "give a lesson's name or file name"),
        (".hidden.json", "not a lesson file name"),
        (["a.json"], "give a lesson's name or file name"),
        ("", "give a lesson's name or file name"),
    ]:
        with pytest.raises(LessonError, match="(?i)lesson") as caught:
            load_lesson(hostile, runs)
        assert named in str(caught.value), (hostile, str(caught.value))
    assert load_lesson(f"runs/lessons/{inside.name}", "runs") == full_lesson()  # relative, inside: fine
    assert load_lesson(str(outside)) == full_lesson()  # --lesson FILE from the command line: any path


def test_a_symlink_is_refused_from_a_request_but_followed_on_the_command_line(tmp_path):
    target = write(tmp_path / "elsewhere", "real.json", GOOD)
    folder = lessons_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "link.json").symlink_to(target)
    (folder / "secret.json").symlink_to("/etc/passwd")
    with pytest.raises(LessonError, match="Lesson file link.json is a symbolic link"):
        load_lesson("link.json", tmp_path)
    with pytest.raises(LessonError, match="Lesson file secret.json is a symbolic link"):
        load_lesson(folder / "secret.json", tmp_path)
    assert load_lesson(folder / "link.json").name == GOOD["name"]  # typed by the user
    with pytest.raises(LessonError, match=r"Lesson file .*nothing.json does not exist"):
        load_lesson(tmp_path / "nothing.json")


def test_a_lessons_folder_that_is_a_symlink_is_neither_read_nor_written(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere, "real.json", GOOD)
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "lessons").symlink_to(elsewhere, target_is_directory=True)
    skipped = []
    assert list_lessons(runs, skipped) == [] and "is a symbolic link" in skipped[0][1]
    with pytest.raises(LessonError, match="The lessons folder .* is a symbolic link"):
        load_lesson("real.json", runs)
    with pytest.raises(LessonError, match="The lessons folder .* is a symbolic link"):
        save_lesson(Lesson(name="new"), runs)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["real.json"]


def test_a_fifo_is_not_read(tmp_path):
    folder = lessons_dir(tmp_path)
    folder.mkdir(parents=True)
    os.mkfifo(folder / "pipe.json")
    with pytest.raises(LessonError, match="Lesson file pipe.json is not a regular file"):
        load_lesson("pipe.json", tmp_path)  # would hang without O_NONBLOCK


# ---- missing models and folders ----------------------------------------------------------------------------

def _fake_hub_cache(root: Path, repo: str, filename: str) -> Path:
    """The layout huggingface_hub reads offline: models--org--name/refs/main + snapshots/<commit>/file."""
    folder = root / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("a" * 40)
    (folder / "snapshots" / ("a" * 40)).mkdir(parents=True)
    (folder / "snapshots" / ("a" * 40) / filename).write_text("{}")
    return root


def test_missing_sources_names_each_missing_model_or_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    base = tmp_path / "models" / "t5"
    base.mkdir(parents=True)
    (base / "config.json").write_text("{}")
    lesson = Lesson(name="missing", slots={"base": str(base), "full": "gone/full-model",
                                           "lora": "runs/lora-20260131-142501-123", "detox": "org/uncached-detox"})
    cache = tmp_path / "hub"
    cache.mkdir()
    messages = missing_sources(lesson, offline=True, hub_cache=cache)
    assert messages == [  # "gone/full-model": no folder "gone" here, so it is read as a hub id
        ("The full slot's hub model gone/full-model is not in the Hugging Face cache and the app is "
         "offline: download it once on a connected machine (hf download gone/full-model), or edit the lesson."),
        (f"The lora slot's folder runs/lora-20260131-142501-123 does not exist (relative folders are read "
         f"from {tmp_path}): train it again or edit the lesson."),
        ("The detox slot's hub model org/uncached-detox is not in the Hugging Face cache and the app is "
         "offline: download it once on a connected machine (hf download org/uncached-detox), or edit the lesson.")]
    assert missing_sources(lesson, offline=False, hub_cache=cache) == [messages[1]]  # online: downloaded on use
    _fake_hub_cache(cache, "org/uncached-detox", "adapter_config.json")
    assert missing_sources(Lesson(name="x", slots={"detox": "org/uncached-detox"}), offline=True, hub_cache=cache) == []


def test_missing_sources_names_the_wrong_kind_and_unfinished_runs(tmp_path):
    full_model = tmp_path / "full"
    full_model.mkdir()
    (full_model / "config.json").write_text('{"model_type": "t5"}')
    run = tmp_path / "lora-20260131-142501-123"
    run.mkdir()
    (run / "status.json").write_text('{"state": "running"}')
    (run / "config.json").write_text('{"method": "lora"}')
    a_file = tmp_path / "weights.bin"
    a_file.write_bytes(b"x")
    lesson = Lesson(name="kinds", slots={"base": str(a_file), "full": str(tmp_path / "nope"),
                                         "lora": str(full_model), "detox": str(run)})
    messages = missing_sources(lesson, offline=True)
    assert len(messages) == 4
    assert messages[0].startswith(f"The base slot's source {a_file}: {a_file} is a file, expected a model folder")
    assert messages[1] == f"The full slot's folder {tmp_path / 'nope'} does not exist: copy the model there or edit the lesson."
    assert messages[2].startswith(f"The lora slot's source {full_model}: The lora slot needs a peft adapter folder")
    assert messages[3].startswith(f"The detox slot's source {run}: Run folder {run} has no finished model")
    assert missing_sources(Lesson(name="empty"), offline=True) == []
