import json

import pytest

from summarizer.generation import GenerationSettings
from summarizer.models import ModelSlots, SlotConfig, SlotError, resolve_source
from summarizer.prompts import zero_shot

GREEDY = GenerationSettings(max_new_tokens=20)


@pytest.fixture
def prompts(dialogues):
    return [zero_shot(d) for d, _ in dialogues[:2]]


def test_fresh_lora_adapter_gives_base_output_exactly(tiny_t5, fresh_adapter, prompts):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5), lora=str(fresh_adapter)))
    out = slots.generate(["base", "lora"], prompts, GREEDY)
    assert out["lora"] == out["base"] and all(out["base"])


def test_base_slot_unchanged_after_adapters_load(tiny_t5, random_adapter, fresh_adapter, prompts):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5), lora=str(fresh_adapter), detox=str(random_adapter)))
    before = slots.generate(["base"], prompts, GREEDY)["base"]
    both = slots.generate(["base", "lora", "detox"], prompts, GREEDY)
    assert both["detox"] != before  # the random adapter really changes the output
    assert both["base"] == before  # ... yet the base slot is pristine
    assert slots.generate(["base"], prompts, GREEDY)["base"] == before
    beams = GenerationSettings(max_new_tokens=20, strategy="beam", num_beams=2)
    plain = ModelSlots(SlotConfig(base=str(tiny_t5))).generate(["base"], prompts, beams)["base"]
    assert slots.generate(["base", "detox"], prompts, beams)["base"] == plain


def test_full_slot_is_separate_model(tiny_t5, prompts):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5), full=str(tiny_t5)))
    out = slots.generate(["base", "full"], prompts, GREEDY)
    assert out["full"] == out["base"]
    assert slots.full().model is not slots.base().model


def test_adapters_share_one_base(tiny_t5, fresh_adapter, random_adapter):
    from transformers import AutoModelForSeq2SeqLM

    slots = ModelSlots(SlotConfig(base=str(tiny_t5), lora=str(fresh_adapter), detox=str(random_adapter)))
    slots.load()
    plain = sum(p.numel() for p in AutoModelForSeq2SeqLM.from_pretrained(tiny_t5).parameters())
    loaded = sum(p.numel() for p in slots.base().model.parameters())
    own, total = slots.trainable_parameters("lora")
    # LoRA on q and v: 12 attention blocks (enc self x2, dec self x2, dec cross x2) x r*(in+out).
    assert own == 12 * 4 * (64 + 64)
    assert total == plain + own
    assert loaded == plain + 2 * own  # one base, two adapters: no second copy of the base


def test_empty_slot_says_how_to_fill(tiny_t5, prompts):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5)))
    assert "no model yet" in slots.describe("lora")
    with pytest.raises(SlotError, match="no model yet"):
        slots.generate(["lora"], prompts, GREEDY)


def test_wrong_kind_of_model_rejected(tiny_t5, fresh_adapter, tmp_path):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5)))
    with pytest.raises(SlotError, match="peft adapter"):
        slots.set_source("lora", str(tiny_t5))
    with pytest.raises(SlotError, match="lora or detox slot"):
        slots.set_source("full", str(fresh_adapter))
    with pytest.raises(SlotError, match="does not exist"):
        slots.set_source("full", str(tmp_path / "missing"))
    with pytest.raises(SlotError, match="Unknown slot"):
        slots.set_source("medium", str(tiny_t5))


def test_run_folder_resolves_to_model(tmp_path, fresh_adapter):
    run = tmp_path / "run1"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"state": "running", "method": "lora"}))
    with pytest.raises(SlotError, match="no finished model"):
        resolve_source(str(run))
    (run / "model").symlink_to(fresh_adapter)
    assert resolve_source(str(run)) == str(run / "model")


def test_generation_settings_validation():
    with pytest.raises(ValueError, match="max new tokens"):
        GenerationSettings(max_new_tokens=0).validate()
    with pytest.raises(ValueError, match="top-p"):
        GenerationSettings(top_p=1.5).validate()
    with pytest.raises(ValueError, match="Unknown generation settings"):
        GenerationSettings.from_dict({"max_tokens": 3})
    s = GenerationSettings.from_dict({"max_new_tokens": "12", "strategy": "sampling"})
    cfg = s.to_generation_config()
    assert cfg.do_sample and cfg.max_new_tokens == 12


def test_sampling_is_reproducible_by_seed(tiny_t5, prompts):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5)))
    s = GenerationSettings(max_new_tokens=20, strategy="sampling", temperature=1.5, seed=3)
    a = slots.generate(["base"], prompts, s)["base"]
    assert slots.generate(["base"], prompts, s)["base"] == a
    other = slots.generate(["base"], prompts, GenerationSettings(**{**s.to_dict(), "seed": 4}))["base"]
    assert other != a
