"""``--serve ray``: the model slots as two Ray Serve replicas on a local Ray, against the in-process app.

One local Ray instance (this machine's CPUs, two replicas of half a CPU each) serves the module;
its start is most of the time (about 30 s here). The checks: concurrent Summarize and Compare
answers through the app equal the in-process app's (greedy), streaming included; a slot change
reaches both replicas; an answer made under an older slot state is never returned; a killed
replica is recovered without a lost or mixed answer; Ray not reachable at start names
``--ray-address`` and starts nothing.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="ray[serve] is not installed: pip install \"ray[serve]==2.60.0\"")
pytest.importorskip("ray.serve", reason="ray[serve] is not installed: pip install \"ray[serve]==2.60.0\"")

from gradio_client import Client  # noqa: E402

from summarizer.data import load_split  # noqa: E402
from summarizer.inference.generation import GenerationSettings  # noqa: E402
from summarizer.inference.ray_serve import APP_NAME, RaySlots, SlotState, stop_ray_slots  # noqa: E402
from summarizer.inference.serve_config import RayServeConfig  # noqa: E402
from summarizer.inference.slot_config import SlotConfig, SlotError  # noqa: E402
from summarizer.inference.slots import ModelSlots  # noqa: E402
from summarizer.prompts import build_prompt  # noqa: E402
from tests.app_server import free_port, running_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GREEDY = GenerationSettings(max_new_tokens=16)
SUMMARIZE_ARGS = ("zero-shot", "", 2, 16, 0, "greedy", 0.7, 50, 1.0, 4, 42)
RAY_ARGV = ("--serve", "ray", "--replicas", "2", "--replica-cpus", "0.5")


def _at_once(n: int, call):
    """``call(i)`` for i in 0..n-1 from n threads released together; the results in order."""
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        return call(i)
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


@pytest.fixture(scope="module")
def apps(tiny_t5, tiny_classifier, random_adapter, dialogsum_dir, tmp_path_factory):
    """(in-process studio and url, Ray-served studio and url), the same models in both."""
    models = dict(full=tiny_t5, lora=random_adapter)
    common = (tiny_t5, tiny_classifier, dialogsum_dir)
    try:
        with running_app(*common, tmp_path_factory.mktemp("local"), **models) as local, \
                running_app(*common, tmp_path_factory.mktemp("ray"), extra_argv=RAY_ARGV, **models) as served:
            assert isinstance(served[0].slots, RaySlots) and not isinstance(local[0].slots, RaySlots)
            yield local, served
    finally:
        if ray.is_initialized():
            stop_ray_slots()


@pytest.fixture(scope="module")
def dialogues(dialogsum_dir) -> list[str]:
    return list(load_split(str(dialogsum_dir), "test")["dialogue"][:12])


def _prompts(slots, dialogues) -> list[str]:
    return [build_prompt("zero-shot", d, tokenizer=slots.tokenizer).text for d in dialogues]


def test_concurrent_summarize_and_compare_equal_the_in_process_app(apps, dialogues):
    (_, local_url), (served, served_url) = apps
    calls = [("summarize", d) for d in dialogues[:4]] + [("compare", d) for d in dialogues[6:8]]

    def ask(url):
        clients = [Client(url, verbose=False) for _ in calls]
        return _at_once(len(calls), lambda i: clients[i].predict(calls[i][1], *SUMMARIZE_ARGS, api_name="/summarize")
                        if calls[i][0] == "summarize" else clients[i].predict(calls[i][1], 16, api_name="/compare"))
    want, got = ask(local_url), ask(served_url)
    assert got == want  # every Summarize (prompt, summary, ROUGE) and Compare (four slots, scores) output
    assert all(summary for _, _, summary, *_ in got[:4])
    assert len(served.slots.replies) == 2  # both replicas answered

    # streaming through Ray Serve's streaming response: the text grows, ends at the final summary
    # (a summary long enough to outlast the replica's first wait, FIRST_MESSAGE_S)
    prompt, long = _prompts(served.slots, dialogues[9:10])[0], GenerationSettings(max_new_tokens=256, min_new_tokens=256)
    seen: list[str] = []
    final = served.slots.answer(["base", "lora"], [prompt], long, streams={0: seen.append})
    alone = ModelSlots(SlotConfig(base=served.slots.source("base"), lora=served.slots.source("lora")))
    assert final == alone.generate(["base", "lora"], [prompt], long)
    assert len(seen) > 1 and seen[-1] == final["base"][0] and final["base"][0].startswith(seen[0])


def test_a_slot_change_reaches_both_replicas(apps, dialogues, fresh_adapter, random_adapter):
    (_, _), (served, _) = apps
    slots = served.slots
    prompts = _prompts(slots, dialogues)
    before = slots.answer(["base", "lora"], prompts[:1], GREEDY)
    assert before["lora"] != before["base"]  # the random adapter changes the output
    epoch = slots.epoch
    slots.set_source("lora", str(fresh_adapter))  # the teacher's Apply: a no-op adapter (B = 0)
    slots.replies.clear()
    try:
        out = _at_once(len(prompts), lambda i: slots.answer(["base", "lora"], [prompts[i]], GREEDY))
        assert slots.epoch == epoch + 1 and len(slots.replies) == 2  # both replicas answered under it
        assert all(o["lora"] == o["base"] for o in out)  # every answer made with the new adapter
    finally:
        slots.set_source("lora", str(random_adapter))
    assert slots.answer(["base", "lora"], prompts[:1], GREEDY) == before


class _Reply:
    def __init__(self, value):
        self.value = value

    def result(self, timeout_s=None):
        return self.value


class _FakeHandle:
    """A deployment handle whose replica answered under the state of the previous call, once."""

    def __init__(self, owner):
        self.owner, self.sent = owner, []
        self.info = type("Info", (), {"remote": lambda _: _Reply({"device": "cpu", "dtype": "float32"})})()
        self.answer = type("Answer", (), {"remote": self._answer})()

    def _answer(self, state: SlotState, slots, prompts, settings):
        self.sent.append(state.epoch)
        made_under = state.epoch - 1 if len(self.sent) == 1 else state.epoch  # first reply: an older state
        texts = [f"{slot} at epoch {made_under}" for slot in slots for _ in prompts]
        return _Reply({"value": texts, "token": (self.owner, made_under), "replica": "r1"})


def test_an_answer_made_under_an_older_slot_state_is_sent_again_never_shown(tiny_t5):
    handle = _FakeHandle("app-1")
    slots = RaySlots(SlotConfig(base=str(tiny_t5)), handle, RayServeConfig(replicas=2), owner="app-1")
    out = slots.answer(["base"], ["Summarize: hi"], GREEDY)
    assert out == {"base": [f"base at epoch {slots.epoch}"]} and handle.sent == [slots.epoch, slots.epoch]
    assert slots.retries == 1
    handle.sent = []  # a replica that never catches up: a clear error, no old answer

    def stale(state, slots_, prompts, settings):
        return _Reply({"value": ["old"], "token": (state.owner, state.epoch - 1), "replica": "r1"})
    handle.answer = type("Answer", (), {"remote": staticmethod(stale)})()
    with pytest.raises(SlotError, match="changed while this request ran"):
        slots.answer(["base"], ["Summarize: another"], GREEDY)


def _replica_actors() -> list:
    return [a for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith(f"SERVE_REPLICA::{APP_NAME}#")]


def test_a_killed_replica_is_recovered_and_no_answer_is_lost_or_mixed(apps, dialogues):
    (_, _), (served, _) = apps
    slots = served.slots
    prompts = _prompts(slots, dialogues)
    long = GenerationSettings(max_new_tokens=300, min_new_tokens=300)  # long: killed mid-request
    alone = ModelSlots(SlotConfig(base=slots.source("base"), lora=slots.source("lora")))
    want = alone.generate(["base", "lora"], prompts, long)
    retries, victims = slots.retries, []
    streaming = [threading.Event() for _ in prompts]

    def kill_mid_request():  # once every request streams, a replica that runs some of them
        for event in streaming:
            event.wait(60)
        busy = next(iter(slots.serving))
        victims.append(next(a for a in _replica_actors() if a["name"].endswith(f"#{busy}")))
        ray.kill(ray.get_actor(victims[0]["name"], namespace=victims[0]["namespace"]), no_restart=False)
    killer = threading.Thread(target=kill_mid_request)
    killer.start()
    out = _at_once(len(prompts), lambda i: slots.answer(["base", "lora"], [prompts[i]], long,
                                                         streams={0: lambda _, i=i: streaming[i].set()}))
    killer.join()
    victim = victims[0]
    assert [o["base"][0] for o in out] == want["base"] and [o["lora"][0] for o in out] == want["lora"]
    assert slots.retries > retries  # the dead replica's requests were sent again
    deadline = time.monotonic() + 120  # Ray Serve starts a new replica in its place (once past 60 s on a busy machine)
    while time.monotonic() < deadline and not (_running_replicas() == 2 and victim not in _replica_actors()):
        time.sleep(0.5)
    assert _running_replicas() == 2 and victim not in _replica_actors()
    slots.replies.clear()
    deadline, attempt = time.monotonic() + 45, 0  # the handle's router sends to it some seconds later
    while len(slots.replies) < 2 and time.monotonic() < deadline:
        attempt += 1
        fresh = [f"{p} Once more ({attempt})." for p in prompts[:6]]  # new requests: not from the answer cache
        out = _at_once(len(fresh), lambda i: slots.answer(["base", "lora"], [fresh[i]], GREEDY))
        assert out == [alone.generate(["base", "lora"], [p], GREEDY) for p in fresh]
        time.sleep(1)
    assert len(slots.replies) == 2  # the new replica caught up with the slot state and answers


def _running_replicas() -> int:
    from ray import serve

    app = serve.status().applications.get(APP_NAME)
    states = app.deployments["SlotReplica"].replica_states if app else {}
    return sum(n for state, n in states.items() if str(state).rsplit(".", 1)[-1] == "RUNNING")


def test_ray_not_reachable_at_start_names_the_flag_and_starts_nothing(tiny_t5, tiny_classifier, dialogsum_dir,
                                                                      tmp_path):
    port = free_port()  # nobody listens there
    cmd = [sys.executable, "app.py", "--offline", "--serve", "ray", "--ray-address", f"127.0.0.1:{port}",
           "--base-model", str(tiny_t5), "--toxicity-model", str(tiny_classifier), "--dataset", str(dialogsum_dir),
           "--runs-dir", str(tmp_path), "--port", str(free_port())]
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and time.monotonic() - started < 60
    assert f"--ray-address 127.0.0.1:{port}" in done.stderr and "ray start --head" in done.stderr
    assert "Running on" not in done.stdout  # no page was served


def test_a_pickle_only_folder_is_refused_before_it_reaches_the_replicas(tiny_t5, fresh_adapter, tmp_path):
    """The Ray slots check a new source as the in-process slots do (one shared check), so no
    replica is told to load weights the restricted unpickler refuses."""
    from tests.test_models import pickle_only_folder

    slots = RaySlots(SlotConfig(base=str(tiny_t5)), _FakeHandle("app-1"), RayServeConfig(replicas=2), owner="app-1")
    epoch = slots.epoch
    evil = pickle_only_folder(tmp_path / "evil-adapter", fresh_adapter, adapter=True)
    with pytest.raises(SlotError, match="holds pickle weights"):
        slots.set_source("lora", str(evil))
    assert slots.config.lora is None and slots.epoch == epoch  # the slot keeps what it held
