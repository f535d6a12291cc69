"""Build tiny, offline stand-ins for FLAN-T5 and the RoBERTa hate-speech classifier.

Run ``python -m tests.tiny_models --out tiny-models`` to write ``t5/`` and ``toxicity/`` folders
that the app accepts (``python app.py --base-model tiny-models/t5 --toxicity-model
tiny-models/toxicity``). The tests build the same models in fixtures. Nothing is downloaded.
It takes one to a few minutes on a laptop CPU (the T5 and the classifier are trained briefly);
progress is printed as it goes.

The tiny models only stand in for the real ones so that the app and the tests run offline: the
T5 writes near-nonsense summaries, and the tiny classifier's scores are **meaningless** (it learnt
six "hate" words from a few sentences and rates most real text as hate, e.g. "You are a
wonderful teacher" gets P(hate) near 1). Use the real models for any conclusion about toxicity.

* T5: the flan-t5 architecture shrunk (d_model 64, 2 layers), a Unigram tokenizer trained on
  DialogSum text with the ``tokenizers`` library, then trained for a few dozen steps on
  dialogue→summary pairs: a randomly initialised T5 emits only padding until trained a little.
* Classifier: a 2-layer RoBERTa with labels ``nothate``/``hate`` (or reversed, to test that the
  reward is taken by label name), trained briefly so that texts with words from a small "hate"
  list score as hate. This gives PPO tests a reward the tiny classifier really gives.
"""
from __future__ import annotations

import argparse
import random
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (PreTrainedTokenizerFast, RobertaConfig, RobertaForSequenceClassification,
                          T5Config, T5ForConditionalGeneration)

FALLBACK_DIALOGUES = [
    ("#Person1#: Hi, I'd like to book a table for two tonight.\n#Person2#: Sure, what time?\n"
     "#Person1#: Seven o'clock, please.", "#Person1# books a table for two at seven tonight."),
    ("#Person1#: Did you finish the report?\n#Person2#: Not yet, I need one more day.\n"
     "#Person1#: Fine, send it tomorrow.", "#Person2# will send the report tomorrow."),
    ("#Person1#: How much is this coat?\n#Person2#: It's 50 dollars.\n#Person1#: I'll take it.",
     "#Person1# buys a coat for 50 dollars."),
    ("#Person1#: Where is the station?\n#Person2#: Go straight and turn left at the bank.",
     "#Person2# tells #Person1# the way to the station."),
]
# Words the tiny classifier learns to call hateful (a stand-in for real slurs).
HATE_WORDS = ["hate", "stupid", "idiot", "disgusting", "vermin", "scum"]
SPECIALS = ["<pad>", "</s>", "<unk>"]


def corpus_pairs(limit: int = 400) -> list[tuple[str, str]]:
    """(dialogue, summary) pairs from real DialogSum train if present, else built-in ones."""
    from summarizer.data import default_local_dataset, load_split

    folder = default_local_dataset()
    if folder is None:
        return FALLBACK_DIALOGUES * 10
    rows = load_split(folder, "train", limit=limit)
    return [(r["dialogue"], r["references"][0]) for r in rows]


def train_tokenizer(texts: Sequence[str], vocab_size: int = 1000) -> PreTrainedTokenizerFast:
    """A T5-like Unigram tokenizer (``</s>`` appended) trained on ``texts``."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(texts, trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=512)


def _report(say: Callable[[str], None] | None, step: int, steps: int, what: str) -> None:
    """Call ``say`` about every tenth of ``steps`` (and at the last step)."""
    if say and (step + 1 == steps or (step + 1) % max(1, steps // 10) == 0):
        say(f"{what}: step {step + 1}/{steps}")


def build_t5(out: Path, pairs: Sequence[tuple[str, str]] | None = None, steps: int = 120,
             seed: int = 0, say: Callable[[str], None] | None = None) -> Path:
    """Write a tiny trained T5 and its tokenizer to ``out``; returns ``out``.

    ``say`` (e.g. ``print``) receives progress lines; None keeps quiet.
    """
    torch.manual_seed(seed)
    pairs = list(pairs or corpus_pairs())
    tokenizer = train_tokenizer([t for p in pairs for t in p])
    config = T5Config(vocab_size=len(tokenizer), d_model=64, d_kv=16, d_ff=128, num_layers=2,
                      num_decoder_layers=2, num_heads=4, feed_forward_proj="gated-gelu",
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    model = T5ForConditionalGeneration(config)
    train_and_save(model, tokenizer, pairs, out, steps=steps, seed=seed, lr=3e-3, max_length=256,
                   what="tiny T5", say=say)
    return out


def train_and_save(model, tokenizer, pairs: Sequence[tuple[str, str]], out: Path, steps: int, seed: int,
                   lr: float, max_length: int, what: str, say: Callable[[str], None] | None = None) -> None:
    """Train a seq2seq ``model`` for ``steps`` AdamW steps on batches of 8 (zero-shot prompt ->
    summary) and save it with its tokenizer to ``out`` (safetensors)."""
    optim = torch.optim.AdamW(model.parameters(), lr=lr)
    rng = random.Random(seed)
    model.train()
    for step in range(steps):
        batch = rng.sample(pairs, min(8, len(pairs)))
        enc = tokenizer(["Summarize the following conversation.\n\n" + d + "\n\nSummary: " for d, _ in batch],
                        return_tensors="pt", padding=True, truncation=True, max_length=max_length)
        labels = tokenizer([s for _, s in batch], return_tensors="pt", padding=True).input_ids
        labels[labels == tokenizer.pad_token_id] = -100  # (B, T_out): padding ignored by the loss
        loss = model(**enc, labels=labels).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
        _report(say, step, steps, what)
    model.eval()
    model.generation_config.max_new_tokens = 32
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def build_classifier(out: Path, labels: Sequence[str] = ("nothate", "hate"), steps: int = 60,
                     seed: int = 0, say: Callable[[str], None] | None = None) -> Path:
    """Write a tiny RoBERTa classifier whose class ``i`` is ``labels[i]``; returns ``out``.

    Trained so that sentences containing :data:`HATE_WORDS` score as ``hate``.
    """
    torch.manual_seed(seed)
    rng = random.Random(seed)
    neutral = [s for d, s in FALLBACK_DIALOGUES] + [d for d, _ in FALLBACK_DIALOGUES]
    hateful = [f"{s} You are {w}." for s in neutral for w in HATE_WORDS]
    tokenizer = train_tokenizer(neutral + hateful + HATE_WORDS, vocab_size=300)
    tokenizer.post_processor = None
    config = RobertaConfig(vocab_size=len(tokenizer) + 2, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=64, max_position_embeddings=520,
                           pad_token_id=tokenizer.pad_token_id, type_vocab_size=1,
                           id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    model = RobertaForSequenceClassification(config)
    hate_id = list(labels).index("hate") if "hate" in labels else 1
    data = [(t, 1 - hate_id) for t in neutral] + [(t, hate_id) for t in hateful]
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        batch = rng.sample(data, 16)
        enc = tokenizer([t for t, _ in batch], return_tensors="pt", padding=True)
        loss = model(**enc, labels=torch.tensor([y for _, y in batch])).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
        _report(say, step, steps, "tiny classifier")
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def cached(name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder)`` once per version of this file (and of the DialogSum it trains on), kept in
    ``.cache/tiny-models/<digest>/<name>`` (or ``$STUDIO_TEST_CACHE``); the tests' fixtures and
    :func:`main` share it, so the models are built once per machine.

    The folder is written under a temporary name and renamed, so an interrupted build is never
    reused; a cache made by older code has another digest and is never served.
    """
    import hashlib
    import os
    import shutil
    import tempfile

    from summarizer.data import default_local_dataset

    dataset = default_local_dataset()  # the T5 tokenizer is trained on it: part of the key (its real path)
    key = Path(__file__).read_bytes() + str(os.path.realpath(dataset) if dataset else None).encode()
    digest = hashlib.sha256(key).hexdigest()[:12]
    root = Path(os.environ.get("STUDIO_TEST_CACHE", Path(__file__).resolve().parents[1] / ".cache" / "tiny-models"))
    folder = root / digest / name
    if not folder.is_dir():
        (root / digest).mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=root / digest))
        build(tmp / name)
        try:
            (tmp / name).rename(folder)
        except OSError:  # another process finished the same build first
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("tiny-models"),
                        help="folder to write t5/ and toxicity/ into (default: tiny-models)")
    args = parser.parse_args(argv)
    say = partial(print, flush=True)
    say("Building the tiny offline models (one to a few minutes on a CPU). Their summaries are "
        "near-nonsense and the tiny classifier's toxicity scores are meaningless.")
    import shutil

    for name, build in (("t5", partial(build_t5, say=say)), ("toxicity", partial(build_classifier, say=say))):
        say(f"{name}: building (T5: a tokenizer trained on DialogSum text, then the model)..." if name == "t5"
            else f"{name}: building...")
        folder = cached(name, build)  # built once per machine; a second run copies it
        shutil.copytree(folder, args.out / name, dirs_exist_ok=True)
        say(f"{name}: {args.out / name}")


if __name__ == "__main__":
    main()
