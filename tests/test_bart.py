"""A BART base through the whole app: a LoRA run, the Compare endpoint and an evaluation.

"Any seq2seq base" is claimed; the T5 is what every other test uses. The tiny BART
(:mod:`tests.tiny_bart`) has other module names (``q_proj``/``v_proj``), a different
decoder start and tied embeddings, so this takes it through the same paths and checks each
output against one computed here with plain transformers and peft.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gradio_client import Client
from safetensors.torch import load_file

from summarizer.data import load_split
from summarizer.evaluation.evaluate import evaluate
from summarizer.evaluation.evaluate import build_prompts
from summarizer.inference.generation import GenerationSettings, generate_texts
from summarizer.inference.slots import ModelSlots
from summarizer.inference.slot_config import SlotConfig
from summarizer.inference.model_sources import resolve_source
from summarizer.prompts import build_prompt
from tests.app_server import running_app

ROOT = Path(__file__).resolve().parents[1]
GREEDY = GenerationSettings(max_new_tokens=24)  # the Compare tab's settings with 24 new tokens


def peft_outputs(base: Path, adapter: Path, prompts: list[str]) -> dict[str, list[str]]:
    """Greedy summaries of the plain base and of base + adapter loaded by peft itself (not by
    the app's shared-base slots): the known outputs the app must reproduce."""
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    plain = AutoModelForSeq2SeqLM.from_pretrained(base).eval()
    expected = {"base": generate_texts(plain, tokenizer, prompts, GREEDY)}
    tuned = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(base), adapter).eval()
    expected["lora"] = generate_texts(tuned, tokenizer, prompts, GREEDY)
    return expected


@pytest.fixture(scope="module")
def bart_run(tiny_bart, dialogsum_dir, tmp_path_factory) -> Path:
    """The folder of a finished 3-step LoRA run on the tiny BART (the CLI, as the job runner starts it).

    The learning rate is high so that 3 steps move the adapter far enough to change some output.
    """
    runs = tmp_path_factory.mktemp("bart-runs")
    cmd = [sys.executable, "-m", "training.lora", "--base_model", str(tiny_bart), "--dataset",
           str(dialogsum_dir), "--max_steps", "3", "--train_size", "16", "--val_size", "4",
           "--batch_size", "4", "--max_source_tokens", "128", "--max_target_tokens", "32",
           "--learning_rate", "0.05", "--runs_dir", str(runs)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return run


def test_lora_run_on_bart_saves_only_a_q_proj_v_proj_adapter(bart_run):
    status = json.loads((bart_run / "status.json").read_text())
    assert status["state"] == "completed" and status["method"] == "lora" and status["step"] == 3
    model = bart_run / "model"
    config = json.loads((model / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    assert not (model / "model.safetensors").exists()
    weights = load_file(model / "adapter_model.safetensors")
    assert weights and all("lora_" in k for k in weights)  # only the adapter was saved
    adapted = {k.split(".lora_")[0].rsplit(".", 1)[1] for k in weights}
    assert adapted == {"q_proj", "v_proj"}
    # 2 encoder layers (self-attention) + 2 decoder layers (self- and cross-attention), q and v, A and B
    assert len(weights) == (2 + 2 * 2) * 2 * 2
    assert any(k.endswith("lora_B.weight") and weights[k].abs().sum() > 0 for k in weights)  # B started at 0


def test_compare_serves_bart_base_and_lora_as_peft_does(bart_run, tiny_bart, tiny_classifier, dialogsum_dir,
                                                       tmp_path):
    with running_app(tiny_bart, tiny_classifier, dialogsum_dir, tmp_path / "runs", lora=bart_run) as (studio, url):
        row = studio.split("test")[2]
        _, *cells, results = Client(url, verbose=False).predict(row["dialogue"], GREEDY.max_new_tokens,
                                                                api_name="/compare")
        prompt = build_prompt("zero-shot", row["dialogue"], tokenizer=studio.slots.tokenizer,
                              max_tokens=studio.max_input_tokens).text
    summaries = dict(zip([r["slot"] for r in results["slots"]], cells[0::2]))
    expected = peft_outputs(tiny_bart, resolve_source(str(bart_run)), [prompt])
    assert summaries["base"] == expected["base"][0] and summaries["base"]  # BART emits text
    assert summaries["lora"] == expected["lora"][0]
    assert summaries["full"].startswith("no model yet")


def test_evaluate_bart_base_and_lora(bart_run, tiny_bart, dialogsum_dir):
    rows = list(load_split(dialogsum_dir, "test", limit=3))
    adapter = resolve_source(str(bart_run))
    slots = ModelSlots(SlotConfig(base=str(tiny_bart), lora=adapter), device="cpu")
    result = evaluate(slots, None, rows, GREEDY, ["base", "lora"], n_resamples=50)
    assert [r["model"] for r in result.results] == ["base", "lora"]
    for r in result.results:
        assert r["n_dialogues"] == 3
        assert all(math.isfinite(r[f"{k}_best"]) and 0 <= r[f"{k}_best"] <= 100
                   for k in ("rouge1", "rouge2", "rougeL", "rougeLsum"))
    assert result.results[1]["trainable_pct"] < 100 == result.results[0]["trainable_pct"]
    prompts, _ = build_prompts(rows, slots.tokenizer)
    expected = peft_outputs(tiny_bart, adapter, prompts)
    for m in ("base", "lora"):
        assert [p[f"{m}_summary"] for p in result.predictions] == expected[m]
    assert expected["lora"] != expected["base"]  # the 3 trained steps changed what BART writes
