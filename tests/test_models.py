import re
import json

import pytest

from summarizer.inference.generation import GenerationSettings
from summarizer.inference.slots import ModelSlots
from summarizer.inference.slot_config import SlotConfig, SlotError
from summarizer.inference.model_sources import resolve_source
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
    assert slots.torch_engine.full().model is not slots.torch_engine.base().model


def test_adapters_share_one_base(tiny_t5, fresh_adapter, random_adapter):
    from transformers import AutoModelForSeq2SeqLM

    slots = ModelSlots(SlotConfig(base=str(tiny_t5), lora=str(fresh_adapter), detox=str(random_adapter)))
    slots.load()
    plain = sum(p.numel() for p in AutoModelForSeq2SeqLM.from_pretrained(tiny_t5).parameters())
    loaded = sum(p.numel() for p in slots.torch_engine.base().model.parameters())
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


class _Evil:
    """A pickle that would run a command when unpickled without restriction."""

    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/studio-pwned",))


def pickle_only_folder(out, like, adapter: bool = False):
    """A model (or adapter) folder whose only weights are a malicious pickle."""
    import pickle
    import shutil

    out.mkdir()
    for f in like.glob("*.json"):
        shutil.copy(f, out / f.name)
    with open(out / ("adapter_model.bin" if adapter else "pytorch_model.bin"), "wb") as fh:
        pickle.dump(_Evil(), fh)
    return out


def test_pickle_only_model_folder_is_refused_with_a_clear_message(tiny_t5, fresh_adapter, tmp_path):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5)))
    evil = pickle_only_folder(tmp_path / "evil", tiny_t5)
    # refused when it is set, before anything is applied or loaded: the slot keeps what it held
    with pytest.raises(SlotError, match="holds pickle weights that cannot be loaded safely; give a folder with model.safetensors"):
        slots.set_source("full", str(evil))
    assert slots.source("full") is None
    evil_adapter = pickle_only_folder(tmp_path / "evil-adapter", fresh_adapter, adapter=True)
    with pytest.raises(SlotError, match="holds pickle weights"):
        slots.set_source("lora", str(evil_adapter))
    assert slots.source("lora") is None
    assert not __import__("os").path.exists("/tmp/studio-pwned")


def test_plain_pickle_weights_still_load_and_safetensors_win(tiny_t5, tmp_path):
    import shutil

    from safetensors.torch import load_file

    from summarizer.inference.model_sources import weights_kwargs
    plain = tmp_path / "plain"
    plain.mkdir()
    for f in tiny_t5.glob("*.json"):
        shutil.copy(f, plain / f.name)
    torch = __import__("torch")
    torch.save(load_file(tiny_t5 / "model.safetensors"), plain / "pytorch_model.bin")
    slots = ModelSlots(SlotConfig(base=str(tiny_t5), full=str(plain)))
    assert slots.generate(["full"], ["Summarize: hi"], GREEDY)["full"] == slots.generate(["base"], ["Summarize: hi"], GREEDY)["base"]
    assert weights_kwargs(str(tiny_t5)) == {"use_safetensors": True}
    assert weights_kwargs(str(plain)) == {} and weights_kwargs("google/flan-t5-base") == {}


def test_a_file_is_not_a_model_folder(tiny_t5):
    with pytest.raises(SlotError, match="is a file, expected a model folder"):
        resolve_source(str(tiny_t5 / "model.safetensors"))


def test_sampling_with_the_full_slot_reproduces_each_slot_alone(tiny_t5, prompts):
    """base and full together draw the same samples as each alone: no two threads share torch's generator."""
    slots = ModelSlots(SlotConfig(base=str(tiny_t5), full=str(tiny_t5)))
    slots.torch_engine.parallel_full = True
    s = GenerationSettings(max_new_tokens=20, strategy="sampling", temperature=1.5, seed=7)
    together = slots.generate(["base", "full"], prompts * 4, s)
    assert together["base"] == slots.generate(["base"], prompts * 4, s)["base"]
    assert together["full"] == slots.generate(["full"], prompts * 4, s)["full"]


def test_parallel_full_progress_moves_forward_to_the_total(tiny_t5, prompts):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5), full=str(tiny_t5)))
    slots.torch_engine.parallel_full = True
    seen = []
    out = slots.generate(["base", "full"], prompts * 3, GREEDY, batch_size=1, on_batch=lambda d, t: seen.append((d, t)))
    assert out["base"] == out["full"]  # same weights, greedy: the parallel path changes nothing
    n = len(prompts) * 3
    assert {t for _, t in seen} == {2 * n}
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1] == (2 * n, 2 * n)


def test_a_run_folder_whose_config_is_a_fifo_is_refused_without_hanging(tmp_path):
    import os

    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text('{"state": "finished"}')
    os.mkfifo(run / "config.json")  # reading it would block forever
    with pytest.raises(SlotError, match="has no finished model"):
        resolve_source(str(run))


@pytest.mark.parametrize("source", ["foo bar", "<b>x</b>", "a/b/c", "./nowhere"])
def test_a_source_that_is_neither_a_folder_nor_a_hub_id_is_refused_by_name(source):
    with pytest.raises(SlotError, match=rf"Model folder {re.escape(source)} does not exist \(and it is not a hub id"):
        resolve_source(source)


def test_a_hub_id_passes_through_unchanged():
    assert resolve_source("google/flan-t5-base") == "google/flan-t5-base"
