"""The server's own work per request (issue 23, items 6 and 7): paced stream updates for a class,
and CTranslate2 threads that never exceed the cores when the four slots translate side by side.

Models: the tiny T5 fixture and a random LoRA adapter; data: the real DialogSum test split.
"""
from __future__ import annotations

import asyncio
import queue
import types
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from summarizer.inference.ct2_engine import ThreadLayout
from summarizer.inference.generation import GenerationSettings
from summarizer.inference.slot_config import SlotConfig
from summarizer.inference.slots import ModelSlots
from summarizer.inference.pacing import StreamPacer
from summarizer.inference.ray_serve import FIRST_MESSAGE_S, STREAM_INTERVAL_S, STREAM_RATE, SlotReplica
from summarizer.prompts import build_prompt
from ui.prompting import SETTING_NAMES, _newest, summarize, summarize_streamed

GREEDY = GenerationSettings(max_new_tokens=30)


@pytest.fixture(autouse=True)
def _cache_env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("STUDIO_CT2_CACHE", str(tmp_path_factory.getbasetemp() / "ct2-overhead"))


@pytest.fixture(scope="module")
def prompts(dialogsum_dir, tiny_t5):
    from transformers import AutoTokenizer

    from summarizer.data import load_split

    tok = AutoTokenizer.from_pretrained(tiny_t5)
    return [build_prompt("zero-shot", r["dialogue"], tokenizer=tok).text
            for r in load_split(dialogsum_dir, "test", limit=8)]


def test_a_page_alone_gets_every_token_and_a_class_one_update_per_tenth_of_a_second():
    pacer = StreamPacer(rate=240, longest_s=0.25)
    assert pacer.interval() == 0.0
    with pacer.streaming() as interval:
        assert interval() == 0.0  # one page streaming: every token, as before
        with pacer.streaming():
            assert interval() == pytest.approx(2 / 240)
    class_of = [pacer.streaming() for _ in range(24)]
    for page in class_of:
        page.__enter__()
    assert pacer.interval() == pytest.approx(0.1)
    more = [pacer.streaming() for _ in range(100)]
    for page in more:
        page.__enter__()
    assert pacer.interval() == 0.25  # never longer than longest_s
    for page in class_of + more:
        page.__exit__(None, None, None)
    assert pacer.interval() == 0.0
    with pytest.raises(ValueError, match="rate must be > 0"):
        StreamPacer(rate=0)


def _feed(texts: list[str], every_s: float) -> queue.SimpleQueue:
    """A queue that receives ``texts`` one per ``every_s`` seconds from a thread, then None."""
    updates: queue.SimpleQueue = queue.SimpleQueue()

    def put():
        for text in texts:
            updates.put(text)
            time.sleep(every_s)
        updates.put(None)
    threading.Thread(target=put, daemon=True).start()
    return updates


def test_newest_spaces_updates_and_each_carries_the_newest_text():
    texts = ["x" * k for k in range(1, 121)]  # 120 tokens, one every 2 ms: about 0.3 s
    got, at = [], []
    for text in _newest(_feed(texts, 0.002), lambda: 0.05):
        got.append(text)
        at.append(time.monotonic())
    gaps = [b - a for a, b in zip(at, at[1:])]
    assert 2 <= len(got) <= 12, got  # about one per 50 ms instead of 120
    assert all(g >= 0.045 for g in gaps), gaps
    assert got == sorted(got, key=len) and len(set(got)) == len(got)  # each newer than the one before
    # with no interval and tokens slower than the reader, every text is handed out
    assert list(_newest(_feed(texts[:20], 0.005))) == texts[:20]


@pytest.fixture(scope="module")
def studio(tiny_t5, tiny_classifier, dialogsum_dir):
    from summarizer.toxicity import ToxicityScorer
    from ui.context import Studio

    return Studio(slots=ModelSlots(SlotConfig(base=str(tiny_t5)), device="cpu"),
                  toxicity=ToxicityScorer(str(tiny_classifier), device="cpu"),
                  dataset=str(dialogsum_dir), runs_dir=Path("unused-runs"))


def _replica_messages(streams_on_replica: int, texts: list[str], every_s: float, done_after_s: float):
    """(messages, the start held for the reply, seconds from the first text to the stream's end) of
    :meth:`SlotReplica._paced` for one stream while ``streams_on_replica`` streams share the replica's pacer: ``texts`` arrive one per
    ``every_s`` seconds, and the reply is done ``done_after_s`` seconds after the first."""
    replica = types.SimpleNamespace(pacer=StreamPacer(rate=STREAM_RATE), replica_id="r1")

    async def run():
        loop, events = asyncio.get_running_loop(), asyncio.Queue()
        reply = loop.create_future()

        async def feed():
            events.put_nowait(("start", 1, None))
            for text in texts:
                events.put_nowait(("row", 0, text))
                await asyncio.sleep(every_s)
            await asyncio.sleep(max(0.0, done_after_s - every_s * len(texts)))
            reply.set_result({"value": texts[-1]})
            events.put_nowait(None)
        others = [replica.pacer.streaming() for _ in range(streams_on_replica - 1)]
        for other in others:
            other.__enter__()
        started = time.monotonic()
        feeder = asyncio.ensure_future(feed())
        held = {}
        with replica.pacer.streaming() as interval:
            messages = [m async for m in SlotReplica._paced(replica, events, reply, interval, held)]
        await feeder
        return messages, held, time.monotonic() - started
    return asyncio.run(run())


def test_a_replica_paces_a_class_stream_messages_and_never_holds_back_the_answer():
    texts = [" ".join(["word"] * k) for k in range(1, 61)]  # a token every 10 ms for 0.6 s
    alone, held, _ = _replica_messages(1, texts, 0.01, 0.6)
    crowded, _, _ = _replica_messages(12, texts, 0.01, 0.6)  # a class of 24 on two replicas
    assert held == {}  # both starts went in the first message
    # the first message (the start and the newest text by then) waits FIRST_MESSAGE_S, or the
    # crowded interval (0.25 s) if longer
    assert alone[0]["start"] == crowded[0]["start"] == 1 and alone[0]["replica"] == "r1"
    assert texts.index(alone[0]["rows"][0]) >= FIRST_MESSAGE_S / 0.01 - 2
    assert texts.index(crowded[0]["rows"][0]) >= 0.25 / 0.01 - 2
    for messages in (alone, crowded):
        rows = [m["rows"][0] for m in messages]
        assert all(texts.index(a) < texts.index(b) for a, b in zip(rows, rows[1:]))  # in order, newest
        assert texts.index(rows[1]) - texts.index(rows[0]) >= 2  # the next waits an interval
    assert (0.6 - FIRST_MESSAGE_S) / STREAM_INTERVAL_S / 2 < len(alone) - 1  # alone: about one per 40 ms
    assert len(crowded) - 1 <= 0.6 / min(0.25, 12 / STREAM_RATE) + 1  # a class: one per 0.25 s
    assert len(crowded) < len(alone) / 3
    # A reply done 5 ms after the first text ends the first wait at once, and no message goes
    # before it: the start is held for the reply, which carries the final text.
    for streams in (1, 12):
        messages, held, seconds = _replica_messages(streams, texts[:1], 0.001, 0.005)
        assert messages == [] and held == {"start": 1, "replica": "r1"} and seconds < 0.08


def test_a_start_held_for_the_reply_still_reaches_on_start_and_the_stream_ends_at_the_final_text():
    from summarizer.inference.ray_serve import _Stream

    starts, texts, serving = [], [], {}
    reply = {"start": 3, "replica": "r1", "value": ["the final text"], "token": ("app", 1)}
    stream = _Stream(iter([reply]), {0: texts.append}, starts.append, serving)
    assert stream.drain(None) is reply
    assert starts == [3] and texts == ["the final text"] and serving == {} and stream.replica == "r1"


def test_a_class_streaming_at_once_gets_spaced_updates_and_each_its_own_final_outputs(studio):
    settings = GenerationSettings(max_new_tokens=60, min_new_tokens=60)
    values = [getattr(settings, name) for name in SETTING_NAMES]
    dialogues = [studio.split("test")[i]["dialogue"] for i in range(6)]
    pacer = StreamPacer(rate=60)  # 6 pages: one update per 0.1 s each
    barrier = threading.Barrier(len(dialogues))

    def page(dialogue):
        barrier.wait()
        steps, at = [], []
        for step in summarize_streamed(studio, dialogue, "zero-shot", "", 2, *values, lambda *a, **k: None,
                                       pacer=pacer):
            steps.append(step)
            at.append(time.monotonic())
        return steps, at

    with ThreadPoolExecutor(len(dialogues)) as pool:
        pages = list(pool.map(page, dialogues))
    for dialogue, (steps, at) in zip(dialogues, pages):
        plain = summarize(studio, dialogue, "zero-shot", "", 2, *values, lambda *a, **k: None)
        assert steps[-1] == plain  # the final values are the non-streamed ones, ROUGE included
        partials = [s[2] for s in steps[1:-1]]
        assert all(plain[2].startswith(p) for p in partials)
        streamed_at = at[1:-1]
        # while all six stream, no page gets two updates within the pacer's 0.1 s (a little slack)
        gaps = [b - a for a, b in zip(streamed_at, streamed_at[1:])]
        assert len(partials) < 60 and all(g >= 0.02 for g in gaps[:3]), gaps
    assert pacer.interval() == 0.0  # every page left the pacer


@pytest.mark.parametrize("cores", range(1, 33))
def test_translator_threads_never_exceed_the_cores(cores):
    layout = ThreadLayout.for_cores(cores, slots=4)
    assert layout.intra * layout.inter <= cores and layout.intra * layout.side_by_side <= cores
    assert layout.side_by_side == min(4, cores) and layout.intra >= 1
    for together in range(1, 5):  # k slots side by side, each split into parts(k) batches
        assert min(together, layout.side_by_side) * layout.parts(together) * layout.intra <= cores
    assert layout.parts(1) * layout.intra >= cores - layout.intra + 1  # a slot alone uses (about) every core


def test_ct2_translators_get_the_layout_and_four_slots_split_rows_equal_each_alone(tiny_t5, random_adapter,
                                                                                      prompts):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        slots = ModelSlots(SlotConfig(base=str(tiny_t5), full=str(tiny_t5), lora=str(random_adapter),
                                      detox=str(random_adapter)), device="cpu", backend="ct2", compute_type="float32")
        engine = slots.ct2_engine
        assert engine.layout == ThreadLayout(cores=2, intra=1, inter=2, side_by_side=2)
        alone = {p: slots.generate(["base", "lora"], [p], GREEDY) for p in prompts[:6]}
        model = engine.model("base")
        assert (model.threads, model.workers, model.translator.num_translators) == (1, 2, 2)
        assert torch.get_num_threads() == 2  # loading a translator with 1 thread left torch's threads alone
        # Compare: four slots, two translating at a time, one thread each
        four = slots.generate(["base", "full", "lora", "detox"], [prompts[0]], GREEDY)
        assert four["base"] == four["full"] == alone[prompts[0]]["base"] and four["lora"] == four["detox"]
        # one slot with six rows: two batches of three at once; each row's stream ends in its own text
        seen = {i: [] for i in range(6)}
        rows = [("base", p) for p in prompts[:6]]
        texts = engine.generate_rows(rows, GREEDY, {i: seen[i].append for i in range(6)})
        assert texts == [alone[p]["base"][0] for p in prompts[:6]]
        assert all(len(seen[i]) > 2 and seen[i][-1] == texts[i] for i in range(6))
        engine.cores = 1  # fewer cores: the translators are loaded anew with the new layout
        assert (engine.model("base").workers, engine.model("base").threads) == (1, 1)
    finally:
        torch.set_num_threads(threads)
