"""Shared fixtures: tiny offline models built from configs, and the real DialogSum when present.

Nothing here touches the network: HF_HUB_OFFLINE and friends are set before any HF import.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import hashlib
from pathlib import Path

import pytest
import torch

from summarizer.data import default_local_dataset
from tests import tiny_models

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def dialogsum_dir() -> Path:
    """The real DialogSum folder ($DIALOGSUM_DIR or ../shared/data/dialogsum); skips if absent."""
    folder = default_local_dataset()
    if folder is None:
        pytest.skip("Real DialogSum not found: set DIALOGSUM_DIR or place it in ../shared/data/dialogsum.")
    return folder


def _cached(name: str, build) -> Path:
    """``build(folder)`` once per version of tiny_models.py, kept in ``.cache/tiny-models``.

    Building the tiny models trains them for a few seconds; caching by a hash of the builder's
    source keeps repeated test runs fast and never serves a model built by older code. The folder
    is written under a temporary name and renamed, so an interrupted build is never reused.
    """
    return tiny_models.cached(name, build)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def tiny_t5() -> Path:
    """Folder of a tiny trained T5 + tokenizer (the base model stand-in)."""
    return _cached("t5", tiny_models.build_t5)


@pytest.fixture(scope="session")
def tiny_classifier() -> Path:
    """Folder of a tiny RoBERTa classifier with id2label {0: nothate, 1: hate}."""
    return _cached("toxicity", tiny_models.build_classifier)


@pytest.fixture(scope="session")
def tiny_classifier_reversed() -> Path:
    """The same kind of classifier with labels in the other order: {0: hate, 1: nothate}."""
    return _cached("toxicity_rev", lambda out: tiny_models.build_classifier(out, labels=("hate", "nothate")))


def make_adapter(base: Path, out: Path, fresh: bool = True, seed: int = 0) -> Path:
    """Save a LoRA adapter (r=4, q/v) for ``base``: fresh (B = 0, a no-op) or random (changes output)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSeq2SeqLM

    torch.manual_seed(seed)
    model = AutoModelForSeq2SeqLM.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q", "v"], task_type="SEQ_2_SEQ_LM",
                        init_lora_weights=fresh)
    peft_model = get_peft_model(model, config)
    if not fresh:  # random A and B: make the change big enough to alter greedy output
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.5)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def fresh_adapter(tiny_t5, tmp_path_factory) -> Path:
    return make_adapter(tiny_t5, tmp_path_factory.mktemp("adapters") / "fresh", fresh=True)


@pytest.fixture(scope="session")
def random_adapter(tiny_t5, tmp_path_factory) -> Path:
    return make_adapter(tiny_t5, tmp_path_factory.mktemp("adapters") / "random", fresh=False, seed=1)


@pytest.fixture
def dialogues() -> list[tuple[str, str]]:
    """Small hand-written (dialogue, summary) pairs."""
    return list(tiny_models.FALLBACK_DIALOGUES)


@pytest.fixture(scope="session")
def tiny_bart() -> Path:
    """Folder of a tiny trained BART + tokenizer (:mod:`tests.tiny_bart`): a non-T5 base.

    Cached as :func:`_cached` caches the T5; the name carries a hash of tiny_bart.py, and the
    folder above it the hash of tiny_models.py, whose tokenizer and pairs the BART is built from.
    """
    from tests import tiny_bart as builder

    digest = hashlib.sha256(Path(builder.__file__).read_bytes()).hexdigest()[:12]
    return _cached(f"bart-{digest}", builder.build_bart)
