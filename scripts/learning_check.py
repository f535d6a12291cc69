"""Learning check (not a test): does ``python -m training.full`` teach a model from scratch?

    python scripts/learning_check.py --max_steps 1500 --out learning-check

Builds a small T5 (the tests' tiny architecture, a bit wider) with a Unigram tokenizer trained
on DialogSum train text but **untrained, randomly initialised weights**; prints validation
ROUGE-1 on ``--n_eval`` DialogSum validation dialogues before training, trains it with
``python -m training.full`` (a child process, exactly as the Train tab runs it), and prints
ROUGE-1 again. About 10 minutes on 2 CPU cores with the defaults. Offline: nothing is downloaded.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import (AutoModelForSeq2SeqLM, AutoTokenizer, T5Config, T5ForConditionalGeneration)  # noqa: E402

from summarizer.data import default_local_dataset, load_split
from summarizer.inference.generation import GenerationSettings, generate_texts
from summarizer.prompts import zero_shot
from summarizer.evaluation.rouge import score_corpus
from tests.tiny_models import train_tokenizer  # noqa: E402


def build_untrained(out: Path, dataset: Path, vocab: int) -> Path:
    """A random-init T5 (d_model 128, 2+2 layers) and a tokenizer trained on DialogSum train."""
    torch.manual_seed(0)
    rows = load_split(dataset, "train", limit=3000)
    tok = train_tokenizer([t for r in rows for t in (r["dialogue"], r["references"][0])], vocab_size=vocab)
    config = T5Config(vocab_size=len(tok), d_model=128, d_kv=32, d_ff=256, num_layers=2, num_decoder_layers=2,
                      num_heads=4, feed_forward_proj="gated-gelu", pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id,
                      tie_word_embeddings=False)
    T5ForConditionalGeneration(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def rouge1(model_dir: Path, rows) -> float:
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    preds = generate_texts(model, tok, [zero_shot(d) for d in rows["dialogue"]],
                           GenerationSettings(max_new_tokens=48), batch_size=16, max_input_tokens=256)
    print("  e.g.:", repr(preds[0][:120]))
    return score_corpus(preds, rows["references"])["rouge1"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("learning-check"), help="work folder (default: %(default)s)")
    p.add_argument("--dataset", type=Path, default=default_local_dataset(), help="local DialogSum folder")
    p.add_argument("--max_steps", type=int, default=1400, help="training steps; 1400 take about 8 minutes on 2 CPU cores (default: %(default)s)")
    p.add_argument("--batch_size", type=int, default=16, help="(default: %(default)s)")
    p.add_argument("--learning_rate", type=float, default=1e-3,
                   help="from-scratch rate, not the lab's fine-tuning 1e-5 (default: %(default)s)")
    p.add_argument("--n_eval", type=int, default=50, help="validation dialogues scored (default: %(default)s)")
    args = p.parse_args()
    if args.dataset is None:
        p.error("no local DialogSum: pass --dataset or set DIALOGSUM_DIR")
    model_dir = build_untrained(args.out / "untrained", args.dataset, vocab=2000)
    val = load_split(args.dataset, "validation", limit=args.n_eval)
    before = rouge1(model_dir, val)
    print(f"validation ROUGE-1 before training (random init): {before:.2f}", flush=True)
    run_dir = args.out / f"run-{int(time.time())}"
    cmd = [sys.executable, "-m", "training.full", "--base_model", str(model_dir), "--dataset", str(args.dataset),
           "--train_size", "12460", "--val_size", "50", "--eval_steps", "250", "--max_steps", str(args.max_steps),
           "--batch_size", str(args.batch_size), "--learning_rate", str(args.learning_rate),
           "--max_source_tokens", "256", "--max_target_tokens", "64", "--run_dir", str(run_dir)]
    print("running:", " ".join(cmd), flush=True)
    started = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"trained {args.max_steps} steps in {(time.time() - started) / 60:.1f} min; log in {run_dir}/train.log")
    after = rouge1(run_dir / "model", val)
    print(f"validation ROUGE-1 after training: {after:.2f} (before: {before:.2f})")


if __name__ == "__main__":
    main()
