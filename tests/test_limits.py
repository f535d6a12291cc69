"""The input token limit has one owner (summarizer.limits): both engines cut prompts at the configured
limit, the evaluation CLI refuses one above the model's, and no module writes its own 512 (issue 21, item 8)."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from summarizer.inference.generation import GenerationSettings
from summarizer.inference.slot_config import SlotConfig
from summarizer.inference.slots import ModelSlots
from summarizer.limits import DEFAULT_MAX_INPUT_TOKENS, check_max_input_tokens, model_input_limit

ROOT = Path(__file__).resolve().parents[1]
GREEDY = GenerationSettings(max_new_tokens=12, strategy="greedy")
LIMIT = 24


LONG_PROMPT = ("Summarize the following conversation.\n\n#Person1#: Where is the train station? "
               "#Person2#: Go straight and turn left at the bank, it is next to the post office. "
               "#Person1#: Thanks a lot. #Person2#: You are welcome, have a nice day.\n\nSummary: ")


def _record_input_lengths(slots: ModelSlots, backend: str, monkeypatch) -> list[int]:
    """A list that gets the token length of every prompt the engine's model reads from now on."""
    seen: list[int] = []
    if backend == "torch":
        model = slots.torch_engine.base().model
        generate = model.generate

        def recording(*args, **kwargs):
            seen.extend(int(row.sum()) for row in kwargs["attention_mask"])  # (B, T) mask: real tokens per row
            return generate(*args, **kwargs)
        model.generate = recording
        return seen
    from summarizer.inference.ct2_engine import CT2Model

    class Recording:  # in front of the C++ translator, which takes no new attributes
        def __init__(self, translator):
            self.translator = translator

        def translate_batch(self, sources, **kwargs):
            seen.extend(len(s) for s in sources)
            return self.translator.translate_batch(sources, **kwargs)
    seeded = CT2Model._seeded_translator
    monkeypatch.setattr(CT2Model, "_seeded_translator", lambda self, settings: Recording(seeded(self, settings)))
    return seen


@pytest.mark.parametrize("backend", ["torch", "ct2"])
def test_both_engines_cut_prompts_at_the_configured_limit(tiny_t5, backend, monkeypatch):
    """With the limit at 24 tokens the model reads 24 tokens of a longer prompt; at the default the
    whole prompt. Before, both engines cut at a fixed 512 whatever the caller had fitted prompts to."""
    if backend == "ct2":
        pytest.importorskip("ctranslate2")
    slots = ModelSlots(SlotConfig(base=str(tiny_t5)), device="cpu", backend=backend)
    whole = len(slots.tokenizer_of("base")(LONG_PROMPT).input_ids)
    assert whole > LIMIT
    seen = _record_input_lengths(slots, backend, monkeypatch)
    slots.generate(["base"], [LONG_PROMPT], GREEDY)
    assert seen == [whole]
    assert slots.set_max_input_tokens(LIMIT) == LIMIT == slots.max_input_tokens
    slots.generate(["base"], [LONG_PROMPT], GREEDY)
    slots.answer(["base"], [LONG_PROMPT], GREEDY)  # the interactive path (the batcher's rows) too
    assert seen == [whole, LIMIT, LIMIT]
    slots.set_max_input_tokens(DEFAULT_MAX_INPUT_TOKENS)
    slots.answer(["base"], [LONG_PROMPT], GREEDY)  # the answer cache is keyed by the limit: not served stale
    assert seen == [whole, LIMIT, LIMIT, whole]


def test_a_limit_above_the_models_own_is_refused_naming_it(tiny_t5):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5)), device="cpu")
    assert slots.input_limit() == 512  # the tiny T5's tokenizer says model_max_length 512, as FLAN-T5's
    with pytest.raises(ValueError, match=r"--max-input-tokens 1024 is above the input limit of the base model .*"
                                         r"\(512 tokens.*give at most 512"):
        slots.set_max_input_tokens(1024, "--max-input-tokens")
    with pytest.raises(ValueError, match="at least 1 token"):
        slots.set_max_input_tokens(0)
    assert slots.max_input_tokens == DEFAULT_MAX_INPUT_TOKENS  # unchanged by the refusals


def test_model_input_limit_reads_the_tokenizer_and_the_positions():
    from types import SimpleNamespace

    assert model_input_limit(SimpleNamespace(model_max_length=512)) == 512
    assert model_input_limit(SimpleNamespace(model_max_length=int(1e30))) is None  # transformers' "not set"
    assert model_input_limit(SimpleNamespace(model_max_length=int(1e30)),
                             SimpleNamespace(max_position_embeddings=1024)) == 1024  # BART's absolute positions
    assert model_input_limit(SimpleNamespace(model_max_length=2048), SimpleNamespace(max_position_embeddings=1024)) == 1024
    assert check_max_input_tokens(300, None) == 300
    with pytest.raises(ValueError, match="whole number"):
        check_max_input_tokens(True, 512)


def test_the_evaluation_cli_refuses_max_input_tokens_above_the_model_limit(tiny_t5, tmp_path, capsys):
    from summarizer.evaluation.__main__ import main

    code = main(["--base-model", str(tiny_t5), "--no-toxicity", "--dataset", str(tmp_path), "--n", "2",
                 "--max-input-tokens", "1024", "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--max-input-tokens 1024 is above the input limit" in err and "at most 512" in err
    assert not (tmp_path / "out").exists()


def test_evaluate_fits_prompts_to_the_slots_limit_and_refuses_a_larger_one(tiny_t5, dialogsum_dir):
    from summarizer.data import load_split
    from summarizer.evaluation.evaluate import evaluate

    rows = [dict(r) for r in load_split(dialogsum_dir, "test").select(range(2))]
    slots = ModelSlots(SlotConfig(base=str(tiny_t5)), device="cpu")
    slots.set_max_input_tokens(64)
    result = evaluate(slots, None, rows, GREEDY, n_resamples=10)
    assert result.meta["max_input_tokens"] == 64  # recorded what the engines read
    assert result.meta["prompts_cut_to_fit"] == 2  # DialogSum test dialogues are longer than 64 tokens
    with pytest.raises(ValueError, match="max input tokens 128 is above the 64 tokens"):
        evaluate(slots, None, rows, GREEDY, max_input_tokens=128, n_resamples=10)


# Defaults of an input token limit written as a number instead of summarizer.limits' name.
_LITERAL_DEFAULT = re.compile(r"(max_input_tokens|max_source_tokens|max_tokens)\s*(:\s*int\s*)?=\s*\d+\s*([,)#]|$)"
                              r"|DEFAULT_MAX_TOKENS\s*=\s*\d+|--max-input-tokens\", type=int, default=\d+"
                              r"|max_source_tokens: int = field\(default=\d+|max_tokens: int = \d+ \* \d+")


def test_no_module_writes_its_own_input_limit_default():
    """Before, 512 stood as a default in 11 places (the engines, the CLI, the tabs, the Prompt Lab,
    the Arena, training); now each names DEFAULT_MAX_INPUT_TOKENS."""
    found = []
    for folder in ("summarizer", "training", "ui"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "limits.py":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if _LITERAL_DEFAULT.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


def test_the_defaults_are_the_limits_module():
    from summarizer.evaluation.evaluate import build_prompts
    from summarizer.inference.ct2_engine import CT2Model
    from summarizer.inference.generation import generate_texts
    from summarizer.prompt_lab.lab import run_lab
    from summarizer.prompts import DEFAULT_MAX_TOKENS
    from training.config import RunConfig

    for function in (build_prompts, CT2Model.generate, generate_texts, run_lab):
        assert inspect.signature(function).parameters["max_input_tokens"].default == DEFAULT_MAX_INPUT_TOKENS
    assert DEFAULT_MAX_TOKENS == SlotConfig().max_input_tokens == DEFAULT_MAX_INPUT_TOKENS
    assert RunConfig().max_source_tokens == DEFAULT_MAX_INPUT_TOKENS
