"""Parity: CTranslate2's summaries against PyTorch's on real DialogSum test dialogues.

Usage: ``python benchmarks/parity_ct2.py [--n 100] [--base-model M --lora-model A] [--max-new-tokens 60]``

Without models it uses the tiny test T5 (tests/tiny_models.py, cached in ``$STUDIO_TEST_CACHE``)
and a random LoRA adapter for it (r=4 on q,v, as the tests' ``make_adapter``), so it runs offline.
For each compute type (float32, int8) and slot (base, lora: the adapter merged into its own
converted copy of the base) it prints the share of summaries identical to torch's and the mean
ROUGE-1 difference ct2 - torch (x100, best over references) with its paired bootstrap 95%
interval (:func:`summarizer.evaluation.parity.parity_report`). Greedy decoding, zero-shot prompts.
``--beam`` adds beam search (4 beams), whose stopping rules differ between the two libraries.

``--seeds 0 1 2`` (tiny models only) builds a fresh tiny T5 (``tests.tiny_models.build_t5(seed=s)``)
and random adapter (seed ``s + 1``) per seed and prints, after the per-seed lines, the range
(min to max over the seeds) of each row. One tiny build is not a measurement: its greedy choices
are near ties, and builds are not bit-reproducible (the ``tokenizers`` Unigram trainer gives a
different vocabulary on each run, even with one thread), so report the range over seeds.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def seeded_tiny_models(folder: Path, seed: int) -> tuple[str, str]:
    """A tiny T5 built with ``seed`` (one torch thread) and a random LoRA adapter (seed + 1) for it."""
    import torch

    from tests.conftest import make_adapter
    from tests import tiny_models as tm

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        base = tm.build_t5(folder / f"t5-seed{seed}", seed=seed)
    finally:
        torch.set_num_threads(threads)
    return str(base), str(make_adapter(base, folder / f"lora-seed{seed}", fresh=False, seed=seed + 1))


def tiny_models(folder: Path) -> tuple[str, str]:
    """The tests' tiny T5 (built or reused from the test cache) and a random LoRA adapter for it."""
    from tests.conftest import _cached, make_adapter
    from tests import tiny_models as tm

    base = _cached("t5", tm.build_t5)
    return str(base), str(make_adapter(base, folder / "lora-random", fresh=False, seed=1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100, help="DialogSum test dialogues (default: %(default)s)")
    p.add_argument("--base-model", help="base model (default: the tiny test T5)")
    p.add_argument("--lora-model", help="LoRA adapter for the base (default: a random one for the tiny T5)")
    p.add_argument("--max-new-tokens", type=int, default=60, help="(default: %(default)s)")
    p.add_argument("--compute-types", nargs="+", default=["float32", "int8"], help="(default: %(default)s)")
    p.add_argument("--beam", action="store_true", help="also compare beam search (4 beams)")
    p.add_argument("--seeds", type=int, nargs="+",
                   help="tiny models only: build one tiny T5 and adapter per seed and report the range")
    args = p.parse_args(argv)
    if args.seeds and args.base_model:
        p.error("--seeds builds tiny models; leave out --base-model")
    if args.lora_model and not args.base_model:  # an adapter needs the base it was trained on
        p.error("--lora-model needs --base-model (the base the adapter was trained on)")

    import torch

    from summarizer.data import default_local_dataset, load_split

    folder = default_local_dataset()
    if folder is None:
        print("error: real DialogSum not found (set DIALOGSUM_DIR)", file=sys.stderr)
        return 2
    rows = list(load_split(folder, "test", limit=args.n))
    refs = [r["references"] for r in rows]
    results: dict[tuple[str, str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("STUDIO_CT2_CACHE", str(Path(tmp) / "ct2"))
        for seed in args.seeds or [None]:
            if args.base_model:
                base, lora = args.base_model, args.lora_model
            else:
                base, lora = tiny_models(Path(tmp)) if seed is None else seeded_tiny_models(Path(tmp), seed)
            print(f"{len(rows)} DialogSum test dialogues, base {base}, lora {lora}, seed {seed}, "
                  f"max_new_tokens {args.max_new_tokens}, CPU, {torch.get_num_threads()} threads")
            for key, r in _one_build(base, lora, rows, refs, args):
                results.setdefault(key, []).append(r)
    if args.seeds:
        _print_ranges(results, len(rows), args.seeds)
    return 0


def _one_build(base, lora, rows, refs, args):
    """Yield ((compute, strategy, slot), parity report) for one base (and adapter), printing each."""
    import torch

    from summarizer.evaluation.evaluate import build_prompts
    from summarizer.evaluation.parity import parity_report
    from summarizer.inference.generation import GenerationSettings
    from summarizer.inference.slots import ModelSlots
    from summarizer.inference.slot_config import SlotConfig

    config = lambda: SlotConfig(base=base, lora=lora)  # noqa: E731
    torch_slots = ModelSlots(config(), device="cpu", dtype=torch.float32)
    prompts, _ = build_prompts(rows, torch_slots.tokenizer, "zero-shot", 512)
    slots = ["base", "lora"] if lora else ["base"]
    strategies = [GenerationSettings(max_new_tokens=args.max_new_tokens)]
    if args.beam:
        strategies.append(GenerationSettings(max_new_tokens=args.max_new_tokens, strategy="beam", num_beams=4))
    print(f"{'compute':8s} {'strategy':8s} {'slot':5s} {'identical':>12s}  ROUGE-1 torch  ct2   ct2-torch [95% CI]")
    for settings in strategies:
        reference = torch_slots.generate(slots, prompts, settings)
        for compute in args.compute_types:
            ct2 = ModelSlots(config(), device="cpu", backend="ct2", compute_type=compute)
            out = ct2.generate(slots, prompts, settings)
            for slot in slots:
                r = parity_report(reference[slot], out[slot], refs)
                print(f"{compute:8s} {settings.strategy:8s} {slot:5s} {r['identical']:4d}/{r['n']:<4d} "
                      f"{100 * r['share']:3.0f}%  {r['rouge1_torch']:6.2f} {r['rouge1_ct2']:6.2f}  "
                      f"{r['diff']:+6.2f} [{r['low']:+.2f}, {r['high']:+.2f}]", flush=True)
                yield (compute, settings.strategy, slot), r


def _print_ranges(results: dict, n: int, seeds) -> None:
    """A Markdown table: per row, the min-max over the seeds of the identical share and of ct2 - torch."""
    print(f"\nRange over {len(seeds)} tiny builds (seeds {', '.join(map(str, seeds))}), {n} dialogues each:")
    print("| compute | decoding | slot | identical to torch (min-max) | ct2 - torch ROUGE-1 (min-max) |")
    print("|---|---|---|---|---|")
    for (compute, strategy, slot), rs in results.items():
        share = [100 * r["share"] for r in rs]
        diff = [r["diff"] for r in rs]
        print(f"| {compute} | {strategy} | {slot} | {min(share):.0f}%-{max(share):.0f}% | "
              f"{min(diff):+.2f} to {max(diff):+.2f} |")


    return 0


if __name__ == "__main__":
    sys.exit(main())
