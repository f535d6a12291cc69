"""Benchmark few-shot prompt fitting: tokenizer calls and time against the number of examples.

Usage: ``python benchmarks/bench_prompt_fitting.py [--tokenizer FOLDER] [--dataset FOLDER]``

Builds a few-shot prompt for DialogSum test #0 with the first N train dialogues as examples and a
512-token limit (issue 8 finding 1: the old algorithm dropped one example at a time and
re-tokenized the whole prompt each time, 100 numbers 4.7 s, 400 -> 74 s in the app). Prints, per
N, the tokenizer calls and seconds of ``build_prompt``, and the ratio of seconds at the largest N
to seconds at N = 10 (linear work gives about the ratio of the inputs' lengths, not its square).
The app caps example numbers at 10; the larger N here show the algorithm's scaling.
Defaults: the tiny test tokenizer from ``$STUDIO_TEST_CACHE`` and the dataset found by
``summarizer.data.default_local_dataset``.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class CountingTokenizer:
    """Counts calls to the wrapped tokenizer."""

    def __init__(self, tokenizer):
        self.tokenizer, self.calls = tokenizer, 0

    def __call__(self, text, **kwargs):
        self.calls += 1
        return self.tokenizer(text, **kwargs)


def main(argv=None) -> None:
    from transformers import AutoTokenizer

    from summarizer.data import default_local_dataset, load_split
    from summarizer.prompts import Example, build_prompt

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the tiny test T5)")
    p.add_argument("--dataset", default=None, help="DialogSum folder (default: found automatically)")
    p.add_argument("--sizes", default="10,100,400,2000", help="numbers of examples (default: %(default)s)")
    args = p.parse_args(argv)
    folder = args.tokenizer or glob.glob(os.path.join(os.environ.get("STUDIO_TEST_CACHE", ".cache/tiny-models"), "*", "t5"))[0]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    dataset = str(args.dataset or default_local_dataset())
    train, test = load_split(dataset, "train"), load_split(dataset, "test")
    dialogues, references = list(train["dialogue"]), list(train["references"])
    target = test[0]["dialogue"]
    seconds = {}
    for n in map(int, args.sizes.split(",")):
        examples = [Example(dialogues[i], references[i][0]) for i in range(n)]
        counting = CountingTokenizer(tokenizer)
        start = time.perf_counter()
        prompt = build_prompt("few-shot", target, examples, tokenizer=counting, max_tokens=512)
        seconds[n] = time.perf_counter() - start
        print(f"{n:5d} examples: {counting.calls:3d} tokenizer calls, {seconds[n]:.3f} s, "
              f"{prompt.shots_used} kept, {prompt.n_tokens} tokens")
    small, large = min(seconds), max(seconds)
    print(f"time ratio {large}/{small} examples: {seconds[large] / seconds[small]:.1f} "
          f"(input ratio {large / small:.0f}; the old algorithm's grew with its square)")


if __name__ == "__main__":
    main()
