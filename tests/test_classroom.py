"""A class at once: cross-request batching, identical requests answered once, roles, session caps.

Slot-layer tests call :meth:`ModelSlots.answer` from many threads and compare with
:meth:`ModelSlots.generate` of each request alone; the app tests drive the real app with several
``gradio_client`` sessions, as a class does.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from summarizer.data import load_split
from summarizer.inference.batcher import BatchLimits, Cancelled, Request, RequestBatcher
from summarizer.inference.generation import GenerationSettings
from summarizer.inference.slot_config import SlotConfig
from summarizer.inference.slots import ModelSlots
from summarizer.prompts import build_prompt
from tests.app_server import running_app
from ui.classroom import Classroom, SessionLimit, parse_login

GREEDY = GenerationSettings(max_new_tokens=24)


@pytest.fixture(scope="module")
def prompts(tiny_t5, dialogsum_dir) -> list[str]:
    slots = ModelSlots(SlotConfig(base=str(tiny_t5)))
    rows = load_split(str(dialogsum_dir), "test")
    return [build_prompt("zero-shot", d, tokenizer=slots.tokenizer).text for d in rows["dialogue"][:12]]


def _at_once(n: int, call):
    """``call(i)`` for i in 0..n-1 from n threads released together; returns the results in order."""
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        return call(i)
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_concurrent_greedy_requests_share_batches_and_equal_each_alone(tiny_t5, random_adapter, prompts):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5), full=str(tiny_t5), lora=str(random_adapter)))
    alone = [slots.generate(["base"], [p], GREEDY)["base"][0] for p in prompts]
    compare_alone = slots.generate(["base", "full", "lora"], [prompts[0]], GREEDY)
    # 12 Summarize requests and one Compare (base, full, lora) at the same moment
    out = _at_once(13, lambda i: slots.answer(["base"], [prompts[i]], GREEDY) if i < 12
                   else slots.answer(["base", "full", "lora"], [prompts[0]], GREEDY))
    assert [o["base"][0] for o in out[:12]] == alone
    assert out[12] == compare_alone
    assert slots.batcher.batches < 13  # merged: fewer batches than requests


def test_seeded_sampling_in_a_crowd_gives_each_request_its_own_reproducible_summary(tiny_t5, prompts):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5)))
    settings = [GenerationSettings(max_new_tokens=20, strategy="sampling", seed=s) for s in (1, 2, 3, 4)]
    alone = [slots.generate(["base"], [prompts[1]], s)["base"][0] for s in settings]
    crowd = _at_once(8, lambda i: slots.answer(["base"], [prompts[1 if i < 4 else 2]],
                                               settings[i % 4] if i < 4 else GREEDY)["base"][0])
    assert crowd[:4] == alone
    assert len(set(alone)) > 1  # the seeds matter, so equality above is not trivial


def test_identical_requests_are_computed_once_and_never_served_after_a_slot_change(
        tiny_t5, random_adapter, fresh_adapter, prompts):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5), lora=str(random_adapter)))
    out = _at_once(10, lambda i: slots.answer(["lora"], [prompts[3]], GREEDY)["lora"][0])
    assert len(set(out)) == 1 and slots.answers.computed == 1 and slots.answers.served == 9
    slots.set_source("lora", str(fresh_adapter))  # a fresh adapter: the base model's output
    after = slots.answer(["lora"], [prompts[3]], GREEDY)["lora"][0]
    assert after == slots.generate(["base"], [prompts[3]], GREEDY)["base"][0]
    assert after != out[0] and slots.answers.computed == 2


def test_a_cancel_in_one_request_never_cancels_another(tiny_t5, prompts):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5)), limits=BatchLimits(window_s=0.3))
    mine, theirs = threading.Event(), []
    mine.set()  # withdrawn before its batch starts (the window holds the batch for 0.3 s)
    with ThreadPoolExecutor(2) as pool:
        cancelled = pool.submit(slots.answer, ["base"], [prompts[4]], GREEDY, cancel=mine)
        other = pool.submit(slots.answer, ["base"], [prompts[5]], GREEDY, cancel=threading.Event())
        with pytest.raises(Cancelled):
            cancelled.result()
        theirs = other.result()["base"][0]
    assert theirs == slots.generate(["base"], [prompts[5]], GREEDY)["base"][0]


def test_an_identical_request_whose_owner_cancels_is_still_answered(tiny_t5, prompts):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5)), limits=BatchLimits(window_s=0.3))
    owner = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(slots.answer, ["base"], [prompts[6]], GREEDY, cancel=owner)
        second = pool.submit(slots.answer, ["base"], [prompts[6]], GREEDY)
        owner.set()
        with pytest.raises(Cancelled):
            first.result()
        assert second.result()["base"][0] == slots.generate(["base"], [prompts[6]], GREEDY)["base"][0]


def test_streams_of_a_batch_end_with_each_requests_summary(tiny_t5, prompts):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5)))
    seen = {i: [] for i in range(4)}
    out = _at_once(4, lambda i: slots.answer(["base"], [prompts[i]], GREEDY, streams={0: seen[i].append}))
    for i in range(4):
        assert len(seen[i]) > 2 and seen[i][-1] == out[i]["base"][0]  # token by token, then the summary


def test_ct2_rows_of_several_requests_equal_each_alone(tiny_t5, random_adapter, prompts):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5), lora=str(random_adapter)), backend="ct2",
                       compute_type="float32")
    alone = [slots.generate(["base", "lora"], [p], GREEDY) for p in prompts[:4]]
    crowd = _at_once(4, lambda i: slots.answer(["base", "lora"], [prompts[i]], GREEDY))
    assert crowd == alone


def test_session_limit_refuses_the_third_waiting_request_of_one_session_only():
    limit, a, b = SessionLimit(2), gr.Request(session_hash="a"), gr.Request(session_hash="b")
    with limit.admit(a), limit.admit(a):
        with pytest.raises(gr.Error, match="already have 2 requests"):
            with limit.admit(a):
                pass
        with limit.admit(b):  # another student (same IP in a classroom) is not affected
            pass
    with limit.admit(a):  # the first two finished: room again
        pass


def test_logins_are_checked():
    assert parse_login("ann:secret:x", "--student-auth") == ("ann", "secret:x")
    with pytest.raises(ValueError, match="--student-auth must be USER:PASSWORD"):
        parse_login("ann", "--student-auth")
    with pytest.raises(ValueError, match="also the teacher's login"):
        Classroom({"t": "1"}, {"t": "2"})
    assert Classroom().role_of(None) == "teacher" and not Classroom().enabled


# ---- the app with teacher and student logins -------------------------------------------------
TEACHER, STUDENT = ("teacher", "t-pass"), ("student1", "s-pass")
STUDENT_MAY = {"load_dialogue", "summarize", "compare", "refresh_runs", "export_compare", "toxicity",
               "score_shown", "arena_next", "arena_vote", "arena_rate", "arena_leaderboard", "set_task"}


@pytest.fixture(scope="module")
def classroom_app(tiny_t5, tiny_classifier, random_adapter, dialogsum_dir, tmp_path_factory):
    argv = ("--auth", ":".join(TEACHER), "--student-auth", ":".join(STUDENT),
            *(a for k in range(2, 8) for a in ("--student-auth", f"student{k}:x")))
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory.mktemp("runs"), argv,
                     lora=random_adapter) as served:
        yield served


def _client(url, login):
    return Client(url, auth=login, verbose=False, httpx_kwargs={"timeout": 600})


def _endpoints(client) -> list[str]:
    return [name.lstrip("/") for name in client.view_api(print_info=False, return_format="dict")["named_endpoints"]]


def test_every_named_endpoint_is_allowed_to_students_or_refused_naming_the_teacher(classroom_app):
    studio, url = classroom_app
    student = _client(url, STUDENT)
    names = _endpoints(student)
    assert STUDENT_MAY <= set(names) and {"set_lora", "start_run", "evaluate", "arena_new_session"} <= set(names)
    for name in sorted(set(names) - STUDENT_MAY):
        info = student.view_api(print_info=False, return_format="dict")["named_endpoints"][f"/{name}"]
        args = [None if "file" in str(p.get("python_type")).lower() else p.get("example_input")
                for p in info["parameters"] if not p.get("parameter_has_default")]
        with pytest.raises(AppError, match="needs the teacher's login") as refused:
            student.predict(*args, api_name=f"/{name}")
        assert name in str(refused.value)
    source = studio.slots.source("lora")
    assert studio.slots.source("lora") == source  # nothing changed by the refused calls


def test_students_summarize_and_compare_while_the_teacher_changes_a_slot(classroom_app, dialogsum_dir):
    studio, url = classroom_app
    dialogue = load_split(str(dialogsum_dir), "test")[8]["dialogue"]
    student = _client(url, STUDENT)
    *_, results = student.predict(dialogue, 24, api_name="/compare")
    assert [row["slot"] for row in results["slots"] if row["filled"]] == ["base", "lora"]
    with pytest.raises(AppError, match="needs the teacher's login"):
        student.predict("", api_name="/set_lora")
    assert studio.slots.source("lora") is not None
    teacher = _client(url, TEACHER)
    teacher.predict("", api_name="/set_lora")  # the teacher empties the slot
    assert studio.slots.source("lora") is None


def test_concurrent_student_sessions_get_exactly_their_own_summaries(classroom_app, dialogsum_dir):
    studio, url = classroom_app
    rows = load_split(str(dialogsum_dir), "test")
    dialogues = [rows[20 + i]["dialogue"] for i in range(6)]
    clients = [_client(url, (f"student{k + 2}", "x")) for k in range(len(dialogues))]  # six students
    before = studio.slots.batcher.batches
    args = ("zero-shot", "", 2, 24, 0, "greedy", 0.7, 50, 1.0, 4, 42)
    out = _at_once(len(clients), lambda i: clients[i].predict(dialogues[i], *args, api_name="/summarize"))
    for (prompt, _, summary, *_), dialogue in zip(out, dialogues):
        assert summary == studio.slots.generate(["base"], [prompt], GREEDY)["base"][0]
        assert dialogue.split("\n")[0][:40] in prompt
    assert studio.slots.batcher.batches - before < len(clients)


def _waiting(tokens: list[int]) -> list[Request]:
    """One waiting Summarize request per prompt length in ``tokens``."""
    return [Request(rows=[("base", f"prompt {k}")], settings=GenerationSettings(), tokens=t)
            for k, t in enumerate(tokens)]


def test_a_class_waiting_is_packed_into_length_sorted_batches_and_the_oldest_goes_first():
    tokens = [431, 120, 380, 95, 260, 510, 150, 300, 220, 480, 130, 340, 170, 410, 200, 90, 360, 280, 240,
              110, 450, 190, 320, 140, 500, 210, 390, 160, 270, 100]  # 30 students, oldest first
    for oldest in (340, 220):  # the oldest among the longest 16, then among the shortest 16, neither at the end
        order = [oldest] + [t for t in tokens if t != oldest]
        batcher = RequestBatcher(run=lambda rows, settings, streams: [])
        batcher._pending.extend(_waiting(order))
        first, second = batcher._take_batch(), batcher._take_batch()
        assert first[0].tokens == oldest and len(first) == 16 and len(second) == 14
        ranked = sorted(tokens)
        ends = (ranked[14:], ranked[:14]) if oldest == 340 else (ranked[:16], ranked[16:])
        assert (sorted(r.tokens for r in first), sorted(r.tokens for r in second)) == ends


def test_the_worker_waits_while_a_class_keeps_arriving_and_a_request_alone_one_window():
    sizes: list[int] = []
    batcher = RequestBatcher(run=lambda rows, settings, streams: sizes.append(len(rows)) or [""] * len(rows),
                             limits=BatchLimits(window_s=0.05, longest_wait_s=2.0))
    started = time.monotonic()
    batcher.submit(_waiting([100])[0])
    alone = time.monotonic() - started
    assert sizes == [1] and alone < 0.5
    threads = [threading.Thread(target=batcher.submit, args=(r,)) for r in _waiting([100] * 10)]
    for t in threads:  # one every 20 ms: 0.2 s in all, longer than a window
        t.start()
        time.sleep(0.02)
    for t in threads:
        t.join()
    assert sizes == [1, 10]  # one batch; with one window only, the first batch took the first few
