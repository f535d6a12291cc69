"""Benchmark the Compare tab's cost: four slots in one request vs one base summary, torch and ct2.

Usage: ``python benchmarks/bench_compare.py [--size base|small] [--tokens 60] [--repeats 3]``

Builds FLAN-T5-shaped models with random weights from configs (no download): a base, a second
full model, and two LoRA adapters (r=32 on q,v, as the course lab; random B so they change the
output). Outputs have a fixed length (min_new_tokens = max_new_tokens) so every slot does the same
work. Prints:

* Compare latency (base + full + lora + detox in one request) / latency of one base summary
  (target <= 2.5; four sequential calls would be about 4);
* resident memory with all four slots loaded / with only the base slot loaded (target <= 2.2),
  each measured in a fresh child process after loading and one generation;
* the torch Compare with the full model generating in a thread beside the shared base's mixed
  batch (the default where there are >= 2 cores) / the same with the two run one after the other;
* CTranslate2 (``--backend ct2``, ``--compute-type``, default int8): Compare with all four slots
  / one torch base summary (target <= 1.0), and the resident memory of a process holding the four
  ct2 slots / one holding the torch base (target <= 1.0). Conversions go to a temporary cache.

All latencies of one table come from one child process, the cases interleaved in each repeat so
that load on a shared machine hits them alike; the median per case is reported.
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


def _prompt(tokenizer) -> str:
    from summarizer.data import default_local_dataset, load_split
    from summarizer.prompts import build_prompt

    data = default_local_dataset()
    dialogue = load_split(data, "test", limit=1)[0]["dialogue"] if data else "#Person1#: Hi.\n#Person2#: Hello."
    return build_prompt("zero-shot", dialogue, tokenizer=tokenizer).text


def child(paths: dict, mode: str, tokens: int, repeats: int, compute_type: str) -> dict:
    """Run in a fresh process. ``mode``: ``timing`` (every case, interleaved), ``rss-torch-base``,
    ``rss-torch-four`` or ``rss-ct2-four`` (load, generate once, report resident memory)."""
    from summarizer.inference.generation import GenerationSettings
    from summarizer.inference.slot_config import SLOTS
    from summarizer.inference.answer_cache import AnswerCache
    from summarizer.inference.slot_config import SlotConfig
    from summarizer.inference.slots import ModelSlots

    settings = GenerationSettings(max_new_tokens=tokens, min_new_tokens=tokens)
    if mode.startswith("rss"):
        slots = ["base"] if mode.endswith("base") else list(SLOTS)
        backend = "ct2" if "ct2" in mode else "torch"
        obj = ModelSlots(SlotConfig(**{s: paths[s] for s in slots}), backend=backend, compute_type=compute_type)
        obj.generate(slots, [_prompt(obj.tokenizer)], settings)
        return {"rss_mib": rss_mib()}
    torch_slots = ModelSlots(SlotConfig(**paths))
    ct2_slots = ModelSlots(SlotConfig(**paths), backend="ct2", compute_type=compute_type)
    ct2_slots.answers = AnswerCache(max_entries=0)  # every repeat computes (the same prompt each time)
    prompt = _prompt(torch_slots.tokenizer)
    four = list(SLOTS)

    def torch_compare(parallel: bool):
        torch_slots.torch_engine.parallel_full = parallel
        return torch_slots.generate(four, [prompt], settings)
    cases = {"one_base": lambda: torch_slots.generate(["base"], [prompt], settings),
             "torch_compare_sequential": lambda: torch_compare(False),
             "torch_compare_parallel": lambda: torch_compare(True),
             "ct2_compare_sequential": lambda: ct2_slots.generate(four, [prompt], settings),
             # the Compare tab's path: the four translators side by side (CT2Engine.generate_rows)
             "ct2_compare": lambda: ct2_slots.answer(four, [prompt], settings),
             "ct2_one_base": lambda: ct2_slots.generate(["base"], [prompt], settings)}
    for run in cases.values():  # warm-up, and the ct2 conversions
        run()
    runs = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            t = time.perf_counter()
            run()
            runs[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) for name, v in runs.items()}


def run_child(paths, mode, tokens, repeats, compute_type, env) -> dict:
    spec = json.dumps({"paths": paths, "mode": mode, "tokens": tokens, "repeats": repeats,
                       "compute_type": compute_type})
    out = subprocess.run([sys.executable, __file__, "--child", spec], check=True, capture_output=True,
                         text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description="Compare-tab latency and memory ratios (random-weight FLAN-T5 shapes).")
    p.add_argument("--size", choices=sorted(SIZES), default="base", help="FLAN-T5 shape (default: %(default)s)")
    p.add_argument("--tokens", type=int, default=60, help="fixed output length in tokens (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats, median reported (default: %(default)s)")
    p.add_argument("--compute-type", default="int8", help="ct2 compute type (default: %(default)s)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(child(spec["paths"], spec["mode"], spec["tokens"], spec["repeats"], spec["compute_type"])))
        return
    import torch
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_models(args.size, Path(tmp))
        env = {**os.environ, "STUDIO_CT2_CACHE": str(Path(tmp) / "ct2")}
        t = run_child(paths, "timing", args.tokens, args.repeats, args.compute_type, env)
        rss = {mode: run_child(paths, mode, args.tokens, args.repeats, args.compute_type, env)["rss_mib"]
               for mode in ("rss-torch-base", "rss-torch-four", "rss-ct2-four")}
    ct = args.compute_type
    print(f"flan-t5-{args.size} shape, random weights, {args.tokens} new tokens (fixed), greedy, "
          f"batch of 1 dialogue, {torch.get_num_threads()} threads, median of {args.repeats} interleaved")
    print(f"one base summary, torch:            {t['one_base']:.2f} s")
    print(f"Compare, ct2 {ct}, slots one after another: {t['ct2_compare_sequential']:.2f} s  "
          f"(ratio {t['ct2_compare_sequential'] / t['one_base']:.2f})")
    print(f"one base summary, ct2 {ct}:        {t['ct2_one_base']:.2f} s  "
          f"(ratio {t['ct2_one_base'] / t['one_base']:.2f})")
    print(f"compare (4 slots), torch sequential: {t['torch_compare_sequential']:.2f} s  "
          f"(ratio {t['torch_compare_sequential'] / t['one_base']:.2f})")
    print(f"compare (4 slots), torch parallel:   {t['torch_compare_parallel']:.2f} s  "
          f"(ratio {t['torch_compare_parallel'] / t['one_base']:.2f}; target <= 2.5)")
    print(f"compare (4 slots), ct2 {ct}:       {t['ct2_compare']:.2f} s  "
          f"(ratio {t['ct2_compare'] / t['one_base']:.2f}; target <= 1.0)")
    print(f"RSS, torch base slot only:  {rss['rss-torch-base']:.0f} MiB")
    print(f"RSS, torch all four slots:  {rss['rss-torch-four']:.0f} MiB  "
          f"(ratio {rss['rss-torch-four'] / rss['rss-torch-base']:.2f}; target <= 2.2)")
    print(f"RSS, ct2 {ct} four slots:  {rss['rss-ct2-four']:.0f} MiB  "
          f"(ratio {rss['rss-ct2-four'] / rss['rss-torch-base']:.2f}; target <= 1.0)")


if __name__ == "__main__":
    main()
