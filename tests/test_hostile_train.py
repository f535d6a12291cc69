"""Hostile inputs to the Train tab's endpoints, through gradio_client against the real app.

Every case in :data:`CASES` must be refused with an ``AppError`` whose message names the field
(or setting) that was wrong, must leave no run folder behind, and the app must answer a normal
request afterwards. Arguments that gradio_client cannot encode (lone surrogates: httpx refuses
them) go over raw HTTP to the same endpoint, JSON-escaped as a hostile client would send them.
``python -m pytest -q tests/test_hostile_train.py -rA`` lists the cases.
"""
from __future__ import annotations

import json

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from summarizer.runs import RUN_ID_RE
from tests.app_server import running_app

LONG = "x" * 1_000_000
RUN = "lora-20260101-000000-001"  # well formed, but no such run
BAD_IDS = ["", "   ", "..", ".", "/etc", "a/b", "/tmp/runs/" + RUN, "../" + RUN, RUN + "/..", RUN + "\n",
           "x" * 100_000, "\x00\x01", "\ud800", "<script>alert(1)</script>", RUN.upper(), RUN]
WRONG_TYPES = [5, None, ["a"], {"run_id": RUN}, 1.5, True]


def S(**values) -> str:
    """A settings JSON text (NaN/Infinity written as JSON extensions, as a hostile client would)."""
    return json.dumps(values)


def _start(name, method, settings, field, procs=1):
    return pytest.param("/start_run", (method, settings, procs), field, id=f"start_run-{name}")


CASES = [
    # ---- method ----
    *[_start(f"method-{i}", m, "{}", "method") for i, m in enumerate(
        ["", " ", "x" * 100_000, "lora\x00", "\ud800", "<b>lora</b>", "LORA", "../lora", 5, ["lora"], {"m": 1}, None])],
    # ---- the settings text ----
    _start("settings-list", "lora", "[1, 2]", "settings"),
    _start("settings-string", "lora", '"max_steps"', "settings"),
    _start("settings-number", "lora", "5", "settings"),
    _start("settings-null", "lora", "null", "settings"),
    _start("settings-broken", "lora", "{", "settings"),
    _start("settings-deep", "lora", "[" * 100_000 + "]" * 100_000, "settings"),
    _start("settings-huge", "lora", "{" + '"a": 1, ' * 300_000 + '"b": 2}', "settings"),
    _start("settings-not-text", "lora", ["max_steps", 5], "settings"),
    _start("settings-control", "lora", "\x00\x01", "settings"),
    # ---- number fields: NaN, inf, text, lists, objects, fractions, out of range ----
    *[_start(f"max_steps-{i}", "lora", text, "max_steps") for i, text in enumerate(
        ['{"max_steps": NaN}', '{"max_steps": Infinity}', '{"max_steps": -Infinity}', S(max_steps="eight"),
         S(max_steps=[1]), S(max_steps={"$gt": 1}), S(max_steps=2.5), S(max_steps=0), S(max_steps=-1),
         S(max_steps=1e9), S(max_steps=True), S(max_steps=None), S(max_steps="")])],
    _start("seed-text", "full", S(seed="abc"), "seed"),
    _start("seed-negative", "full", S(seed=-5), "seed"),
    _start("batch-huge", "full", S(batch_size=1_000_000), "batch_size"),
    _start("train_size-huge", "full", S(train_size=10**12), "train_size"),
    _start("val_size-negative", "lora", S(val_size=-1), "val_size"),
    _start("val_size-huge", "lora", S(val_size=10**7), "val_size"),
    _start("lr-nan", "lora", '{"learning_rate": NaN}', "learning_rate"),
    _start("lr-text", "lora", S(learning_rate="fast"), "learning_rate"),
    _start("lr-range", "lora", S(learning_rate=5), "learning_rate"),
    _start("lora_r-zero", "lora", S(lora_r=0), "lora_r"),
    _start("eval_steps-list", "full", S(eval_steps=[10]), "eval_steps"),
    _start("mini_batch-not-divisor", "ppo", S(mini_batch_size=5), "mini_batch_size"),
    _start("top_p-inf", "ppo", '{"top_p": Infinity}', "top_p"),
    _start("adap_kl-text", "ppo", S(adap_kl_ctrl="yes"), "adap_kl_ctrl"),
    # ---- text and path fields ----
    _start("base-1M", "lora", S(base_model=LONG), "base_model"),
    _start("base-etc", "lora", S(base_model="/etc"), "base_model"),
    _start("base-passwd", "lora", S(base_model="../../../../etc/passwd"), "base_model"),
    _start("base-html", "lora", S(base_model="<img src=x onerror=alert(1)>"), "base_model"),
    _start("base-newline", "lora", S(base_model="a\nb"), "base_model"),
    _start("base-surrogate", "lora", S(base_model="\ud800"), "base_model"),
    _start("base-number", "lora", S(base_model=5), "base_model"),
    _start("base-list", "lora", S(base_model=["google/flan-t5-base"]), "base_model"),
    _start("base-no-such-user", "lora", S(base_model="~nosuchuser/m"), "base_model"),  # RuntimeError in pathlib
    _start("dataset-etc", "full", S(dataset="/etc"), "dataset"),
    _start("dataset-no-such-user", "full", S(dataset="~nosuchuser/d"), "dataset"),
    _start("dataset-file", "full", S(dataset="/etc/passwd"), "dataset"),
    _start("dataset-missing", "full", S(dataset="/nonexistent/dialogsum"), "dataset"),
    _start("dataset-traversal", "full", S(dataset="../../../../"), "dataset"),
    _start("targets-unknown", "lora", S(target_modules="zz"), "target_modules"),
    _start("targets-shell", "lora", S(target_modules="q; rm -rf /"), "target_modules"),
    _start("adapter-etc", "ppo", S(start_adapter="/etc"), "start_adapter"),
    _start("toxicity-etc", "ppo", S(toxicity_model="/etc"), "toxicity_model"),
    _start("unknown-setting", "lora", S(evil=1), "evil"),
    _start("run_dir-setting", "lora", S(run_dir="/tmp/elsewhere"), "run_dir"),
    _start("runs_dir-setting", "lora", S(runs_dir="/"), "runs_dir"),
    # ---- processes ----
    *[_start(f"processes-{i}", "lora", "{}", "num_processes", procs=p) for i, p in enumerate(
        [0, -1, 1000, 2.5, "two", [2]])],
    # ---- run ids ----
    *[pytest.param(ep, (rid,), "run_id", id=f"{ep[1:]}-id{i}")
      for ep in ("/cancel_run", "/run_metrics") for i, rid in enumerate(BAD_IDS + WRONG_TYPES)],
    # ---- resume, delete, export, overlay (issue 9) ----
    *[pytest.param(ep, args, "run_id", id=f"{ep[1:]}-id{i}")
      for ep, extra in (("/resume_run", ()), ("/delete_run", ("x",)), ("/export_run", ("",)))
      for i, args in enumerate((rid, *extra) for rid in BAD_IDS[:8] + WRONG_TYPES[:3])],
    pytest.param("/overlay_runs", ([RUN],), "run_id", id="overlay-unknown-run"),
    pytest.param("/overlay_runs", (["../x"],), "run_id", id="overlay-traversal"),
    pytest.param("/overlay_runs", ([RUN] * 9,), "run_ids", id="overlay-too-many"),
    pytest.param("/start_run", ("ppo", "{}", 2), "num_processes must be 1 for PPO", id="ppo-two-processes"),
]


@pytest.fixture(scope="module")
def served(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory):
    runs = tmp_path_factory.mktemp("hostile") / "runs"
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, runs) as (studio, url):
        yield studio, url, Client(url, verbose=False)


def refusal(url: str, client: Client, endpoint: str, args: tuple) -> str:
    """The error message the app answers ``args`` with (fails the test if it answers normally)."""
    try:
        json.dumps(args, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogate: raw HTTP (gradio's /call API), escaped JSON
        name = endpoint.strip("/")
        posted = httpx.post(f"{url}gradio_api/call/{name}", content=json.dumps({"data": list(args)}),
                            headers={"content-type": "application/json"}, timeout=60)
        stream = httpx.get(f"{url}gradio_api/call/{name}/{posted.json()['event_id']}", timeout=60).text
        assert stream.startswith("event: error"), stream[:300]
        return json.loads(stream.split("data: ", 1)[1].splitlines()[0])["error"]
    with pytest.raises(AppError) as caught:
        client.predict(*args, api_name=endpoint)
    return str(caught.value)


@pytest.mark.parametrize("endpoint, args, field", CASES)
def test_hostile_input_named_and_app_answers(served, endpoint, args, field):
    studio, url, client = served
    message = refusal(url, client, endpoint, args)
    assert field in message, message[:400]
    assert "Traceback" not in message and len(message) < 2000
    # Nothing was queued, and the app still answers a normal request.
    assert client.predict(api_name="/list_runs") == []
    # No run folder (the Arena tab keeps its votes database in the same folder).
    assert not [p for p in studio.runs_dir.iterdir() if RUN_ID_RE.fullmatch(p.name)]
