"""The CTranslate2 backend: conversion, its cache, generation settings, parity with PyTorch, the app.

Models: the tiny T5 fixture and LoRA adapters made for it; data: the real DialogSum test split.
Each test gets its own conversion cache (``$STUDIO_CT2_CACHE``) unless it shares the module's.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from summarizer.inference import ct2_convert, ct2_engine
from summarizer.evaluation.parity import parity_report
from summarizer.data import load_split
from summarizer.inference.generation import GenerationSettings
from summarizer.inference.slots import ModelSlots
from summarizer.inference.slot_config import SlotConfig, SlotError
from summarizer.prompts import build_prompt
from tests.app_server import running_app

GREEDY = GenerationSettings(max_new_tokens=30)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("ct2-cache")


@pytest.fixture(autouse=True)
def _cache_env(cache, monkeypatch):
    monkeypatch.setenv("STUDIO_CT2_CACHE", str(cache))


@pytest.fixture(scope="module")
def rows(dialogsum_dir):
    return list(load_split(dialogsum_dir, "test", limit=20))


@pytest.fixture(scope="module")
def prompts(rows, tiny_t5):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_t5)
    return [build_prompt("zero-shot", r["dialogue"], tokenizer=tok).text for r in rows]


def slots_for(tiny_t5, lora=None, **kwargs) -> ModelSlots:
    return ModelSlots(SlotConfig(base=str(tiny_t5), lora=str(lora) if lora else None), device="cpu", **kwargs)


@pytest.fixture(scope="module")
def torch_out(tiny_t5, random_adapter, prompts):
    return slots_for(tiny_t5, random_adapter).generate(["base", "lora"], prompts, GREEDY)


def test_float32_greedy_equals_torch_on_dialogsum_base_and_merged_lora(tiny_t5, random_adapter, prompts,
                                                                     rows, torch_out):
    ct2 = slots_for(tiny_t5, random_adapter, backend="ct2", compute_type="float32")
    out = ct2.generate(["base", "lora"], prompts, GREEDY)
    assert out["lora"] != out["base"]  # the merged adapter changes the model
    for slot in ("base", "lora"):
        report = parity_report(torch_out[slot], out[slot], [r["references"] for r in rows])
        assert report["share"] == 1.0, (slot, report)
        assert report["diff"] == 0.0 and report["low"] == report["high"] == 0.0


def test_on_a_cpu_a_class_batch_runs_in_sorted_batches_of_at_most_eight_and_evaluate_uses_both_cores(
        tiny_t5, prompts, torch_out, monkeypatch):
    sizes, parts = [], []
    split = ct2_engine.length_sorted_batches
    monkeypatch.setattr(ct2_engine, "length_sorted_batches",
                        lambda lengths, size: sizes.append(size) or split(lengths, size))
    generate = ct2_engine.CT2Model.generate
    monkeypatch.setattr(ct2_engine.CT2Model, "generate",
                        lambda self, *a, **k: parts.append(k.get("parts", 1)) or generate(self, *a, **k))
    ct2 = slots_for(tiny_t5, backend="ct2", compute_type="float32")
    ct2.engine.cores = 1  # a Ray replica of one CPU: 15 rows of a class in one call
    texts = ct2.engine.generate_rows([("base", p) for p in prompts[:15]], GREEDY)
    assert sizes == [ct2_engine.CPU_BATCH_ROWS] and ct2_engine.CPU_BATCH_ROWS == 8  # 8 + 7 rows, not 15
    assert texts == torch_out["base"][:15]  # the same summaries (float32 equals torch, greedy)
    ct2.engine.cores, parts[:] = 2, []
    out = ct2.generate(["base"], prompts, GREEDY, batch_size=8)  # Evaluate's path
    assert parts == [2] and out["base"] == torch_out["base"]  # two batches at once on two cores


def test_int8_reports_share_and_paired_rouge_difference(tiny_t5, prompts, rows, torch_out):
    out = slots_for(tiny_t5, backend="ct2", compute_type="int8").generate(["base"], prompts, GREEDY)
    report = parity_report(torch_out["base"], out["base"], [r["references"] for r in rows])
    print("int8 parity on the tiny T5:", json.dumps(report))
    assert report["n"] == len(prompts) and 0 <= report["identical"] <= report["n"]
    assert report["low"] <= report["diff"] <= report["high"]
    assert report["diff"] == pytest.approx(report["rouge1_ct2"] - report["rouge1_torch"])
    assert all(out["base"])  # int8 still summarizes every dialogue


def test_second_load_reuses_the_cache_without_converting(tiny_t5, random_adapter, prompts, monkeypatch):
    first = slots_for(tiny_t5, random_adapter, backend="ct2", compute_type="float32")
    expected = first.generate(["base", "lora"], prompts[:3], GREEDY)
    before = ct2_convert.conversion_count

    def refuse(*args, **kwargs):
        raise AssertionError("converted again instead of using the cache")
    monkeypatch.setattr(ct2_convert, "_converter", refuse)
    again = slots_for(tiny_t5, random_adapter, backend="ct2", compute_type="float32")
    assert again.generate(["base", "lora"], prompts[:3], GREEDY) == expected
    assert ct2_convert.conversion_count == before


def test_cache_key_changes_with_weights_and_compute_type(tiny_t5, tmp_path):
    copy = shutil.copytree(tiny_t5, tmp_path / "t5")
    a = ct2_convert.cache_entry(str(copy), "int8")
    assert a == ct2_convert.cache_entry(str(copy), "int8")
    assert a != ct2_convert.cache_entry(str(copy), "float32")
    (copy / "model.safetensors").write_bytes((copy / "model.safetensors").read_bytes() + b" ")
    assert a != ct2_convert.cache_entry(str(copy), "int8")


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_interrupted_conversion_leaves_no_cache_entry(tiny_t5, tmp_path, monkeypatch, error):
    from ctranslate2.converters import TransformersConverter

    monkeypatch.setenv("STUDIO_CT2_CACHE", str(tmp_path / "cache"))

    def half_written(self, output_dir, **kwargs):
        (tmp_path / "reached").touch()
        (__import__("pathlib").Path(output_dir)).mkdir(parents=True)
        (__import__("pathlib").Path(output_dir) / "model.bin").write_bytes(b"partial")
        raise error
    monkeypatch.setattr(TransformersConverter, "convert", half_written)
    slots = slots_for(tiny_t5, backend="ct2", compute_type="float32")
    expected = SlotError if isinstance(error, Exception) else KeyboardInterrupt
    with pytest.raises(expected, match="base slot.*disk full" if expected is SlotError else None):
        slots.generate(["base"], ["Summarize: hi"], GREEDY)
    assert (tmp_path / "reached").exists()
    assert list((tmp_path / "cache").iterdir()) == []  # no entry and no temporary folder
    monkeypatch.undo()  # the real converter works afterwards
    monkeypatch.setenv("STUDIO_CT2_CACHE", str(tmp_path / "cache"))
    assert slots.generate(["base"], ["Summarize: hi"], GREEDY)["base"]


def test_run_model_is_cached_in_its_run_folder(tiny_t5, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_t5, run / "model")
    (run / "status.json").write_text('{"state": "finished"}')
    (run / "config.json").write_text('{"method": "full"}')
    slots = slots_for(tiny_t5, backend="ct2", compute_type="int8")
    slots.set_source("full", str(run))  # a run folder stands for its model/ folder
    slots.load(["full"])
    entries = list((run / "ct2").iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("int8-") and (entries[0] / "model.bin").is_file()


def test_evaluate_with_ct2_never_loads_a_torch_model(tiny_t5, rows, monkeypatch):
    """Token counts under ct2 come from the tokenizer alone: no torch weights are read."""
    from summarizer.evaluation.evaluate import evaluate

    slots = slots_for(tiny_t5, backend="ct2", compute_type="float32")
    slots.set_source("full", str(tiny_t5))
    monkeypatch.setattr(slots.torch_engine, "_load_seq2seq", lambda *a: pytest.fail(f"torch model loaded: {a}"))
    result = evaluate(slots, None, rows[:3], GREEDY, ["base", "full"], n_resamples=50)
    assert slots.torch_engine._base is None and slots.torch_engine._full is None
    from statistics import fmean
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_t5)
    for row in result.results:
        summaries = [p[f"{row['model']}_summary"] for p in result.predictions]
        counted = [len(tok(s, add_special_tokens=False)["input_ids"]) for s in summaries]
        assert row["gen_tokens_mean"] == pytest.approx(fmean(counted))


def test_ct2_parameter_counts_equal_the_loaded_torch_models(tiny_t5, random_adapter):
    torch_slots = slots_for(tiny_t5, random_adapter)
    ct2_slots = slots_for(tiny_t5, random_adapter, backend="ct2")
    for slots in (torch_slots, ct2_slots):
        slots.set_source("full", str(tiny_t5))
    for slot in ("base", "full", "lora"):
        assert ct2_slots.trainable_parameters(slot) == torch_slots.trainable_parameters(slot)
    assert ct2_slots.torch_engine._base is None and ct2_slots.torch_engine._full is None


def test_generation_settings_are_honoured(tiny_t5, prompts):
    ct2 = slots_for(tiny_t5, backend="ct2", compute_type="float32")
    tok = ct2.tokenizer
    short = ct2.generate(["base"], prompts[:4], GenerationSettings(max_new_tokens=5))["base"]
    long = ct2.generate(["base"], prompts[:4], GenerationSettings(max_new_tokens=30))["base"]
    for s, ln in zip(short, long):
        assert len(tok(s, add_special_tokens=False).input_ids) <= 5 < len(tok(ln, add_special_tokens=False).input_ids)
        assert ln.startswith(s)  # greedy: the first five tokens are the same
    torch_short = slots_for(tiny_t5).generate(["base"], prompts[:4], GenerationSettings(max_new_tokens=5))
    assert torch_short["base"] == short
    beam = ct2.generate(["base"], prompts, GenerationSettings(max_new_tokens=12, strategy="beam", num_beams=4))
    greedy = ct2.generate(["base"], prompts, GenerationSettings(max_new_tokens=12))
    assert beam["base"] != greedy["base"]
    sample = GenerationSettings(max_new_tokens=20, strategy="sampling", temperature=1.5, top_k=0, seed=3)
    a = ct2.generate(["base"], prompts[:4], sample)
    assert ct2.generate(["base"], prompts[:4], sample) == a  # same seed, same summaries
    other = ct2.generate(["base"], prompts[:4], GenerationSettings(**{**sample.to_dict(), "seed": 4}))
    assert other != a and a["base"] != greedy["base"][:4]


def test_options_map_each_setting():
    opts = ct2_engine.translate_options(GenerationSettings(max_new_tokens=40, min_new_tokens=10,
                                                            strategy="sampling", temperature=0.5,
                                                            top_k=7, top_p=0.9))
    assert opts == {"max_decoding_length": 40, "min_decoding_length": 10, "max_input_length": 0,
                    "beam_size": 1, "sampling_topk": 7, "sampling_topp": 0.9, "sampling_temperature": 0.5}
    assert ct2_engine.translate_options(GenerationSettings(strategy="beam", num_beams=3))["beam_size"] == 3


def test_bad_backend_or_compute_type_names_the_field(tiny_t5):
    with pytest.raises(SlotError, match="compute type must be one of auto, int8, float32"):
        slots_for(tiny_t5, backend="ct2", compute_type="int4")
    with pytest.raises(SlotError, match="backend must be one of torch, ct2"):
        slots_for(tiny_t5, backend="onnx")
    with pytest.raises(SlotError, match="compute type 'int8_float16' is not supported on cpu"):
        slots_for(tiny_t5, backend="ct2", compute_type="int8_float16")


def test_app_compare_through_the_api_with_ct2(tiny_t5, tiny_classifier, random_adapter, dialogsum_dir,
                                              tmp_path, rows):
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path / "runs", ("--backend", "ct2",
                     "--compute-type", "float32"), full=tiny_t5, lora=random_adapter) as (studio, url):
        client = Client(url, verbose=False)
        assert studio.slots.backend == "ct2"
        notes, *cells, results = client.predict(rows[5]["dialogue"], 24, api_name="/compare")
        prompt = build_prompt("zero-shot", rows[5]["dialogue"], tokenizer=studio.slots.tokenizer).text
        direct = slots_for(tiny_t5, random_adapter).generate(["base", "lora"], [prompt],
                                                             GenerationSettings(max_new_tokens=24))
        summaries = cells[0::2]
        assert summaries[0] == summaries[1] == direct["base"][0]  # ct2 float32 == torch
        assert summaries[2] == direct["lora"][0] != summaries[0]
        assert sorted(studio.slots.ct2_engine.models) == ["base", "full", "lora"]


def test_backend_selector_endpoint_switches_and_refuses_with_the_field(tiny_t5, tiny_classifier,
                                                                        dialogsum_dir, tmp_path):
    import gradio as gr

    from summarizer.toxicity import ToxicityScorer
    from tests.app_server import free_port
    from ui import backend
    from ui.context import Studio

    studio = Studio(slots=slots_for(tiny_t5), toxicity=ToxicityScorer(str(tiny_classifier), device="cpu"),
                    dataset=str(dialogsum_dir), runs_dir=tmp_path)
    with gr.Blocks() as demo:
        backend.build(studio)
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        assert client.predict("ct2", "float32", api_name="/set_backend") == "ct2 (CTranslate2, float32)"
        assert studio.slots.backend == "ct2" and "base" in studio.slots.ct2_engine.models  # converted and loaded
        with pytest.raises(AppError, match="compute type 'int8_float16' is not supported on cpu"):
            client.predict("ct2", "int8_float16", api_name="/set_backend")
        assert (studio.slots.backend, studio.slots.compute_type) == ("ct2", "float32")  # unchanged
        assert client.predict("torch", "auto", api_name="/set_backend") == "torch (transformers)"
    finally:
        demo.close()


def test_a_hub_model_downloaded_by_its_conversion_is_cached_under_its_commit(tmp_path, monkeypatch):
    """First use of an uncached hub id: the entry is keyed by the commit the download brought,
    so the next start finds it instead of converting again under ``@unknown``."""
    snapshots = iter([None])  # not cached before the conversion; cached (commit abc123) after
    monkeypatch.setattr(ct2_convert, "_hub_snapshot", lambda s: next(snapshots, tmp_path / "abc123"))
    converted = []

    class FakeConverter:
        def convert(self, out, quantization):
            converted.append(out)
            (Path(out)).mkdir()
            (Path(out) / "model.bin").write_bytes(b"")

    monkeypatch.setattr(ct2_convert, "_converter", lambda source, base: FakeConverter())
    entry = ct2_convert.convert("google/flan-t5-base", "int8")
    assert "unknown" not in ct2_convert.source_key("google/flan-t5-base")
    assert entry == ct2_convert.cache_entry("google/flan-t5-base", "int8") and (entry / "model.bin").is_file()
    assert ct2_convert.convert("google/flan-t5-base", "int8") == entry and len(converted) == 1


def test_damaged_cache_entry_is_refused_and_the_engine_stays_torch(tiny_t5, tiny_classifier, dialogsum_dir,
                                                                    tmp_path, rows, monkeypatch):
    """ctranslate2 raises RuntimeError for a damaged model.bin: the switch is refused with a message
    naming the slot and the folder to delete, and Compare keeps working on torch."""
    monkeypatch.setenv("STUDIO_CT2_CACHE", str(tmp_path / "ct2"))
    folder = ct2_convert.convert(str(tiny_t5), ct2_convert.STORED["float32"])
    (folder / "model.bin").write_bytes(b"not a CTranslate2 model")
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path / "runs") as (studio, url):
        client = Client(url, verbose=False)
        with pytest.raises(AppError) as refused:
            client.predict("ct2", "float32", api_name="/set_backend")
        message = str(refused.value)
        assert "Engine not changed, still torch" in message and "The base slot" in message
        assert str(folder) in message and "Delete that folder" in message
        assert (studio.slots.backend, studio.slots.compute_type) == ("torch", "auto")
        notes, *cells, results = client.predict(rows[5]["dialogue"], 24, api_name="/compare")
        prompt = build_prompt("zero-shot", rows[5]["dialogue"], tokenizer=studio.slots.tokenizer).text
        direct = slots_for(tiny_t5).generate(["base"], [prompt], GenerationSettings(max_new_tokens=24))
        assert cells[0] == direct["base"][0] and studio.slots.ct2_engine is None
