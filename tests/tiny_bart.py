"""Build a tiny, offline BART: the second seq2seq architecture the app claims to support.

Run ``python -m tests.tiny_bart --out tiny-models/bart`` to write a folder the app accepts as
``--base-model``. The tests build the same model in the ``tiny_bart`` fixture (cached by a hash
of this file). Nothing is downloaded.

Built as :mod:`tests.tiny_models` builds the tiny T5 (its tokenizer trainer and DialogSum pairs
are reused): ``facebook/bart-base``'s architecture shrunk to d_model 64, 2 encoder and 2 decoder
layers, 4 heads, feed-forward 128, then trained for 100 steps on dialogue→summary pairs,
because a randomly initialised BART emits only repeated tokens. Its summaries are near-nonsense;
it exists to take a non-T5 base (LoRA targets ``q_proj``/``v_proj``) through the app.

Recipe, from trials on this model: with tied input/output embeddings (bart-base's default) or
a learning rate of 3e-3, 100 steps leave the loss at the unigram plateau (about 5.5) and greedy
output is one repeated piece ("sss..."), which no small adapter changes; untied embeddings at
1e-2 without dropout reach about 4.3 and write varied words ("#Person2# tells ...").
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Sequence

import torch
from transformers import BartConfig, BartForConditionalGeneration

from tests.tiny_models import corpus_pairs, train_and_save, train_tokenizer



def bart_config(tokenizer) -> BartConfig:
    """``BartConfig`` shrunk: d_model 64, 2+2 layers, 4 heads, ffn 128, the tokenizer's ids,
    untied embeddings and no dropout (see the recipe in the module docstring).

    BART starts decoding from ``decoder_start_token_id`` (``</s>`` in facebook/bart-base); our
    tokenizer has no ``<s>``, so ``</s>`` doubles as bos, as in T5-style vocabularies.
    """
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    return BartConfig(vocab_size=len(tokenizer), d_model=64, encoder_layers=2, decoder_layers=2,
                      encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                      decoder_ffn_dim=128, max_position_embeddings=520, pad_token_id=pad,
                      eos_token_id=eos, bos_token_id=eos, decoder_start_token_id=eos,
                      forced_eos_token_id=eos, tie_word_embeddings=False, dropout=0.0)


def build_bart(out: Path, pairs: Sequence[tuple[str, str]] | None = None, steps: int = 100,
               seed: int = 0, say: Callable[[str], None] | None = None) -> Path:
    """Write a tiny trained BART and its tokenizer to ``out``; returns ``out``.

    ``say`` (e.g. ``print``) receives progress lines; None keeps quiet.
    """
    torch.manual_seed(seed)
    pairs = list(pairs or corpus_pairs())
    tokenizer = train_tokenizer([t for p in pairs for t in p])
    model = BartForConditionalGeneration(bart_config(tokenizer))
    train_and_save(model, tokenizer, pairs, out, steps=steps, seed=seed, lr=1e-2, max_length=128,
                   what="tiny BART", say=say)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("tiny-models/bart"),
                        help="folder to write the model into (default: %(default)s)")
    args = parser.parse_args(argv)
    print(f"BART: {build_bart(args.out, say=lambda s: print(s, flush=True))}")


if __name__ == "__main__":
    main()
