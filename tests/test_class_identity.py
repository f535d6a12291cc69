"""A class with names: permissions declared at each event function, the login as the identity,
the teacher's Class view and Send to the class, the teacher's files kept from students.

The hostile-student test calls **every** event of the built app (private ones too) by
``fn_index`` through ``/gradio_api/queue/join``, as a browser would, after the teacher started a
run and uploaded a file.
"""
from __future__ import annotations

import csv
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import gradio as gr
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from summarizer.arena.store import DB_NAME, ArenaStore
from summarizer.data import load_split
from tests.app_server import call_event, logged_in, running_app
from ui.access import for_students, teacher_only
from ui.class_view import people_rows
from ui.classroom import Classroom, SessionLimit
from ui.lessons import GENERATION_FIELDS, PAGE_FIELDS, WHERE_FIELDS, page_names

TEACHER, STUDENT, OTHER = ("teacher", "t-pass"), ("ann", "a-pass"), ("bob", "b-pass")
SECRET = "Zebracorn Quillfeather"  # a name only the teacher's uploaded file holds


# ---- the marks ---------------------------------------------------------------------------------
def test_an_unmarked_event_function_fails_the_build_naming_it():
    def sneaky_button():
        return "teacher data"

    with gr.Blocks() as demo:
        out = gr.Textbox()
        gr.Button("x").click(sneaky_button, None, out)
    with pytest.raises(ValueError, match="sneaky_button"):
        Classroom({"t": "1"}, {"s": "2"}).guard(demo)


def test_a_teacher_only_read_gives_a_student_nothing_and_a_click_is_refused_by_name():
    @teacher_only
    def runs_now():
        return "run-123"

    @for_students
    def hello():
        return "hi"

    with gr.Blocks() as demo:
        out = gr.Textbox()
        demo.load(runs_now, None, out)
        gr.Button("runs").click(runs_now, None, out, api_name="runs_now")
        gr.Button("hi").click(hello, None, out)
    Classroom({"t": "1"}, {"s": "2"}).guard(demo)
    load, click, open_ = (demo.fns[k].fn for k in sorted(demo.fns))
    student, teacher = gr.Request(username="s"), gr.Request(username="t")
    assert load(student) == gr.skip() and load(teacher) == "run-123"  # no toast, no data
    with pytest.raises(gr.Error, match="runs_now(_1)? needs the teacher.s login"):
        click(student)
    assert click(teacher) == "run-123" and open_(student) == "hi"


def test_the_cap_counts_one_students_requests_across_session_ids():
    limit = SessionLimit(2)
    tabs = [gr.Request(username="ann", session_hash=f"fresh-{k}") for k in range(6)]
    with contextlib_stack([limit.admit(r) for r in tabs[:2]]):
        for request in tabs[2:]:
            with pytest.raises(gr.Error, match="already have 2 requests"):
                with limit.admit(request):
                    pass
        with limit.admit(gr.Request(username="bob", session_hash="fresh-0")):  # another student, same id
            assert limit.in_flight() == {"login:ann": 2, "login:bob": 1}


def contextlib_stack(managers):
    import contextlib

    stack = contextlib.ExitStack()
    for manager in managers:
        stack.enter_context(manager)
    return stack


# ---- the app with logins -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def klass(tiny_t5, tiny_classifier, random_adapter, dialogsum_dir, tmp_path_factory):
    argv = ("--auth", ":".join(TEACHER), "--student-auth", ":".join(STUDENT), "--student-auth", ":".join(OTHER))
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory.mktemp("runs"), argv,
                     lora=random_adapter) as served:
        yield served


def _client(url, login):
    return Client(url, auth=login, verbose=False, httpx_kwargs={"timeout": 600})


def _defaults(block_fn) -> list:
    """The page's starting values of an event's inputs (what a page would send)."""
    values = []
    for comp in block_fn.inputs:
        value = getattr(comp, "value", None)
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            value = None
        values.append(value)
    return values


def _teacher_state(studio) -> dict:
    return {"slots": {s: studio.slots.source(s) for s in ("base", "full", "lora", "detox")},
            "backend": (studio.slots.backend, studio.slots.compute_type),
            "uploaded": None if studio.uploaded is None else list(studio.uploaded["dialogue"]),
            "broadcast": studio.broadcast.version, "lesson": studio.lesson}


def test_a_student_calling_every_event_gets_none_of_the_teachers_data(klass, tiny_t5, dialogsum_dir, tmp_path):
    studio, url = klass
    teacher = _client(url, TEACHER)
    upload = tmp_path / "mine.csv"
    upload.write_text(f"id,dialogue,summary\nm1,\"#Person1#: Hello {SECRET}.\n#Person2#: Hi.\",A greeting.\n")
    teacher.predict(handle_file(str(upload)), api_name="/upload_dialogues")
    settings = {"base_model": str(tiny_t5), "dataset": str(dialogsum_dir), "train_size": 4, "val_size": 0,
                "batch_size": 2, "max_source_tokens": 32, "max_target_tokens": 8, "max_steps": 1}
    run_id = teacher.predict("lora", json.dumps(settings), 1, api_name="/start_run")
    info = teacher.predict(run_id, api_name="/run_metrics")
    secrets = {run_id, SECRET, "-m training."}
    secrets |= {line for line in (info.get("log") or "").splitlines() if len(line) > 20}
    before = {**_teacher_state(studio), "runs": [r["run_id"] for r in teacher.predict(api_name="/list_runs")]}

    http = logged_in(url, STUDENT)
    leaks, refused = [], 0
    for index, block_fn in studio.demo.fns.items():
        if block_fn.fn is None:
            continue
        messages = call_event(http, index, _defaults(block_fn), session_hash=f"hostile-{index}")
        text = json.dumps(messages, default=str)
        leaks += [(index, block_fn.fn.__name__, s) for s in secrets if s in text]
        refused += "needs the teacher's login" in text
    after = {**_teacher_state(studio), "runs": [r["run_id"] for r in teacher.predict(api_name="/list_runs")]}
    assert leaks == []
    assert refused >= 10  # the teacher's buttons were refused by name, not silently skipped
    assert after == before  # no slot, engine, run, upload, broadcast or lesson changed


def test_the_teachers_upload_and_export_files_are_refused_to_a_student(klass, tmp_path):
    studio, url = klass
    teacher_http, student_http = logged_in(url, TEACHER), logged_in(url, STUDENT)
    upload = tmp_path / "class.csv"
    upload.write_text(f"id,dialogue\nz1,\"#Person1#: {SECRET} again.\n#Person2#: Yes.\"\n")
    teacher = _client(url, TEACHER)
    teacher.predict(handle_file(str(upload)), api_name="/upload_dialogues")
    cached = next(iter(p for p in studio.classroom.files._paths if p.endswith("class.csv")))
    export_index = next(k for k, b in studio.demo.fns.items() if b.api_name == "arena_export")
    out = call_event(teacher_http, export_index, ["all"], session_hash="teacher-export")[-1]["output"]["data"][0]
    for path in [cached, *(f["path"] for f in out)]:
        assert student_http.get(f"gradio_api/file={path}").status_code == 403
        assert teacher_http.get(f"gradio_api/file={path}").status_code == 200


def test_votes_and_ratings_belong_to_the_login_and_the_class_view_counts_them(klass):
    studio, url = klass
    ann_tab1, ann_tab2, bob = _client(url, STUDENT), _client(url, STUDENT), _client(url, OTHER)
    pair = ann_tab1.predict(api_name="/arena_next")
    with pytest.raises(AppError, match="was not served to this session"):
        bob.predict(pair["pair_id"], "A", api_name="/arena_vote")  # another student, even with the pair id
    assert ann_tab2.predict(pair["pair_id"], "A", api_name="/arena_vote")["vote"] == "A"  # ann's new tab
    with pytest.raises(AppError, match="already has your vote"):
        ann_tab1.predict(pair["pair_id"], "B", api_name="/arena_vote")
    ann_tab2.predict(pair["pair_id"], "B", 4, 4, 4, 4, api_name="/arena_rate")
    teacher = _client(url, TEACHER)
    votes_csv, ratings_csv = teacher.predict("current", api_name="/arena_export")
    votes = list(csv.DictReader(open(votes_csv, encoding="utf-8")))
    ratings = list(csv.DictReader(open(ratings_csv, encoding="utf-8")))
    assert [v["login"] for v in votes][-1] == "ann" and [r["login"] for r in ratings][-1] == "ann"
    view = teacher.predict(api_name="/class_view")
    store = studio_store(studio)
    klass_id = store.current_class()["id"]
    by_login = {row["login"]: row for row in view["arena_students"]}
    for login in {v["login"] for v in store.votes(klass_id)}:
        assert by_login[login]["votes"] == sum(1 for v in store.votes(klass_id) if v["login"] == login)
        assert by_login[login]["ratings"] == sum(1 for r in store.ratings(klass_id) if r["login"] == login)
    assert by_login["ann"]["pairs served"] == sum(1 for p in store.served(klass_id) if p["login"] == "ann")
    with pytest.raises(AppError, match="class_view needs the teacher's login"):
        bob.predict(api_name="/class_view")


def studio_store(studio):
    return ArenaStore(studio.runs_dir / DB_NAME)


def test_one_students_cap_holds_across_fresh_session_ids_and_another_is_unaffected(klass, dialogsum_dir):
    studio, url = klass
    index = next(k for k, b in studio.demo.fns.items() if b.api_name == "summarize")
    dialogue = load_split(str(dialogsum_dir), "test")[3]["dialogue"]
    data = [dialogue, "zero-shot", "", 2, 200, 200, "greedy", 0.7, 50, 1.0, 4, 42, "summary"]
    ann, bob = logged_in(url, STUDENT), logged_in(url, OTHER)
    barrier = threading.Barrier(7)

    def ask(k):
        http, who = (bob, "bob") if k == 6 else (ann, "ann")
        barrier.wait()
        return who, json.dumps(call_event(http, index, data, session_hash=f"fresh-{k}-{time.time()}")[-1])

    with ThreadPoolExecutor(7) as pool:
        answers = list(pool.map(ask, range(7)))
    capped = [who for who, text in answers if "already have 2 requests" in text]
    assert capped.count("ann") >= 4 and "bob" not in capped  # at most 2 of ann's 6 admitted
    assert people_rows(studio)[0][0] in ("ann", "bob", "teacher")


def test_send_to_the_class_reaches_two_open_student_pages(klass):
    studio, url = klass
    poll = next(k for k, b in studio.demo.fns.items() if b.fn is not None and b.fn.__name__ == "poll")
    pages = [(logged_in(url, STUDENT), "page-ann"), (logged_in(url, OTHER), "page-bob")]
    for http, session in pages:  # open pages: they have polled before the teacher sends
        call_event(http, poll, [0], session_hash=session)
    teacher = _client(url, TEACHER)
    dialogue = "#Person1#: Shall we start the lesson?\n#Person2#: Yes, with the second dialogue."
    teacher.predict(dialogue, "summary", "few-shot", "40, 80", 2, 33, 5, "beam", 0.7, 50, 1.0, 3, 7,
                    api_name="/send_to_class")
    n_templates = len(studio.demo.fns[poll].outputs) - 1 - len(PAGE_FIELDS) - len(GENERATION_FIELDS) - len(WHERE_FIELDS)
    names = [*page_names(n_templates), *WHERE_FIELDS]
    for http, session in pages:
        first = call_event(http, poll, [0], session_hash=session)[-1]["output"]["data"]
        shown = dict(zip(["version", *names], first))
        assert shown["dialogue"] == dialogue and shown["prompt_mode"] == "few-shot" and shown["examples"] == "40, 80"
        assert shown["max_new_tokens"] == 33 and shown["strategy"] == "beam" and shown["num_beams"] == 3
        assert shown["references"] == "" and shown["loaded"] == "pasted (no reference)"  # a pasted dialogue
        again = call_event(http, poll, [shown["version"]], session_hash=session)[-1]["output"]["data"]
        # shown once: the next poll updates nothing (the state skipped, every field a bare update)
        assert again[0] is None and all(v == {"__type__": "update"} for v in again[1:]), again


def test_a_students_first_page_after_a_lesson_start_shows_its_split_number_and_references(
        tiny_t5, tiny_classifier, dialogsum_dir, tmp_path):
    from summarizer.lessons import Lesson, save_lesson

    rows = [{"id": "own-1", "dialogue": "#Person1#: Is the lab open?\n#Person2#: Until six.", "references": ["Lab hours."]},
            {"id": "own-2", "dialogue": "#Person1#: Lunch at noon?\n#Person2#: Sure, see you.",
             "references": ["They agree on lunch at noon."]}]
    path = save_lesson(Lesson(name="Tuesday", uploaded=rows, dialogue={"split": "uploaded", "number": 1}),
                       tmp_path / "saved")
    argv = ("--auth", ":".join(TEACHER), "--student-auth", ":".join(STUDENT), "--lesson", str(path))
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path / "runs", argv) as (studio, url):
        http = logged_in(url, STUDENT)
        loads = [k for k, b in studio.demo.fns.items() if b.fn is not None
                 and any(event == "load" for _, event in b.targets)]
        answers = {studio.demo.fns[k].fn.__name__: call_event(http, k, _defaults(studio.demo.fns[k]), session_hash="first-visit")[-1]
                   for k in loads}
        errors = {name: a for name, a in answers.items() if not a.get("success", True)
                  or (a.get("output") or {}).get("error")}
        assert not errors  # no toast on the student's first page
        restore = answers["restore"]["output"]["data"]
        n_page = len(studio.demo.fns[next(k for k in loads if studio.demo.fns[k].fn.__name__ == "restore")].outputs)
        shown = dict(zip(("dialogue", *WHERE_FIELDS), [restore[0], *restore[n_page - 1 - len(WHERE_FIELDS):-1]]))
        assert shown["dialogue"] == rows[1]["dialogue"] and shown["split"] == "uploaded" and shown["number"] == 1
        assert shown["references"] == "1. They agree on lunch at noon." and "uploaded #1 of 2, id own-2" in shown["loaded"]


def test_a_lesson_saved_on_a_loaded_dialogue_keeps_its_split_and_number(klass, dialogsum_dir):
    from ui.lessons import lesson_from_page, page_values

    studio, _ = klass
    row = load_split(str(dialogsum_dir), "test")[2]
    from dataclasses import asdict

    from summarizer.inference.generation import GenerationSettings

    settings = asdict(GenerationSettings())
    values = [row["dialogue"], "summary", "zero-shot", "", 2, *[settings[k] for k in GENERATION_FIELDS]]
    lesson = lesson_from_page(studio, "Wednesday", values)
    assert lesson.dialogue == {"split": "test", "number": 2}
    assert page_values(studio, lesson, 0)[0] == row["dialogue"]


def test_mcp_with_logins_is_refused_at_start_saying_why(capsys):
    import app

    for logins in (["--auth", "t:p"], ["--auth", "t:p", "--student-auth", "s:p"]):
        with pytest.raises(SystemExit) as stop:
            app.parse_args(["--mcp", *logins])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert "--mcp cannot be combined with --auth/--student-auth" in err and "does not carry logins" in err
