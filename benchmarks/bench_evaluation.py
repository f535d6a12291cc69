"""Benchmark: the evaluation's batched generation vs the course labs' one-dialogue-at-a-time loop.

Run ``python benchmarks/bench_evaluation.py`` (``--help`` for options). Offline: the model is
FLAN-T5-small-shaped (d_model 512, 8+8 layers, 6 heads, d_ff 1024, gated-GELU) with **random
weights** built from a ``T5Config``, a Unigram tokenizer trained here on DialogSum train text,
and a LoRA adapter (r=32 on q and v, as in the labs) with random weights. Nothing is downloaded.
The output layer's pad and EOS rows are zeroed so that greedy summaries are real (repetitive)
tokens that depend on the input and the adapter, each ``--max-new-tokens`` long.

Both sides get the same prompts (the zero-shot template, fitted to 512 tokens) of the first
``--n`` DialogSum test dialogues and the same greedy settings:

* labs: for each dialogue, for each model (the base model, and a ``PeftModel`` on its own copy of
  the base as in the labs): tokenize one prompt, ``model.generate``, decode;
* batched: :func:`summarizer.evaluation.generate_summaries`: prompts sorted by length, batches of
  ``--batch-size`` per model, base and adapter rows in one mixed batch on one shared base,
  ``torch.inference_mode``.

It prints the settings, both wall times, the speed ratio, and whether every summary is identical.

CTranslate2 (``--ct2-compute-type``, default int8; ``none`` skips it): the same batched evaluation
with ``ModelSlots(backend="ct2")`` (the adapter merged into its own converted copy of the base),
timed in the same process, interleaved with the torch batched run over ``--repeats`` rounds
(fastest round reported; conversion is done before timing). It prints ct2 / torch batched
throughput (target >= 2) and the share of summaries identical to torch's. ``--skip-labs`` skips
the slow one-at-a-time loop.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration  # noqa: E402

from summarizer.data import default_local_dataset, load_split
from summarizer.evaluation.evaluate import build_prompts, generate_summaries
from summarizer.inference.generation import GenerationSettings
from summarizer.inference.slots import ModelSlots
from summarizer.inference.slot_config import SlotConfig
from tests.tiny_models import FALLBACK_DIALOGUES, train_tokenizer  # noqa: E402


def build_models(out: Path, vocab_size: int, seed: int = 0) -> tuple[Path, Path]:
    """Write a random FLAN-T5-small-shaped model + tokenizer and a random LoRA adapter."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    folder = default_local_dataset()
    texts = ([t for r in load_split(folder, "train", limit=2000) for t in (r["dialogue"], r["references"][0])]
             if folder else [t for p in FALLBACK_DIALOGUES for t in p])
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    # google/flan-t5-small's config.json, with this tokenizer's vocabulary.
    config = T5Config(vocab_size=len(tokenizer), d_model=512, d_kv=64, d_ff=1024, num_layers=8,
                      num_decoder_layers=8, num_heads=6, feed_forward_proj="gated-gelu",
                      relative_attention_num_buckets=32, relative_attention_max_distance=128,
                      tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id)
    model = T5ForConditionalGeneration(config).eval()
    # A random T5 greedily emits padding (id 0) forever, which decodes to "" on both sides and makes
    # the identity check empty. Zeroing the pad and EOS rows of the output layer makes greedy pick
    # real tokens that depend on the input and the adapter, and every summary runs the full
    # max_new_tokens steps: the same amount of work for both sides.
    with torch.no_grad():
        model.lm_head.weight[[tokenizer.pad_token_id, tokenizer.eos_token_id]] = 0.0
    base, adapter = out / "flan-t5-small-random", out / "lora-random"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    lora = get_peft_model(model, LoraConfig(r=32, lora_alpha=32, lora_dropout=0.05, target_modules=["q", "v"],
                                            task_type="SEQ_2_SEQ_LM", init_lora_weights=False))
    lora.save_pretrained(adapter)
    return base, adapter


def labs_loop(base: Path, adapter: Path, prompts: list[str], settings: GenerationSettings,
              device: str) -> tuple[dict[str, list[str]], float]:
    """The labs' loop: per dialogue, per model, tokenize one prompt, generate, decode."""
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    original = AutoModelForSeq2SeqLM.from_pretrained(base).to(device).eval()
    peft_model = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(base),
                                           adapter).to(device).eval()
    config = GenerationConfig(max_new_tokens=settings.max_new_tokens, num_beams=1, do_sample=False)
    out: dict[str, list[str]] = {"base": [], "lora": []}
    start = time.perf_counter()
    for prompt in prompts:
        input_ids = tokenizer(prompt, return_tensors="pt").input_ids.to(device)
        for name, model in (("base", original), ("lora", peft_model)):
            ids = model.generate(input_ids=input_ids, generation_config=config)
            out[name].append(tokenizer.decode(ids[0], skip_special_tokens=True).strip())
    return out, time.perf_counter() - start


def batched(base: Path, adapter: Path, prompts: list[str], settings: GenerationSettings,
            device: str, batch_size: int, slots: ModelSlots | None = None) -> tuple[dict[str, list[str]], float]:
    if slots is None:
        slots = ModelSlots(SlotConfig(base=str(base), lora=str(adapter)), device=device, dtype=torch.float32)
    slots.load(["base", "lora"])
    start = time.perf_counter()
    out, _ = generate_summaries(slots, ["base", "lora"], prompts, settings, batch_size=batch_size)
    return out, time.perf_counter() - start


def ct2_versus_torch(base, adapter, prompts, settings, device, batch_size, compute_type, repeats):
    """(torch outputs, torch seconds, ct2 outputs, ct2 seconds): fastest of ``repeats`` interleaved rounds."""
    cfg = lambda: SlotConfig(base=str(base), lora=str(adapter))  # noqa: E731
    torch_slots = ModelSlots(cfg(), device=device, dtype=torch.float32)
    ct2_slots = ModelSlots(cfg(), device=device, backend="ct2", compute_type=compute_type)
    ct2_slots.load(["base", "lora"])  # conversion, not timed
    times = {"torch": [], "ct2": []}
    for _ in range(repeats):
        t_out, t = batched(base, adapter, prompts, settings, device, batch_size, torch_slots)
        times["torch"].append(t)
        c_out, t = batched(base, adapter, prompts, settings, device, batch_size, ct2_slots)
        times["ct2"].append(t)
    return t_out, min(times["torch"]), c_out, min(times["ct2"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=16, help="DialogSum test dialogues (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=100, help="(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=16, help="prompts per batch per model (default: %(default)s)")
    p.add_argument("--vocab-size", type=int, default=4000, help="tokenizer vocabulary (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="(default: %(default)s)")
    p.add_argument("--ct2-compute-type", default="int8", help="ct2 compute type, or none (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=2, help="interleaved torch/ct2 rounds (default: %(default)s)")
    p.add_argument("--skip-labs", action="store_true", help="skip the one-at-a-time labs loop")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, strategy="greedy")
    folder = default_local_dataset()
    rows = (list(load_split(folder, "test", limit=args.n)) if folder
            else [{"dialogue": d} for d, _ in FALLBACK_DIALOGUES])
    with tempfile.TemporaryDirectory() as tmp:
        base, adapter = build_models(Path(tmp), args.vocab_size)
        from transformers import AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained(base)
        prompts, _ = build_prompts(rows, tokenizer, "zero-shot", 512)
        n_tokens = [len(tokenizer(t).input_ids) for t in prompts]
        print(f"model: FLAN-T5-small-shaped T5 (d_model 512, 8+8 layers, 6 heads, d_ff 1024), random "
              f"weights, vocab {len(tokenizer)}; LoRA r=32 on q,v (random); fp32 on {args.device}, "
              f"{torch.get_num_threads()} threads")
        print(f"data: {len(prompts)} DialogSum test dialogues, zero-shot prompts of "
              f"{min(n_tokens)}..{max(n_tokens)} tokens (mean {sum(n_tokens) / len(n_tokens):.0f})")
        print(f"generation: greedy, max_new_tokens={args.max_new_tokens}; 2 models (base, lora); "
              f"batched side: batch_size={args.batch_size} per model, length-sorted, mixed base+adapter batches")
        os.environ["STUDIO_CT2_CACHE"] = str(Path(tmp) / "ct2")
        if args.ct2_compute_type != "none":
            fast, t_fast, c_out, t_ct2 = ct2_versus_torch(base, adapter, prompts, settings, args.device,
                                                          args.batch_size, args.ct2_compute_type, args.repeats)
            n = 2 * len(prompts)
            print(f"torch batched: {t_fast:8.2f} s  ({t_fast / n:.3f} s/summary)")
            print(f"ct2 {args.ct2_compute_type} batched: {t_ct2:8.2f} s  ({t_ct2 / n:.3f} s/summary)")
            print(f"throughput ct2 / torch batched: {t_fast / t_ct2:.2f}x  (target >= 2)")
            for m in ("base", "lora"):
                same = sum(a == b for a, b in zip(fast[m], c_out[m]))
                print(f"ct2 identical to torch, {m}: {same}/{len(prompts)}")
        if args.skip_labs:
            return 0
        fast, t_fast = batched(base, adapter, prompts, settings, args.device, args.batch_size)
        slow, t_slow = labs_loop(base, adapter, prompts, settings, args.device)
    n = 2 * len(prompts)
    print(f"labs loop : {t_slow:8.2f} s  ({t_slow / n:.3f} s/summary)")
    print(f"batched   : {t_fast:8.2f} s  ({t_fast / n:.3f} s/summary)")
    print(f"speed-up  : {t_slow / t_fast:.2f}x")
    same = {m: sum(a == b for a, b in zip(fast[m], slow[m])) for m in ("base", "lora")}
    print(f"identical summaries: base {same['base']}/{len(prompts)}, lora {same['lora']}/{len(prompts)}")
    print(f"lora differs from base in {sum(a != b for a, b in zip(slow['base'], slow['lora']))}/{len(prompts)} dialogues")
    for m in ("base", "lora"):
        for i, (a, b) in enumerate(zip(fast[m], slow[m])):
            if a != b:
                print(f"  {m} dialogue {i}: batched {a[:80]!r}\n  {' ' * len(m)}             labs    {b[:80]!r}")
    return 0 if all(v == len(prompts) for v in same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
