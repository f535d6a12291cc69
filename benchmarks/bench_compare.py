"""Benchmark the Compare tab's cost: four slots in one request vs one base summary.

Usage: ``python benchmarks/bench_compare.py [--size base|small] [--tokens 60] [--repeats 3]``

Builds FLAN-T5-shaped models with random weights from configs (no download): a base, a second
full model, and two LoRA adapters (r=32 on q,v, as the course lab; random B so they change the
output). Outputs have a fixed length (min_new_tokens = max_new_tokens) so every slot does the same
work. Prints:

* Compare latency (base + full + lora + detox in one request) / latency of one base summary
  (target <= 2.5; four sequential calls would be about 4);
* resident memory with all four slots loaded / with only the base slot loaded (target <= 2.2),
  each measured in a fresh child process after loading and one generation.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = {  # google/flan-t5-{base,small} config.json values
    "base": dict(d_model=768, d_ff=2048, num_layers=12, num_decoder_layers=12, num_heads=12, d_kv=64),
    "small": dict(d_model=512, d_ff=1024, num_layers=8, num_decoder_layers=8, num_heads=6, d_kv=64),
}


def build_models(size: str, folder: Path) -> dict[str, str]:
    """Write base, full, lora and detox folders with random weights; returns slot -> folder."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import T5Config, T5ForConditionalGeneration

    from summarizer.data import default_local_dataset, load_split
    from tests.tiny_models import FALLBACK_DIALOGUES, train_tokenizer

    data = default_local_dataset()
    texts = ([d for d in load_split(data, "train", limit=2000)["dialogue"]] if data
             else [d for d, _ in FALLBACK_DIALOGUES] * 50)
    tokenizer = train_tokenizer(texts, vocab_size=8000)
    config = T5Config(vocab_size=32128, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id, **SIZES[size])
    paths = {}
    for slot, seed in (("base", 0), ("full", 1)):
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
        paths[slot] = str(folder / slot)
        model.save_pretrained(paths[slot])
        tokenizer.save_pretrained(paths[slot])
    for slot, seed in (("lora", 2), ("detox", 3)):
        torch.manual_seed(seed)
        peft_model = get_peft_model(T5ForConditionalGeneration.from_pretrained(paths["base"]),
                                    LoraConfig(r=32, lora_alpha=32, target_modules=["q", "v"],
                                               lora_dropout=0.05, task_type="SEQ_2_SEQ_LM",
                                               init_lora_weights="gaussian"))
        paths[slot] = str(folder / slot)
        peft_model.save_pretrained(paths[slot])
    return paths


def rss_mib() -> float:
    import psutil
    return psutil.Process().memory_info().rss / 2**20


def child(paths: dict, slots: list[str], tokens: int, repeats: int) -> dict:
    """Load ``slots``, generate, and return timings and RSS (run in a fresh process)."""
    from summarizer.data import default_local_dataset, load_split
    from summarizer.generation import GenerationSettings
    from summarizer.models import ModelSlots, SlotConfig
    from summarizer.prompts import build_prompt

    slots_obj = ModelSlots(SlotConfig(**{s: paths[s] for s in slots}))
    slots_obj.load(slots)
    data = default_local_dataset()
    dialogue = load_split(data, "test", limit=1)[0]["dialogue"] if data else "#Person1#: Hi.\n#Person2#: Hello."
    prompt = build_prompt("zero-shot", dialogue, tokenizer=slots_obj.tokenizer).text
    settings = GenerationSettings(max_new_tokens=tokens, min_new_tokens=tokens)
    slots_obj.generate(slots, [prompt], settings)  # warm-up
    timings = {}
    for name, ask in (("one_base", ["base"]), ("requested", slots)):
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            slots_obj.generate(ask, [prompt], settings)
            runs.append(time.perf_counter() - t)
        timings[name] = statistics.median(runs)
    return {"rss_mib": rss_mib(), **timings}


def run_child(paths, slots, tokens, repeats) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps({"paths": paths, "slots": slots,
                                                             "tokens": tokens, "repeats": repeats})]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description="Compare-tab latency and memory ratios (random-weight FLAN-T5 shapes).")
    p.add_argument("--size", choices=sorted(SIZES), default="base", help="FLAN-T5 shape (default: %(default)s)")
    p.add_argument("--tokens", type=int, default=60, help="fixed output length in tokens (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats, median reported (default: %(default)s)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(child(spec["paths"], spec["slots"], spec["tokens"], spec["repeats"])))
        return
    import torch
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_models(args.size, Path(tmp))
        only_base = run_child(paths, ["base"], args.tokens, args.repeats)
        four = run_child(paths, ["base", "full", "lora", "detox"], args.tokens, args.repeats)
    latency = four["requested"] / four["one_base"]
    memory = four["rss_mib"] / only_base["rss_mib"]
    print(f"flan-t5-{args.size} shape, random weights, {args.tokens} new tokens (fixed), greedy, "
          f"batch of 1 dialogue, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"one base summary:         {four['one_base']:.2f} s")
    print(f"compare (4 slots):        {four['requested']:.2f} s")
    print(f"latency ratio:            {latency:.2f}  (target <= 2.5; four sequential calls ~ 4)")
    print(f"RSS, base slot only:      {only_base['rss_mib']:.0f} MiB")
    print(f"RSS, all four slots:      {four['rss_mib']:.0f} MiB")
    print(f"memory ratio:             {memory:.2f}  (target <= 2.2)")


if __name__ == "__main__":
    main()
