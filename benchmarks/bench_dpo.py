"""Benchmark: a DPO step with LoRA against a LoRA SFT step on the same batch (peak memory, step time).

Usage: ``python benchmarks/bench_dpo.py [--steps 3] [--batch-size 4] [--source-tokens 512]
[--target-tokens 64] [--threads 2]``

Each case runs in a fresh child process (so peak memory is its own): a FLAN-T5-base-shaped model
(google/flan-t5-base's config.json) with **random weights** (nothing is downloaded), the LoRA
adapter training/lora.py adds (r=32, alpha 32, q and v), gradient checkpointing on (the default
of both methods), AdamW, ``--batch-size`` prompts of ``--source-tokens`` random token ids and
answers of ``--target-tokens``. The cases:

* ``sft``: a LoRA fine-tuning step on (prompt, chosen): one encoder and one decoder pass.
* ``dpo``: training/dpo.py's step, each prompt encoded once for both answers, the reference
  (adapters disabled, no grad) computed in the step.
* ``dpo-precomputed``: the same with the reference log-probabilities computed before (``--precompute_reference``).
* ``dpo-twice``: the prompt encoded once per answer, for the policy and the reference (a
  decoder-only recipe such as trl's), for comparison.

Prints peak memory (CUDA: ``max_memory_allocated``; CPU: ``ru_maxrss``, which includes the
weights and the Python process), the median step time (steps after the first; wall and the
process's CPU time, which the CPU ratios use) and each DPO case over ``sft`` (targets: memory <= 1.5; time <= 1.6 shared, <= 1.25 precomputed; issue 25).
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

# google/flan-t5-base config.json
BASE = dict(vocab_size=32128, d_model=768, d_ff=2048, num_layers=12, num_decoder_layers=12, num_heads=12,
            d_kv=64, feed_forward_proj="gated-gelu", tie_word_embeddings=False, decoder_start_token_id=0,
            dropout_rate=0.0)
CASES = ("sft", "dpo", "dpo-precomputed", "dpo-twice")


def make_batch(batch: int, source: int, target: int, device):
    """The same batch in every case: prompts (B, S), chosen and rejected answers (B, T)."""
    import torch

    g = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(2, BASE["vocab_size"], (batch, n), generator=g).to(device)  # noqa: E731
    src = ids(source)
    return {"input_ids": src, "attention_mask": torch.ones_like(src), "chosen_labels": ids(target),
            "rejected_labels": ids(target)}


def step_fn(case: str, model, batch):
    """The loss of one step of ``case`` (a closure over the batch)."""
    from training import dpo

    if case == "sft":
        return lambda: model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             labels=batch["chosen_labels"]).loss
    if case == "dpo-precomputed":
        ref = dpo.reference_logps(model, batch)  # before training, once (not timed)
        return lambda: dpo.dpo_loss(*dpo.pair_logps(model, batch), *ref, 0.1)[0]
    if case == "dpo":
        return lambda: dpo.dpo_loss(*dpo.pair_logps(model, batch), *dpo.reference_logps(model, batch), 0.1)[0]

    def twice():
        import torch

        with torch.no_grad(), model.disable_adapter():
            ref = dpo.pair_logps_twice(model, batch)
        return dpo.dpo_loss(*dpo.pair_logps_twice(model, batch), *ref, 0.1)[0]
    return twice


def child(case: str, steps: int, batch: int, source: int, target: int, threads: int) -> dict:
    """Train ``steps`` steps of ``case``; returns peak memory (MiB) and step times (s)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from training.lora import add_lora

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = add_lora(T5ForConditionalGeneration(T5Config(**BASE)), r=32, alpha=32, dropout=0.0).to(device)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    loss_of = step_fn(case, model, make_batch(batch, source, target, device))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, cpu = [], []
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        loss_of().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux -> MiB
    return {"peak_mib": peak, "step_s": statistics.median(times[1:] or times),
            "cpu_s": statistics.median(cpu[1:] or cpu), "device": device}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3, help="optimizer steps per case (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=4, help="prompts per step (default: %(default)s)")
    p.add_argument("--source-tokens", type=int, default=512, help="prompt tokens (default: %(default)s)")
    p.add_argument("--target-tokens", type=int, default=64,
                   help="answer tokens; DialogSum summaries are ~30-60 (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    p.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    args = p.parse_args()
    shape = [str(args.steps), str(args.batch_size), str(args.source_tokens), str(args.target_tokens), str(args.threads)]
    if args.child:
        print(json.dumps(child(args.child, *map(int, shape))))
        return
    out = {}
    for case in CASES:
        cmd = [sys.executable, __file__, "--child", case, "--steps", shape[0], "--batch-size", shape[1],
               "--source-tokens", shape[2], "--target-tokens", shape[3], "--threads", shape[4]]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"case {case} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        out[case] = json.loads(done.stdout.splitlines()[-1])
        print(f"  {case}: {out[case]}", flush=True)
    memory = "CUDA max_memory_allocated" if out["sft"]["device"] == "cuda" else "peak RSS"
    print(f"flan-t5-base shape, random weights, LoRA r=32 (q, v), gradient checkpointing, batch "
          f"{args.batch_size}, {args.source_tokens}/{args.target_tokens} tokens, AdamW, {args.steps} steps, "
          f"device {out['sft']['device']}, {args.threads} threads; each case in its own process")
    sft = out["sft"]
    # On CPU the ratio uses the process's CPU time per step (all its threads): on a machine shared
    # with other work the wall time measures the neighbours too. On CUDA: wall time.
    key = "step_s" if out["sft"]["device"] == "cuda" else "cpu_s"
    for case, r in out.items():
        ratio = "" if case == "sft" else (f"   / sft: memory {r['peak_mib'] / sft['peak_mib']:.2f}, "
                                          f"time {r[key] / sft[key]:.2f}")
        print(f"{case:16s} {memory} {r['peak_mib']:7.0f} MiB   step {r['step_s']:6.2f} s wall, "
              f"{r['cpu_s']:6.2f} s CPU{ratio}")
    print("targets: memory <= 1.5; time <= 1.6 (dpo), <= 1.25 (dpo-precomputed)")


if __name__ == "__main__":
    main()
