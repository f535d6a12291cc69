"""Hate-speech reward: the ``nothate`` logit of a RoBERTa classifier, as in the course's PPO lab.

Default classifier: ``facebook/roberta-hate-speech-dynabench-r4-target`` (Vidgen et al., 2021,
"Learning from the Worst", trained on DynaHate rounds 1-4), whose ``config.id2label`` is
``{0: "nothate", 1: "hate"}``. Classes are always found **by label name** in ``id2label``, never
by position: the lab read the pipeline's score-sorted list by index and so sometimes rewarded the
hate class.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from summarizer.inference.devices import pick_device
from summarizer.inference.model_sources import hub_kwargs, offline_problem
from summarizer.preflight import explain_load_error
from summarizer.tokenizer_lock import tokenizer_lock

DEFAULT_TOXICITY_MODEL = "facebook/roberta-hate-speech-dynabench-r4-target"
NOT_HATE, HATE = "nothate", "hate"


@dataclass(frozen=True)
class ToxicityScore:
    """Score of one text.

    Attributes:
        reward: the ``nothate`` logit (unbounded real; higher is less hateful). This is the PPO reward.
        p_hate: softmax probability of the ``hate`` class, in [0, 1].
        n_tokens: length of the whole text in the classifier's tokens, special tokens included
            (0 when unknown, e.g. a score made by hand).
        tokens_read: how many of them the classifier read: at most its ``max_length`` (512),
            so ``tokens_read < n_tokens`` means the end of the text was not scored.
    """

    reward: float
    p_hate: float
    n_tokens: int = 0
    tokens_read: int = 0

    @property
    def truncated(self) -> bool:
        """True when the classifier read only the first ``tokens_read`` of ``n_tokens`` tokens."""
        return self.tokens_read < self.n_tokens


def label_index(id2label: dict, name: str) -> int:
    """Index of the class called ``name`` (case-insensitive) in ``id2label``.

    Raises:
        ValueError: no class has that name; the message lists the classifier's labels.
    """
    for idx, label in id2label.items():
        if str(label).strip().lower() == name:
            return int(idx)
    raise ValueError(f"The toxicity classifier has no {name!r} label (its labels: "
                     f"{sorted(map(str, id2label.values()))}); use a classifier with "
                     f"'{NOT_HATE}' and '{HATE}' classes such as {DEFAULT_TOXICITY_MODEL}.")


class ToxicityScorer:
    """Lazily loaded, thread-safe hate-speech scorer.

    Args:
        model: hub id or local folder of a sequence classifier with ``nothate`` and ``hate`` labels.
        device: torch device name; default from :func:`summarizer.inference.devices.pick_device`.
        max_length: texts are truncated to this many tokens (RoBERTa's limit is 512).
    """

    def __init__(self, model: str = DEFAULT_TOXICITY_MODEL, device: str | None = None,
                 max_length: int = 512):
        self.model_name = str(model)
        self.device = pick_device(device)
        self.max_length = max_length
        self._lock = threading.Lock()
        self._model = self._tokenizer = None
        self._idx: tuple[int, int] | None = None

    def load(self) -> None:
        """Load the classifier now (otherwise on first :meth:`score`).

        Raises:
            OSError: the model cannot be found or read.
            ValueError: the classifier lacks a ``nothate`` or ``hate`` label.
        """
        with self._lock:
            if self._model is not None:
                return
            problem = offline_problem(self.model_name, "toxicity model", "--toxicity-model")
            if problem:  # offline and not in the cache: said now, not after a minute of hub retries
                raise OSError(problem)
            try:
                model = AutoModelForSequenceClassification.from_pretrained(self.model_name, **hub_kwargs())
                tokenizer = AutoTokenizer.from_pretrained(self.model_name, **hub_kwargs())
            except OSError as err:
                raise OSError(explain_load_error("toxicity model", self.model_name, err, "--toxicity-model")) from err
            idx = (label_index(model.config.id2label, NOT_HATE), label_index(model.config.id2label, HATE))
            self._tokenizer = tokenizer
            self._model, self._idx = model.to(self.device).eval(), idx

    @torch.inference_mode()
    def score(self, texts: Sequence[str], batch_size: int = 32) -> list[ToxicityScore]:
        """Score each text; returns one :class:`ToxicityScore` per text, in order.

        Empty texts are scored as they are (the classifier sees only special tokens). Texts longer
        than ``max_length`` tokens are scored on their first ``max_length`` tokens; each score
        says how many tokens the text has and how many were read.
        """
        self.load()
        out: list[ToxicityScore] = []
        nothate, hate = self._idx
        for i in range(0, len(texts), batch_size):
            chunk = list(texts[i:i + batch_size])
            with tokenizer_lock(self._tokenizer):
                lengths = [len(ids) for ids in self._tokenizer(chunk, truncation=False)["input_ids"]]
                batch = self._tokenizer(chunk, padding=True, truncation=True,
                                        max_length=self.max_length, return_tensors="pt").to(self.device)
            logits = self._model(**batch).logits.float()  # (B, num_labels)
            probs = logits.softmax(-1)
            out += [ToxicityScore(float(l[nothate]), float(p[hate]), n, min(n, self.max_length))
                    for l, p, n in zip(logits, probs, lengths)]
        return out

    def rewards(self, texts: Sequence[str]) -> torch.Tensor:
        """The PPO reward of each text: a float32 tensor of shape (N,) of ``nothate`` logits."""
        return torch.tensor([s.reward for s in self.score(texts)], dtype=torch.float32)
