"""Hostile requests to the Compare and Evaluate endpoints (issue 8, findings 5, 6 and 10).

Every named endpoint of ``ui/compare/tab.py`` and ``ui/evaluate/tab.py`` gets empty, whitespace, huge,
control-character, lone-surrogate, HTML, wrong-type, NaN/inf, out-of-range and traversal input.
A refused request must raise ``AppError`` whose message matches the case's pattern (which names
the field); an accepted one must give the right answer. After every case the app must still
answer a normal ``/compare``. ``CASES`` is one list so the lead can count them:
``pytest tests/test_hostile_compare.py`` prints "N passed" = cases with a clear message or a
right answer.

NaN, Infinity and lone surrogates cannot leave gradio_client (its JSON encoder refuses them), so
those cases go as raw HTTP (``via="raw"``), exactly as a hand-written client could send them.
"""
from __future__ import annotations

import json
import pickle
import re

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from tests.app_server import running_app

NAN, INF = float("nan"), float("inf")
HTML = "<script>alert(1)</script><img src=x onerror=alert(2)>"
HUGE = "#Person1#: hello " * 2_000  # 34,000 characters
CONTROL = "\x00\x07\x1b\x7f"
DIALOGUE = "#Person1#: Is the shop open?\n#Person2#: Yes, until six."
SLOT_FIELD = {"full": "full slot", "lora": "lora", "detox": "detox"}


def refused(pattern: str):
    """The case must raise AppError matching ``pattern`` (which names the field)."""
    return ("refused", pattern)


def accepted(check):
    """The case must answer; ``check(outputs, studio)`` asserts the answer is right."""
    return ("accepted", check)


def _compare_json(outputs):
    return outputs[-1]


def _slot_emptied(slot):
    return lambda out, studio: out[0].startswith("no model yet") and studio.slots.source(slot) is None


MAX_NEW = "Max new tokens must be a whole number 1..512"
N_FIELD = r"Dialogues \(N\) must be a whole number 1..500"
EVAL_MAX_NEW = "Max new tokens must be a whole number 8..512"
SPLIT = "Split must be one of train, validation, test"
MODELS = "Models must be"

# (case id, endpoint, arguments, expectation, transport). Paths "<file>", "<pickle-dir>" are
# filled in by the test from temporary files.
CASES = [
    # ---- /compare: dialogue ------------------------------------------------------------------
    ("compare-dialogue-empty", "compare", ["", 8], refused("dialogue is empty"), "client"),
    ("compare-dialogue-whitespace", "compare", [" \n\t ", 8], refused("dialogue is empty"), "client"),
    ("compare-dialogue-huge", "compare", [HUGE, 8], refused("dialogue has 3[0-9,]+ characters, over the limit of 20,000"), "client"),
    ("compare-dialogue-only-control", "compare", [CONTROL, 8], refused("dialogue is empty"), "client"),
    ("compare-dialogue-control-removed", "compare", [CONTROL + DIALOGUE, 8],
     accepted(lambda out, s: _compare_json(out)["dialogue"] == DIALOGUE), "client"),
    ("compare-dialogue-lone-surrogate", "compare", ["#Person1#: hi \ud800 there", 8],
     accepted(lambda out, s: _compare_json(out)["dialogue"] == "#Person1#: hi \ufffd there"), "raw"),
    ("compare-dialogue-html-kept-as-text", "compare", [HTML, 8],
     accepted(lambda out, s: _compare_json(out)["dialogue"] == HTML and HTML in _compare_json(out)["prompt"]), "client"),
    ("compare-dialogue-number-refused", "compare", [12345, 8], refused("Dialogue must be text"), "client"),
    ("compare-dialogue-null", "compare", [None, 8], refused("dialogue is empty"), "client"),
    # ---- /compare: max new tokens ------------------------------------------------------------
    *[(f"compare-max-new-{name}", "compare", [DIALOGUE, v], refused(MAX_NEW), via) for name, v, via in [
        ("zero", 0, "client"), ("negative", -5, "client"), ("over", 513, "client"), ("fraction", 2.5, "client"),
        ("text", "eight", "client"), ("empty-text", "", "client"), ("list", [8], "client"), ("dict", {"a": 1}, "client"),
        ("null", None, "client"), ("bool", True, "client"), ("huge", 10**30, "client"), ("nan", NAN, "raw"),
        ("inf", INF, "raw"), ("minus-inf", -INF, "raw"), ("html", HTML, "client")]],
    ("compare-max-new-numeric-text", "compare", [DIALOGUE, "8"],
     accepted(lambda out, s: all(r["summary"] for r in _compare_json(out)["slots"])), "client"),
    # Number text follows the app's one rule (summarizer.text.as_number): plain decimals only.
    ("compare-max-new-spaced-text", "compare", [DIALOGUE, " 8 "],
     accepted(lambda out, s: all(r["summary"] for r in _compare_json(out)["slots"])), "client"),
    ("compare-max-new-whole-text", "compare", [DIALOGUE, "8.0"],
     accepted(lambda out, s: all(r["summary"] for r in _compare_json(out)["slots"])), "client"),
    *[(f"compare-max-new-{name}-text", "compare", [DIALOGUE, v], refused(f"{MAX_NEW}, got the text '{v}'"), "client")
      for name, v in [("underscore", "1_0"), ("hex", "0x8"), ("exponent", "8e0"), ("inf", "inf"), ("nan", "nan")]],
    # ---- /set_full, /set_lora, /set_detox: the source ------------------------------------------
    *[(f"set-{slot}-{name}", f"set_{slot}", [v], refused(pattern.format(slot=slot)), via)
      for slot in ("full", "lora", "detox") for name, v, pattern, via in [
        ("huge", "x" * 5_000, r"The {slot} slot's source has 5,000 characters, over the limit", "client"),
        ("control", "models/\x00evil", r"The {slot} slot's source contains control characters", "client"),
        ("newline", "models/a\nb", r"The {slot} slot's source contains control characters", "client"),
        ("lone-surrogate", "models/\ud800", r"The {slot} slot's source contains control characters or invalid Unicode", "raw"),
        ("number", 123, r"The {slot} slot's source must be text", "client"),
        ("list", ["a"], r"The {slot} slot's source must be text", "client"),
        ("nan", NAN, r"The {slot} slot's source must be text", "raw"),
        # Relative sources resolve against the app's working folder, so ../../etc is /etc on one
        # machine and missing on another (CI's clone sits elsewhere): either answer names slot and path.
        ("traversal", "../../etc", r"The {slot} slot(?: needs a .*\.\./\.\./etc (?:has none|holds no model files)"
                                   r"|'s source: Model folder \.\./\.\./etc does not exist)", "client"),
        ("etc", "/etc", r"The {slot} slot needs a", "client"),
        ("etc-passwd", "/etc/passwd", r"The {slot} slot's source: /etc/passwd is a file, expected a model folder", "client"),
        ("a-file", "<file>", r"The {slot} slot's source: .* is a file, expected a model folder", "client"),
        ("missing", "/no/such/model", r"The {slot} slot's source: Model folder /no/such/model does not exist", "client"),
        ("pickle-only", "<pickle-dir>", r"The {slot} slot's source: .* holds pickle weights that cannot be loaded safely", "client"),
        ("html-hub-id", "<b>x</b>", r"The {slot} slot's source: Model folder <b>x</b> does not exist \(and it is not a hub id", "client"),
    ]],
    *[(f"set-{slot}-{name}", f"set_{slot}", [v], accepted(_slot_emptied(slot)), "client")
      for slot in ("full", "detox") for name, v in [("empty", ""), ("whitespace", " \t "), ("null", None)]],
    # ---- /refresh_runs -----------------------------------------------------------------------
    ("refresh-runs-with-planted-runs", "refresh_runs", [],
     accepted(lambda out, s: len(out) == 3 and all(o["choices"] == [] for o in out)), "client"),
    # ---- /evaluate ---------------------------------------------------------------------------
    ("evaluate-no-models", "evaluate", [[], 1, "test", 8], refused("Models: choose at least one model"), "client"),
    ("evaluate-models-null", "evaluate", [None, 1, "test", 8], refused("Models: choose at least one model"), "client"),
    ("evaluate-models-text", "evaluate", ["base", 1, "test", 8], refused(MODELS + " a list"), "client"),
    ("evaluate-models-unknown", "evaluate", [["medium"], 1, "test", 8], refused(MODELS + " chosen from"), "client"),
    ("evaluate-models-html", "evaluate", [[HTML], 1, "test", 8], refused(MODELS + " chosen from"), "client"),
    ("evaluate-models-number", "evaluate", [[1], 1, "test", 8], refused(MODELS + " chosen from"), "client"),
    ("evaluate-models-surrogate", "evaluate", [["\ud800"], 1, "test", 8], refused(MODELS + " chosen from"), "raw"),
    ("evaluate-models-empty-slot", "evaluate", [["detox"], 1, "test", 8], refused("PPO detox: no model yet"), "client"),
    *[(f"evaluate-n-{name}", "evaluate", [["base"], v, "test", 8], refused(N_FIELD), via) for name, v, via in [
        ("zero", 0, "client"), ("over", 501, "client"), ("fraction", 1.5, "client"), ("text", "abc", "client"),
        ("null", None, "client"), ("list", [2], "client"), ("huge", 1e12, "client"), ("nan", NAN, "raw"),
        ("inf", INF, "raw")]],
    *[(f"evaluate-split-{name}", "evaluate", [["base"], 1, v, 8], refused(SPLIT), "client") for name, v in [
        ("empty", ""), ("whitespace", "  "), ("traversal", "../../etc"), ("unknown", "dev"), ("null", None),
        ("number", 5), ("html", HTML)]],
    *[(f"evaluate-max-new-{name}", "evaluate", [["base"], 1, "test", v], refused(EVAL_MAX_NEW), via)
      for name, v, via in [("under", 7, "client"), ("over", 513, "client"), ("text", "abc", "client"),
                           ("nan", NAN, "raw"), ("inf", INF, "raw"), ("list", [8], "client")]],
    ("evaluate-one-dialogue", "evaluate", [["base"], 1, "test", 8],
     accepted(lambda out, s: "**1 dialogues**" in out[0] and out[1]["headers"] == ["Metric", "Base (original)"]), "client"),
    ("evaluate-numeric-text", "evaluate", [["base"], "1", "test", "8"],
     accepted(lambda out, s: "**1 dialogues**" in out[0]), "client"),
    # ---- /cancel_evaluation ------------------------------------------------------------------
    ("cancel-with-nothing-running", "cancel_evaluation", [],
     accepted(lambda out, s: out[0].startswith("Nothing to cancel")), "client"),
    # ---- /export_compare ---------------------------------------------------------------------
    ("export-null", "export_compare", [None], refused("Compare results: nothing to export yet"), "client"),
    ("export-empty-dict", "export_compare", [{}], refused("Compare results: nothing to export yet"), "client"),
    ("export-slots-text", "export_compare", [{"slots": "x"}],
     refused(r"Compare results: slots must be a list of at most 4 rows \(one per slot\), got 'x'"), "client"),
    # The check the Toxicity tab's /score_shown uses too (ui.compare.results_json): same shape, same messages.
    ("export-slot-repeated", "export_compare", [{"slots": [{"slot": "base"}, {"slot": "base"}]}],
     refused(r"Compare results: slots\[1\]\.slot 'base' appears twice"), "client"),
    ("export-filled-text", "export_compare", [{"slots": [{"slot": "base", "filled": "yes"}]}],
     refused(r"Compare results: slots\[0\]\.filled must be true or false, got 'yes'"), "client"),
    ("export-label-number", "export_compare", [{"slots": [{"slot": "base", "label": 7}]}],
     refused(r"Compare results: slots\[0\]\.label must be text, got int"), "client"),
    ("export-row-not-object", "export_compare", [{"slots": ["base"]}],
     refused(r"Compare results: slots\[0\] must be an object with \"slot\""), "client"),
    ("export-malformed-json-text", "export_compare", ["{not json"],
     refused(r"Compare results must be the /compare JSON: .*not JSON"), "client"),
    ("export-blank-text", "export_compare", ["  "], refused("Compare results: nothing to export yet"), "client"),
    ("export-json-text-ok", "export_compare",
     [json.dumps({"dialogue": "#Person1#: hi", "slots": [{"slot": "lora", "label": "<b>x</b>", "filled": True,
                                                          "summary": "A meets B.", "reward": 1.25}]})],
     accepted(lambda out, s: _handout_rows(out) == [["summary", "LoRA (peft)", "A meets B.", "1.2500", "", "", ""]]), "client"),
    ("export-slot-unknown", "export_compare", [{"slots": [{"slot": "../../etc"}]}],
     refused(r"Compare results: slots\[0\].slot must be one of"), "client"),
    ("export-too-many-slots", "export_compare", [{"slots": [{"slot": "base"}] * 5}],
     refused("Compare results: slots must hold at most 4 rows"), "client"),
    ("export-reward-nan", "export_compare", [{"slots": [{"slot": "base", "reward": NAN}]}],
     refused(r"Compare results: slots\[0\].reward must be a finite number"), "raw"),
    ("export-reward-formula", "export_compare", [{"slots": [{"slot": "base", "reward": "=1+1"}]}],
     refused(r"Compare results: slots\[0\].reward must be a finite number"), "client"),
    ("export-summary-list", "export_compare", [{"slots": [{"slot": "base", "summary": ["x"]}]}],
     refused(r"Compare results: slots\[0\].summary must be text"), "client"),
    ("export-summary-huge", "export_compare", [{"slots": [{"slot": "base", "summary": "x" * 30_000}]}],
     refused(r"Compare results: slots\[0\].summary has 30,000 characters"), "client"),
    ("export-dialogue-number", "export_compare", [{"dialogue": 5, "slots": [{"slot": "base"}]}],
     refused("Compare results: dialogue must be text"), "client"),
    ("export-html-and-formula", "export_compare",
     [{"dialogue": HTML, "slots": [{"slot": "base", "filled": True, "summary": "=cmd|' /C calc'!A0 " + HTML,
                                     "reward": -1.5}]}],
     accepted(lambda out, s: _export_is_escaped(out)), "client"),
]


def _handout_rows(out) -> list[list[str]]:
    """The "summary" rows of the handout's CSV."""
    import csv
    import io
    from pathlib import Path
    table = Path(next(f for f in out[0] if f.endswith(".csv"))).read_text()
    return [row for row in csv.reader(io.StringIO(table)) if row[0] == "summary"]


def _export_is_escaped(out) -> bool:
    from pathlib import Path
    files = out[0]
    md = Path(next(f for f in files if f.endswith(".md"))).read_text()
    table = Path(next(f for f in files if f.endswith(".csv"))).read_text()
    return ("<script>" not in md.split("## Prompt")[1] and f"```text\n{HTML}\n```" in md
            and "'=cmd|" in table and ",-1.5000," in table)


def raw_call(url: str, endpoint: str, args: list) -> list:
    """POST ``args`` as JSON that may hold NaN, Infinity and lone-surrogate escapes; the outputs.

    Raises:
        AppError: with the app's message (``None`` when the app gave none).
    """
    body = json.dumps({"data": args}, allow_nan=True)  # ensure_ascii: "\ud800" travels as an escape
    started = httpx.post(f"{url}gradio_api/call/{endpoint}", content=body,
                         headers={"content-type": "application/json"}, timeout=30)
    started.raise_for_status()
    stream = httpx.get(f"{url}gradio_api/call/{endpoint}/{started.json()['event_id']}", timeout=300).text
    kind, data = re.findall(r"event: (\w+)\ndata: (.*)", stream)[-1]
    if kind == "error":
        payload = json.loads(data)
        raise AppError(payload.get("error") if isinstance(payload, dict) else str(payload))
    return json.loads(data)


@pytest.fixture(scope="module")
def served(tiny_t5, tiny_classifier, random_adapter, dialogsum_dir, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    # A hostile runs folder: broken status, HTML name, a status pointing outside.
    for name, status in [("broken", "{not json"), ("<b>html<\\b>", '{"state": "finished", "method": "lora"}'),
                         ("escape", '{"state": "finished", "method": "full", "model": "../../etc"}')]:
        (runs / name).mkdir()
        (runs / name / "status.json").write_text(status)
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, runs, full=tiny_t5, lora=random_adapter) as (studio, url):
        yield studio, url, Client(url, verbose=False)


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny_t5):
    """A plain file and a folder whose only weights are a malicious pickle."""
    import shutil

    root = tmp_path_factory.mktemp("hostile")
    (root / "weights.bin").write_bytes(b"not a model")
    evil = root / "pickle-only"
    evil.mkdir()
    for f in tiny_t5.glob("*.json"):
        shutil.copy(f, evil / f.name)
    (evil / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q", "v"], "task_type": "SEQ_2_SEQ_LM"}))
    payload = pickle.dumps(_Evil())
    (evil / "pytorch_model.bin").write_bytes(payload)
    (evil / "adapter_model.bin").write_bytes(payload)
    return {"<file>": str(root / "weights.bin"), "<pickle-dir>": str(evil)}


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/studio-hostile-pwned",))


def call(served, endpoint: str, args: list, via: str) -> list:
    studio, url, client = served
    if via == "raw":
        return raw_call(url, endpoint, args)
    out = client.predict(*args, api_name=f"/{endpoint}")
    return list(out) if isinstance(out, tuple) else [out]


@pytest.mark.parametrize("case_id, endpoint, args, expect, via", CASES, ids=[c[0] for c in CASES])
def test_hostile_request_gets_a_clear_answer_and_the_app_stays_up(served, paths, case_id, endpoint, args,
                                                                   expect, via):
    studio = served[0]
    before = {slot: studio.slots.source(slot) for slot in ("full", "lora", "detox")}
    args = [paths.get(a, a) if isinstance(a, str) else a for a in args]
    kind, what = expect
    try:
        if kind == "refused":
            with pytest.raises(AppError) as info:
                call(served, endpoint, args, via)
            assert re.search(what, str(info.value)), f"message does not name the field: {info.value}"
            assert studio.slots.source("full") == before["full"]  # a refusal changes no slot
        else:
            assert what(call(served, endpoint, args, via), studio)
    finally:
        for slot, source in before.items():
            studio.slots.set_source(slot, source)
    # The app still answers a normal request, through the model queue.
    *_, results = served[2].predict(DIALOGUE, 4, api_name="/compare")
    assert [r["filled"] for r in results["slots"]] == [True, True, True, False]
    import os
    assert not os.path.exists("/tmp/studio-hostile-pwned")
