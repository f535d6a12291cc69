"""Hostile input to the Prompting and Toxicity endpoints of the served app (issue 8, findings 1, 5, 6).

Every case in :data:`CASES` is one request to ``/load_dialogue``, ``/summarize``, ``/toxicity`` or
``/score_shown``. A refused request must raise ``AppError`` whose message names the field (and
its allowed values); an accepted one (HTML, control characters, lone surrogates are legitimate
text) must give the right answer. After every case the same endpoint must answer a normal
request correctly, so no case leaves the app broken or the queue held.

Requests go through ``gradio_client``; the few values it cannot send (NaN, infinity, lone
surrogates: its JSON encoder refuses them) go as raw HTTP to Gradio's ``/gradio_api/call/``
route, which is what any other client could send. Count the cases with
``pytest --collect-only -q tests/test_hostile_prompting.py``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Callable

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from summarizer.prompts import zero_shot
from tests.app_server import running_app

NAN, INF = float("nan"), float("inf")
GOOD_DIALOGUE = "#Person1#: Is the shop open?\n#Person2#: Yes, until six."
# /summarize arguments after the dialogue: mode, example numbers, how many, then the eight settings.
SETTINGS = ["zero-shot", "", 2, 8, 0, "greedy", 0.7, 50, 1.0, 4, 42]
SETTING_AT = {name: k + 1 for k, name in enumerate(
    ["mode", "indices", "count", "max_new_tokens", "min_new_tokens", "strategy", "temperature",
     "top_k", "top_p", "num_beams", "seed"])}


def summarize_args(dialogue=GOOD_DIALOGUE, **changes) -> tuple:
    args = [dialogue, *SETTINGS]
    for name, value in changes.items():
        args[SETTING_AT[name]] = value
    return tuple(args)


@dataclass
class Case:
    """One hostile request: ``error`` is a regex the AppError must match (naming the field), or
    ``check(studio, outputs)`` verifies an accepted request's answer."""

    endpoint: str
    name: str
    args: tuple
    error: str | None = None
    check: Callable | None = None

    @property
    def id(self) -> str:
        return f"{self.endpoint}-{self.name}"


def _row_is(split: str, index: int):
    return lambda studio, out: out[0] == studio.split(split)[index]["dialogue"]


def _prompt_is(text: str):
    return lambda studio, out: out[0] == zero_shot(text) and bool(out[2])


def _few_shot_with(n: int):
    """The few-shot prompt of GOOD_DIALOGUE with the ``n`` cheapest train examples (count = n)."""
    def check(studio, out):
        from summarizer.prompts import build_prompt
        from ui.prompting import pick_examples

        examples = pick_examples(studio, "few-shot", "", n)
        want = build_prompt("few-shot", GOOD_DIALOGUE, examples, tokenizer=studio.slots.tokenizer,
                            max_tokens=studio.max_input_tokens)
        return len(examples) == n and out[0] == want.text and bool(out[2])
    return check


def _scored_as(text: str):
    """The /toxicity answer equals the scorer's score of ``text`` (the cleaned input)."""
    def check(studio, out):
        want = studio.toxicity.score([text])[0]
        return math.isclose(out[0], round(want.reward, 4), abs_tol=1e-4) and \
            math.isclose(out[1], round(want.p_hate, 4), abs_tol=1e-4) and "Scored" in out[2]
    return check


def _not_scored(studio, out):
    return out[0] is None and out[1] is None and out[2].startswith("Not scored yet")


def _table_of(*summaries: str):
    return lambda studio, out: [row[1] for row in out["data"]] == list(summaries)


HUGE = "x" * 1_000_000
SPLIT = r"Split must be one of train, validation, test, got"
NUMBER = r"Dialogue number must be a whole number 0\.\.499, got"
DIALOGUE_EMPTY = r"The dialogue is empty"
EXAMPLES = r"Example dialogues"
COUNT = r"How many examples \(few-shot, when no numbers are given\) must be a whole number 1\.\.10, got"
SCORER_LIMIT = r"The text has [\d,]+ characters, over the limit of 20,000; the toxicity scorer .* first 512 tokens"
COMPARE = r"Compare results"

CASES: list[Case] = [
    # --- /load_dialogue (split, number) ---
    Case("load_dialogue", "split-empty", ("", 0), SPLIT),
    Case("load_dialogue", "split-whitespace", ("  ", 0), SPLIT),
    Case("load_dialogue", "split-huge", (HUGE, 0), SPLIT),
    Case("load_dialogue", "split-control", ("te\x00st", 0), SPLIT),
    Case("load_dialogue", "split-surrogate", ("te\ud800st", 0), SPLIT),
    Case("load_dialogue", "split-html", ("<b>test</b>", 0), SPLIT),
    Case("load_dialogue", "split-list", (["test"], 0), SPLIT),
    Case("load_dialogue", "split-number", (3, 0), SPLIT),
    Case("load_dialogue", "split-none", (None, 0), SPLIT),
    Case("load_dialogue", "number-empty", ("test", ""), NUMBER + r" the text ''"),
    Case("load_dialogue", "number-whitespace", ("test", "  "), NUMBER + r" the text"),
    Case("load_dialogue", "number-word", ("test", "eight"), NUMBER + r" the text 'eight'"),
    Case("load_dialogue", "number-html", ("test", "<script>1</script>"), NUMBER + r" the text"),
    Case("load_dialogue", "number-control", ("test", "\x07"), NUMBER + r" the text"),
    Case("load_dialogue", "number-nan", ("test", NAN), NUMBER + r" nan"),
    Case("load_dialogue", "number-inf", ("test", INF), NUMBER + r" inf"),
    Case("load_dialogue", "number--inf", ("test", -INF), NUMBER + r" -inf"),
    Case("load_dialogue", "number-negative", ("test", -1), NUMBER + r" -1 \(out of range\)"),
    Case("load_dialogue", "number-past-end", ("test", 500), NUMBER + r" 500 \(out of range\)"),
    Case("load_dialogue", "number-huge", ("test", 10**30), NUMBER + r" a 100-bit integer \(out of range\)"),
    Case("load_dialogue", "number-fraction", ("test", 2.5), NUMBER + r" 2\.5"),
    Case("load_dialogue", "number-list", ("test", [1]), NUMBER + r" a list"),
    Case("load_dialogue", "number-object", ("test", {"a": 1}), NUMBER + r" a dict"),
    Case("load_dialogue", "number-bool", ("test", True), NUMBER + r" a bool"),
    Case("load_dialogue", "number-none", ("test", None), NUMBER + r" nothing"),
    Case("load_dialogue", "number-whole-float-ok", ("test", 3.0), check=_row_is("test", 3)),
    # Number text follows the app's one rule (summarizer.text.as_number): plain decimals only.
    Case("load_dialogue", "number-text-ok", ("test", "3"), check=_row_is("test", 3)),
    Case("load_dialogue", "number-spaced-text-ok", ("test", " 4 "), check=_row_is("test", 4)),
    Case("load_dialogue", "number-whole-text-ok", ("test", "5.0"), check=_row_is("test", 5)),
    Case("load_dialogue", "number-underscore-text", ("test", "1_0"), NUMBER + r" the text '1_0'"),
    Case("load_dialogue", "number-hex-text", ("test", "0x3"), NUMBER + r" the text '0x3'"),
    Case("load_dialogue", "number-exponent-text", ("test", "3e0"), NUMBER + r" the text '3e0'"),
    Case("load_dialogue", "number-inf-text", ("test", "inf"), NUMBER + r" the text 'inf'"),
    Case("load_dialogue", "validation-last-ok", ("validation", 499), check=_row_is("validation", 499)),
    # --- /summarize: the dialogue ---
    Case("summarize", "dialogue-empty", summarize_args(""), DIALOGUE_EMPTY),
    Case("summarize", "dialogue-whitespace", summarize_args(" \n\t "), DIALOGUE_EMPTY),
    Case("summarize", "dialogue-only-controls", summarize_args("\x00\x07\x1b"), DIALOGUE_EMPTY),
    Case("summarize", "dialogue-huge", summarize_args(HUGE), r"The dialogue has 1,000,000 characters, over the limit of 20,000"),
    Case("summarize", "dialogue-list", summarize_args(["#Person1#: hi"]), r"Dialogue must be text, got a list"),
    Case("summarize", "dialogue-number", summarize_args(42), r"Dialogue must be text, got a int"),
    Case("summarize", "dialogue-control-ok", summarize_args("#Person1#: Hi\x07 there\x00"), check=_prompt_is("#Person1#: Hi there")),
    Case("summarize", "dialogue-surrogate-ok", summarize_args("#Person1#: caf\ud800 open?"), check=_prompt_is("#Person1#: caf\ufffd open?")),
    Case("summarize", "dialogue-html-ok", summarize_args("#Person1#: <script>alert(1)</script>"),
         check=_prompt_is("#Person1#: <script>alert(1)</script>")),
    # --- /summarize: prompt mode, example numbers, example count ---
    Case("summarize", "mode-empty", summarize_args(mode=""), r"Prompt must be one of zero-shot, one-shot, few-shot, raw, got ''"),
    Case("summarize", "mode-unknown", summarize_args(mode="two-shot"), r"Prompt must be one of .*, got 'two-shot'"),
    Case("summarize", "mode-html", summarize_args(mode="<b>raw</b>"), r"Prompt must be one of"),
    Case("summarize", "mode-list", summarize_args(mode=["raw"]), r"Prompt must be one of"),
    Case("summarize", "mode-none", summarize_args(mode=None), r"Prompt must be one of .*, got None"),
    Case("summarize", "examples-word", summarize_args(mode="few-shot", indices="forty"),
         EXAMPLES + r" must be whole numbers 0\.\.12459 separated by commas, got 'forty'"),
    Case("summarize", "examples-negative", summarize_args(mode="few-shot", indices="-1"), EXAMPLES + r" must be whole numbers"),
    Case("summarize", "examples-past-end", summarize_args(mode="few-shot", indices="12460"),
         EXAMPLES + r": number 12460 is out of range: the split has 12460 dialogues"),
    Case("summarize", "examples-huge-number", summarize_args(mode="few-shot", indices="9" * 100_000),
         EXAMPLES + r" must be whole numbers"),
    Case("summarize", "examples-too-many", summarize_args(mode="few-shot", indices=", ".join(map(str, range(5000)))),
         EXAMPLES + r": at most 10 distinct train numbers, got 5000"),
    Case("summarize", "examples-html", summarize_args(mode="few-shot", indices="<b>4</b>"), EXAMPLES + r" must be whole numbers"),
    Case("summarize", "examples-list", summarize_args(mode="few-shot", indices=[40, 80]), r"Example dialogues must be text, got a list"),
    Case("summarize", "examples-repeated-ok", summarize_args(mode="one-shot", indices=", ".join(["40"] * 3000)),
         check=lambda studio, out: out[0].startswith("Dialogue:\n\n" + studio.split("train")[40]["dialogue"])
         and "example train #40:" in out[1]),
    Case("summarize", "examples-control-ok", summarize_args(mode="one-shot", indices="\x0040,\x07 80"),
         check=lambda studio, out: "example train #40:" in out[1]),
    Case("summarize", "count-zero", summarize_args(mode="few-shot", count=0), COUNT + r" 0 \(out of range\)"),
    Case("summarize", "count-eleven", summarize_args(mode="few-shot", count=11), COUNT + r" 11 \(out of range\)"),
    Case("summarize", "count-huge", summarize_args(mode="few-shot", count=10**12), COUNT),
    Case("summarize", "count-word", summarize_args(mode="few-shot", count="eight"), COUNT + r" the text 'eight'"),
    Case("summarize", "count-nan", summarize_args(mode="few-shot", count=NAN), COUNT + r" nan"),
    Case("summarize", "count-inf", summarize_args(mode="few-shot", count=INF), COUNT + r" inf"),
    Case("summarize", "count-fraction", summarize_args(mode="few-shot", count=2.5), COUNT + r" 2\.5"),
    Case("summarize", "count-list", summarize_args(mode="few-shot", count=[2]), COUNT + r" a list"),
    Case("summarize", "count-none", summarize_args(mode="few-shot", count=None), COUNT + r" nothing"),
    Case("summarize", "count-ignored-zero-shot-ok", summarize_args(count="eight"), check=_prompt_is(GOOD_DIALOGUE)),
    # The same number text as max new tokens accepts (finding 2: "2" was refused here, "12" taken there).
    Case("summarize", "count-text-ok", summarize_args(mode="few-shot", count="2"), check=_few_shot_with(2)),
    Case("summarize", "count-spaced-text-ok", summarize_args(mode="few-shot", count=" 3 "), check=_few_shot_with(3)),
    Case("summarize", "count-underscore-text", summarize_args(mode="few-shot", count="1_0"), COUNT + r" the text '1_0'"),
    Case("summarize", "count-hex-text", summarize_args(mode="few-shot", count="0x2"), COUNT + r" the text '0x2'"),
    Case("summarize", "count-exponent-text", summarize_args(mode="few-shot", count="2e0"), COUNT + r" the text '2e0'"),
    # --- /summarize: generation settings ---
    Case("summarize", "max-new-zero", summarize_args(max_new_tokens=0), r"max new tokens must be 1\.\.512, got 0"),
    Case("summarize", "max-new-513", summarize_args(max_new_tokens=513), r"max new tokens must be 1\.\.512, got 513"),
    Case("summarize", "max-new-word", summarize_args(max_new_tokens="eight"), r"max new tokens must be a whole number 1\.\.512, got 'eight'"),
    Case("summarize", "max-new-nan", summarize_args(max_new_tokens=NAN), r"max new tokens must be a whole number 1\.\.512, got nan"),
    Case("summarize", "max-new-inf", summarize_args(max_new_tokens=INF), r"max new tokens must be a whole number 1\.\.512, got inf"),
    Case("summarize", "max-new-huge", summarize_args(max_new_tokens=10**30), r"max new tokens must be 1\.\.512, got a 100-bit integer"),
    Case("summarize", "max-new-bool", summarize_args(max_new_tokens=True), r"max new tokens must be a whole number 1\.\.512, got True \(bool\)"),
    Case("summarize", "max-new-list", summarize_args(max_new_tokens=[8]), r"max new tokens must be a whole number 1\.\.512, got \[8\] \(list\)"),
    Case("summarize", "max-new-none", summarize_args(max_new_tokens=None), r"max new tokens must be a whole number 1\.\.512, got None"),
    Case("summarize", "max-new-underscore-text", summarize_args(max_new_tokens="1_0"),
         r"max new tokens must be a whole number 1\.\.512, got '1_0'"),
    Case("summarize", "max-new-exponent-text", summarize_args(max_new_tokens="8e0"),
         r"max new tokens must be a whole number 1\.\.512, got '8e0'"),
    Case("summarize", "max-new-spaced-text-ok", summarize_args(max_new_tokens=" 8 "), check=_prompt_is(GOOD_DIALOGUE)),
    Case("summarize", "min-new-above-max", summarize_args(min_new_tokens=9), r"min new tokens must be 0\.\.max new tokens \(8\), got 9"),
    Case("summarize", "min-new-negative", summarize_args(min_new_tokens=-1), r"min new tokens must be 0\.\.max new tokens"),
    Case("summarize", "min-new-fraction", summarize_args(min_new_tokens=0.5), r"min new tokens must be a whole number 0\.\.max new tokens, got 0\.5"),
    Case("summarize", "strategy-empty", summarize_args(strategy=""), r"strategy must be one of greedy, sampling, beam, got ''"),
    Case("summarize", "strategy-unknown", summarize_args(strategy="bogus"), r"strategy must be one of greedy, sampling, beam, got 'bogus'"),
    Case("summarize", "strategy-number", summarize_args(strategy=3), r"strategy must be one of greedy, sampling, beam, got 3"),
    Case("summarize", "temperature-nan", summarize_args(strategy="sampling", temperature=NAN), r"temperature must be a number in \(0, 5\], got nan"),
    Case("summarize", "temperature-zero", summarize_args(strategy="sampling", temperature=0), r"temperature must be in \(0, 5\], got 0"),
    Case("summarize", "temperature-six", summarize_args(strategy="sampling", temperature=6), r"temperature must be in \(0, 5\], got 6"),
    Case("summarize", "temperature-word", summarize_args(strategy="sampling", temperature="hot"), r"temperature must be a number in \(0, 5\], got 'hot'"),
    Case("summarize", "top-k-negative", summarize_args(top_k=-1), r"top-k must be 0\.\.1000, got -1"),
    Case("summarize", "top-k-huge", summarize_args(top_k=10**6), r"top-k must be 0\.\.1000, got 1000000"),
    Case("summarize", "top-k-fraction", summarize_args(top_k=2.5), r"top-k must be a whole number 0\.\.1000, got 2\.5"),
    Case("summarize", "top-p-zero", summarize_args(top_p=0), r"top-p must be in \(0, 1\], got 0"),
    Case("summarize", "top-p-above-one", summarize_args(top_p=1.5), r"top-p must be in \(0, 1\], got 1\.5"),
    Case("summarize", "top-p--inf", summarize_args(top_p=-INF), r"top-p must be a number in \(0, 1\], got -inf"),
    Case("summarize", "beams-one", summarize_args(strategy="beam", num_beams=1), r"beams must be 2\.\.16, got 1"),
    Case("summarize", "beams-seventeen", summarize_args(strategy="beam", num_beams=17), r"beams must be 2\.\.16, got 17"),
    Case("summarize", "beams-word", summarize_args(num_beams="four"), r"beams must be a whole number 2\.\.16, got 'four'"),
    Case("summarize", "seed-negative", summarize_args(seed=-1), r"seed must be 0\.\.2\^32-1, got -1"),
    Case("summarize", "seed-2-32", summarize_args(seed=2**32), r"seed must be 0\.\.2\^32-1, got 4294967296"),
    Case("summarize", "seed-word", summarize_args(seed="abc"), r"seed must be a whole number 0\.\.2\^32-1, got 'abc'"),
    Case("summarize", "seed-huge-float", summarize_args(seed=1e300), r"seed must be 0\.\.2\^32-1, got a \d+-bit integer"),
    Case("summarize", "several-named-at-once", summarize_args(max_new_tokens="x", top_p=NAN),
         r"max new tokens must be a whole number .*; top-p must be a number in \(0, 1\], got nan"),
    # --- /toxicity (text) ---
    Case("toxicity", "empty-ok", ("",), check=_not_scored),
    Case("toxicity", "whitespace-ok", (" \n\t ",), check=_not_scored),
    Case("toxicity", "none-ok", (None,), check=_not_scored),
    Case("toxicity", "huge", (HUGE,), SCORER_LIMIT),
    Case("toxicity", "just-over-limit", ("y" * 20_001,), r"The text has 20,001 characters, over the limit of 20,000"),
    Case("toxicity", "list", (["You are scum."],), r"Text must be text, got a list"),
    Case("toxicity", "number", (3.5,), r"Text must be text, got a float"),
    Case("toxicity", "object", ({"text": "hi"},), r"Text must be text, got a dict"),
    Case("toxicity", "control-ok", ("\x00You are\x07 scum.\x1b",), check=_scored_as("You are scum.")),
    Case("toxicity", "surrogate-ok", ("You are \ud800 scum.",), check=_scored_as("You are \ufffd scum.")),
    Case("toxicity", "html-ok", ("<script>alert('hate')</script>",), check=_scored_as("<script>alert('hate')</script>")),
    Case("toxicity", "long-but-allowed-ok", ("table " * 3000,),
         check=lambda studio, out: "Scored the first 512 of" in out[2] and _scored_as(("table " * 3000).strip())(studio, out)),
    # --- /score_shown (Prompting summary, Compare JSON) ---
    Case("score_shown", "nothing-shown", ("", None), r"No summaries shown yet: run Summarize \(Prompting\) or Compare first"),
    Case("score_shown", "whitespace", (" \n ", {"slots": []}), r"No summaries shown yet"),
    Case("score_shown", "summary-huge", (HUGE, None), r"The Prompting summary has 1,000,000 characters, over the limit of 20,000"),
    Case("score_shown", "summary-list", (["A meets B."], None), r"Summary must be text, got a list"),
    Case("score_shown", "compare-malformed-json", ("A meets B.", "{not json"), COMPARE + r" must be the /compare JSON: .*not JSON"),
    Case("score_shown", "compare-deep-json", ("A meets B.", "[" * 100_000 + "]" * 100_000), COMPARE + r" must be the /compare JSON"),
    Case("score_shown", "compare-list", ("A meets B.", [1, 2]), COMPARE + r" must be the /compare JSON: .*got a list"),
    Case("score_shown", "compare-number", ("A meets B.", 7), COMPARE + r" must be the /compare JSON: .*got a int"),
    Case("score_shown", "compare-slots-text", ("A meets B.", {"slots": "base"}),
         COMPARE + r": slots must be a list of at most 4 rows \(one per slot\), got 'base'"),
    Case("score_shown", "compare-slot-number", ("A meets B.", {"slots": [1]}),
         COMPARE + r": slots\[0\] must be an object with \"slot\", \"filled\" and \"summary\", got int 1"),
    # The check the handout export uses (ui.compare.results_json): rows name their slot, as /compare's do.
    Case("score_shown", "compare-slot-missing", ("A meets B.", {"slots": [{"label": "Base", "filled": True, "summary": "x"}]}),
         COMPARE + r": slots\[0\]\.slot must be one of base, full, lora, detox, got None"),
    Case("score_shown", "compare-slot-unknown", ("A meets B.", {"slots": [{"slot": "zzz", "filled": True, "summary": "x"}]}),
         COMPARE + r": slots\[0\]\.slot must be one of base, full, lora, detox, got 'zzz'"),
    Case("score_shown", "compare-slot-repeated", ("A meets B.", {"slots": [{"slot": "base", "filled": True, "summary": "x"}] * 2}),
         COMPARE + r": slots\[1\]\.slot 'base' appears twice"),
    Case("score_shown", "compare-label-number", ("A meets B.", {"slots": [{"slot": "base", "label": 1, "filled": True, "summary": "x"}]}),
         COMPARE + r": slots\[0\]\.label must be text, got int"),
    Case("score_shown", "compare-filled-text", ("", {"slots": [{"slot": "base", "label": "Base", "filled": "yes", "summary": "x"}]}),
         COMPARE + r": slots\[0\]\.filled must be true or false, got 'yes'"),
    Case("score_shown", "compare-summary-nan", ("", {"slots": [{"slot": "base", "label": "Base", "filled": True, "summary": NAN}]}),
         COMPARE + r": slots\[0\]\.summary must be text, got float"),
    Case("score_shown", "compare-reward-text", ("", {"slots": [{"slot": "base", "filled": True, "summary": "x", "reward": "=1"}]}),
         COMPARE + r": slots\[0\]\.reward must be a finite number or null, got '=1'"),
    Case("score_shown", "compare-six-rows", ("", {"slots": [{"slot": "base", "filled": True, "summary": "x"}] * 6}),
         COMPARE + r": slots must hold at most 4 rows \(one per slot\), got 6"),
    Case("score_shown", "compare-too-many", ("", {"slots": [{"slot": "base", "label": "B", "filled": True, "summary": "x"}] * 9}),
         COMPARE + r": slots must hold at most 4 rows \(one per slot\), got 9"),
    Case("score_shown", "compare-summary-huge", ("", {"slots": [{"slot": "base", "label": "Base", "filled": True, "summary": HUGE}]}),
         COMPARE + r": slots\[0\]\.summary has 1,000,000 characters, over the limit of 20,000"),
    Case("score_shown", "compare-json-text-ok",
         ("", json.dumps({"slots": [{"slot": "base", "label": "Base (original)", "filled": True, "summary": "A meets B."}]})),
         check=_table_of("A meets B.")),
    Case("score_shown", "compare-no-label-ok", ("", {"slots": [{"slot": "lora", "filled": True, "summary": "A meets B."}]}),
         check=lambda studio, out: [r[:2] for r in out["data"]] == [["Compare: LoRA (peft)", "A meets B."]]),
    # The source column shows the slot's own label, never one from the JSON (as the handout does).
    Case("score_shown", "html-control-surrogate-ok",
         ("<b>A</b>\x00 meets \ud800B.", {"slots": [{"slot": "base", "label": "<i>Base</i>", "filled": True, "summary": "<script>x</script>"},
                                                    {"slot": "detox", "label": "PPO detox", "filled": False, "summary": "no model yet"}]}),
         check=lambda studio, out: [r[:2] for r in out["data"]] == [["Prompting (base)", "<b>A</b> meets \ufffdB."],
                                                                     ["Compare: Base (original)", "<script>x</script>"]]),
]

# A normal request per endpoint, and what its answer must be, run after every case.
NORMAL = {
    "load_dialogue": (("test", 1), _row_is("test", 1)),
    "summarize": (summarize_args(), _prompt_is(GOOD_DIALOGUE)),
    "toxicity": (("#Person1# books a table.",), _scored_as("#Person1# books a table.")),
    "score_shown": (("A meets B.", None), _table_of("A meets B.")),
}


def _unsendable(value) -> bool:
    """True for what gradio_client's JSON encoder refuses: NaN, infinity, lone surrogates."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, (list, tuple)):
        return any(map(_unsendable, value))
    if isinstance(value, dict):
        return any(map(_unsendable, value.values()))
    return False


def call(client: Client, url: str, endpoint: str, args: tuple):
    """The endpoint's outputs; a refusal raises ``AppError`` with the app's message."""
    if not _unsendable(args):
        return client.predict(*args, api_name=f"/{endpoint}")
    # Python's json writes NaN/Infinity literals and escapes surrogates as \ud800, as a raw client may.
    started = httpx.post(f"{url}gradio_api/call/{endpoint}", content=json.dumps({"data": list(args)}),
                         headers={"content-type": "application/json"}, timeout=60)
    started.raise_for_status()
    stream = httpx.get(f"{url}gradio_api/call/{endpoint}/{started.json()['event_id']}", timeout=300).text
    event, data = stream.strip().split("\n")[-2:]  # the last server-sent event: its name, its data
    payload = json.loads(data.removeprefix("data: "))
    if event == "event: error":
        raise AppError(payload["error"] if isinstance(payload, dict) else str(payload))
    assert event == "event: complete", stream[:300]
    return payload[0] if len(payload) == 1 else payload  # as gradio_client returns outputs


@pytest.fixture(scope="module")
def served(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory):
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path_factory.mktemp("runs")) as (studio, url):
        yield studio, url, Client(url, verbose=False)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_refused_by_name_or_answered_right(served, case):
    studio, url, client = served
    if case.error:
        with pytest.raises(AppError, match=case.error):
            call(client, url, case.endpoint, case.args)
    else:
        assert case.check(studio, call(client, url, case.endpoint, case.args))
    args, check = NORMAL[case.endpoint]
    assert check(studio, call(client, url, case.endpoint, args)), "the app did not answer a normal request"


def test_every_case_names_a_field_or_checks_an_answer():
    assert len({c.id for c in CASES}) == len(CASES)
    assert all((c.error is None) != (c.check is None) for c in CASES)
    assert {c.endpoint for c in CASES} == set(NORMAL)
