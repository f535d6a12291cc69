"""Benchmark: peak memory and step time of LoRA training (with and without gradient checkpointing) vs full.

Usage: ``python benchmarks/bench_lora_memory.py [--steps 2] [--batch-size 8] [--threads 2]``

Each configuration runs in a fresh child process (so peak resident memory is its own): a
FLAN-T5-small-shaped model (google/flan-t5-small's config.json, vocab 32128) with **random
weights**, batches of ``--batch-size`` random token ids, 512 source / 128 target tokens (the
training defaults), AdamW, ``--steps`` optimizer steps. The LoRA adapter is the one training/lora.py
adds (r=32, alpha 32, q and v); gradient checkpointing is switched on as the Trainer does
(``gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})``).

Prints peak RSS (``ru_maxrss``) and the median step time (steps after the first) of each, then
peak LoRA (checkpointing, the new default) / full (target <= 0.6; 1.01 without checkpointing) and
the step-time ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# google/flan-t5-small config.json
SMALL = dict(vocab_size=32128, d_model=512, d_ff=1024, num_layers=8, num_decoder_layers=8, num_heads=6,
             d_kv=64, feed_forward_proj="gated-gelu", tie_word_embeddings=False, decoder_start_token_id=0)
CASES = {"full": ("full", False), "lora": ("lora", False), "lora+gc": ("lora", True)}


def child(method: str, checkpointing: bool, steps: int, batch: int, threads: int) -> dict:
    """Train ``steps`` steps; returns peak RSS (MiB) and step times (s)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from training.lora import add_lora

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(**SMALL))
    if method == "lora":
        model = add_lora(model, r=32, alpha=32, dropout=0.05)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    times = []
    for _ in range(steps):
        src = torch.randint(2, SMALL["vocab_size"], (batch, 512))  # (B, 512)
        tgt = torch.randint(2, SMALL["vocab_size"], (batch, 128))  # (B, 128)
        start = time.perf_counter()
        loss = model(input_ids=src, attention_mask=torch.ones_like(src), labels=tgt).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux -> MiB
    return {"peak_mib": peak, "step_s": statistics.median(times[1:] or times),
            "trainable": sum(p.numel() for p in params)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2, help="optimizer steps per case (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="(default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        method, gc = CASES[args.child]
        print(json.dumps(child(method, gc, args.steps, args.batch_size, args.threads)))
        return
    out = {}
    for name in CASES:
        cmd = [sys.executable, __file__, "--child", name, "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
        out[name] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        print(f"  {name}: {out[name]}", flush=True)
    print(f"flan-t5-small shape, random weights, batch {args.batch_size}, 512/128 tokens, AdamW, "
          f"{args.steps} steps, {args.threads} threads; each case in its own process")
    for name, r in out.items():
        print(f"{name:8s} peak RSS {r['peak_mib']:7.0f} MiB   step {r['step_s']:6.2f} s   "
              f"trainable {r['trainable']:,}")
    full = out["full"]
    print(f"peak LoRA+checkpointing / full:  {out['lora+gc']['peak_mib'] / full['peak_mib']:.2f}  (target <= 0.6)")
    print(f"peak LoRA (no checkpointing) / full: {out['lora']['peak_mib'] / full['peak_mib']:.2f}")
    print(f"step LoRA+checkpointing / full:  {out['lora+gc']['step_s'] / full['step_s']:.2f}")
    print(f"step LoRA+checkpointing / LoRA:  {out['lora+gc']['step_s'] / out['lora']['step_s']:.2f}  "
          f"(the cost of checkpointing)")


if __name__ == "__main__":
    main()
