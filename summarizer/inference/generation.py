"""Batched generation from user-facing settings.

:class:`GenerationSettings` is what the UI, the evaluation CLI and the tests fill in; it validates
its ranges and turns into a ``transformers.GenerationConfig``. :func:`generate_texts` runs a
list of prompts in length-sorted batches under ``torch.inference_mode`` and returns the texts in
the input order.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
from transformers import GenerationConfig
from transformers.generation.streamers import BaseStreamer

from summarizer.limits import DEFAULT_MAX_INPUT_TOKENS
from summarizer.text import as_number
from summarizer.text import excerpt as _short
from summarizer.tokenizer_lock import tokenizer_lock

STRATEGIES = ("greedy", "sampling", "beam")


@dataclass
class GenerationSettings:
    """Decoding controls.

    Attributes:
        max_new_tokens: upper bound on summary length in tokens (1..512).
        min_new_tokens: lower bound in tokens (0..max_new_tokens); equal bounds give fixed-length
            outputs, which the benchmarks use.
        strategy: ``greedy``, ``sampling`` (temperature/top-k/top-p) or ``beam`` (num_beams).
        temperature: sampling temperature (0 < t <= 5); ignored unless sampling.
        top_k: keep the k most likely tokens when sampling (0 = no limit, up to 1000).
        top_p: nucleus sampling mass (0 < p <= 1).
        num_beams: beams for beam search (2..16).
        seed: random seed for sampling, so the same request gives the same summary.
    """

    max_new_tokens: int = 200
    min_new_tokens: int = 0
    strategy: str = "greedy"
    temperature: float = 0.7
    top_k: int = 50
    top_p: float = 1.0
    num_beams: int = 4
    seed: int = 42

    def validate(self) -> "GenerationSettings":
        """Return ``self`` if every field is in range.

        Raises:
            ValueError: naming the field, its value and the allowed range.
        """
        checks = [
            (self.strategy in STRATEGIES, f"strategy must be one of {', '.join(STRATEGIES)}, got {_short(self.strategy)}"),
            (1 <= self.max_new_tokens <= 512, f"max new tokens must be 1..512, got {_short(self.max_new_tokens)}"),
            (0 <= self.min_new_tokens <= self.max_new_tokens,
             f"min new tokens must be 0..max new tokens ({_short(self.max_new_tokens)}), got {_short(self.min_new_tokens)}"),
            (0 < self.temperature <= 5, f"temperature must be in (0, 5], got {_short(self.temperature)}"),
            (0 <= self.top_k <= 1000, f"top-k must be 0..1000, got {_short(self.top_k)}"),
            (0 < self.top_p <= 1, f"top-p must be in (0, 1], got {_short(self.top_p)}"),
            (self.strategy != "beam" or 2 <= self.num_beams <= 16, f"beams must be 2..16, got {_short(self.num_beams)}"),
            (0 <= self.seed < 2**32, f"seed must be 0..2^32-1, got {_short(self.seed)}"),
        ]
        errors = [msg for ok, msg in checks if not ok]
        if errors:
            raise ValueError("Invalid generation settings: " + "; ".join(errors) + ".")
        return self

    @classmethod
    def from_dict(cls, values: dict) -> "GenerationSettings":
        """Build from a dict (e.g. JSON) and validate. Missing keys keep their defaults.

        Whole-number fields accept ints, whole floats (JSON and gr.Number send floats) and
        plain decimal text such as ``"12"``; real fields accept finite numbers and plain decimal
        text (:func:`summarizer.text.as_number`, the app's one rule); ``strategy`` must be text.
        Nothing else is coerced: ``"eight"``, ``"1_0"``, ``"1e3"``, ``[8]``, ``true``, NaN,
        infinity and fractions for whole-number settings are refused.

        Raises:
            ValueError: not a dict, unknown keys, wrong types or out-of-range values; the message
                names each setting, its type and its allowed range.
        """
        if not isinstance(values, dict):
            raise ValueError(f"Generation settings must be a JSON object of setting: value, got a "
                             f"{type(values).__name__}.")
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"Unknown generation settings: {', '.join(sorted(map(str, unknown)))[:200]}; "
                             f"known: {', '.join(cls.__dataclass_fields__)}.")
        fields, errors = {}, []
        for key, value in values.items():
            try:
                fields[key] = _coerce(key, value)
            except ValueError as err:
                errors.append(str(err))
        if errors:
            raise ValueError("Invalid generation settings: " + "; ".join(errors) + ".")
        return cls(**fields).validate()

    def to_dict(self) -> dict:
        return asdict(self)

    def to_generation_config(self) -> GenerationConfig:
        """The ``GenerationConfig`` for these settings (validated first)."""
        self.validate()
        common = dict(max_new_tokens=self.max_new_tokens, min_new_tokens=self.min_new_tokens)
        if self.strategy == "sampling":
            return GenerationConfig(do_sample=True, temperature=self.temperature,
                                    top_k=self.top_k, top_p=self.top_p, **common)
        if self.strategy == "beam":
            return GenerationConfig(do_sample=False, num_beams=self.num_beams, **common)
        return GenerationConfig(do_sample=False, num_beams=1, **common)


# Setting -> (name in messages, allowed values); the ranges are those :meth:`validate` checks.
SETTING_RULES = {
    "max_new_tokens": ("max new tokens", "a whole number 1..512"),
    "min_new_tokens": ("min new tokens", "a whole number 0..max new tokens"),
    "top_k": ("top-k", "a whole number 0..1000"),
    "num_beams": ("beams", "a whole number 2..16"),
    "seed": ("seed", "a whole number 0..2^32-1"),
    "temperature": ("temperature", "a number in (0, 5]"),
    "top_p": ("top-p", "a number in (0, 1]"),
    "strategy": ("strategy", "one of " + ", ".join(STRATEGIES)),
}
_WHOLE = {"max_new_tokens", "min_new_tokens", "top_k", "num_beams", "seed"}


def _coerce(key: str, value):
    """``value`` of setting ``key`` as its type (see :meth:`GenerationSettings.from_dict`).

    Numbers follow :func:`summarizer.text.as_number`, the rule every number field of the app
    uses; ranges are left to :meth:`GenerationSettings.validate`, so that one message lists every
    bad setting.

    Raises:
        ValueError: naming the setting, its allowed values and what was given.
    """
    name, allowed = SETTING_RULES[key]
    if key == "strategy":
        if isinstance(value, str):
            return value
    else:
        try:
            return as_number(value, whole=key in _WHOLE)
        except ValueError:
            pass  # worded below, in this module's style ("got 'eight'", "got [8] (list)")
    shown = _short(value)
    kind = "" if isinstance(value, (int, float, str)) and not isinstance(value, bool) else \
        f" ({type(value).__name__})"
    raise ValueError(f"{name} must be {allowed}, got {shown}{kind}")


def batch_key(settings: GenerationSettings) -> tuple:
    """What two requests must share to be generated in one batch with unchanged results.

    Greedy decoding reads only the lengths, beam search also the beam count; every other field is
    ignored by them, so requests that differ only there share a batch. Sampling draws from torch's
    one generator, seeded per call, so a sampled request shares a batch with no other (the key
    holds every field; an identical request is answered from the same call instead).
    """
    if settings.strategy == "greedy":
        return ("greedy", settings.max_new_tokens, settings.min_new_tokens)
    if settings.strategy == "beam":
        return ("beam", settings.max_new_tokens, settings.min_new_tokens, settings.num_beams)
    return tuple(sorted(settings.to_dict().items()))


class RowStreamer(BaseStreamer):
    """A ``model.generate`` streamer for a batch: each row's text so far goes to its own callback.

    transformers' ``TextStreamer`` takes one row; this one takes ``put`` calls of shape (B,) or
    (B, 1) (one new token per row; the first call is the decoder start token of an
    encoder-decoder, which is skipped) and calls ``callbacks[row](text)`` with the row's decoded
    text after each token. Rows without a callback are not decoded. Greedy and sampling only
    (transformers refuses a streamer with beam search).
    """

    def __init__(self, tokenizer, callbacks: dict[int, Callable[[str], None]]):
        self.tokenizer, self.callbacks = tokenizer, callbacks
        self.tokens: dict[int, list[int]] = {row: [] for row in callbacks}
        self.started = False

    def put(self, value) -> None:
        if not self.started:  # the decoder start token (T5: <pad>), not generated text
            self.started = True
            return
        ids = value.reshape(-1).tolist()  # (B,)
        for row, callback in self.callbacks.items():
            self.tokens[row].append(ids[row])
            with tokenizer_lock(self.tokenizer):
                text = self.tokenizer.decode(self.tokens[row], skip_special_tokens=True).strip()
            callback(text)

    def end(self) -> None:
        pass


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped in batches of similar length (longest first), to minimise padding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@torch.inference_mode()
def generate_texts(model, tokenizer, prompts: Sequence[str], settings: GenerationSettings,
                   batch_size: int = 8, max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS,
                   adapter_names: Sequence[str] | None = None,
                   on_batch: Callable[[int, int], None] | None = None,
                   streams: dict[int, Callable[[str], None]] | None = None) -> list[str]:
    """Generate one text per prompt, batched by length, returned in the order of ``prompts``.

    Args:
        model: a seq2seq model (``transformers`` or ``peft``), already on its device.
        tokenizer: its tokenizer.
        prompts: N prompt strings (callers check length first; longer ones are truncated to
            ``max_input_tokens`` here as a last safeguard).
        settings: decoding settings; the seed is applied once before the first batch.
        batch_size: prompts per forward pass.
        adapter_names: for a peft model, one adapter name per prompt (``"__base__"`` = the base
            model with no adapter); prompts with different adapters can share a batch
            (peft's mixed-batch inference).
        on_batch: called as ``on_batch(done, total)`` after each batch, for progress bars.
        streams: prompt index -> called with that prompt's text so far after each new token
            (:class:`RowStreamer`; not with beam search). The returned texts are unchanged.

    Returns:
        N decoded strings, special tokens removed and whitespace stripped.
    """
    config = settings.to_generation_config()
    config.pad_token_id = tokenizer.pad_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.decoder_start_token_id = getattr(model.config, "decoder_start_token_id", None)
    torch.manual_seed(settings.seed)
    device = next(model.parameters()).device
    lengths = [len(p) for p in prompts]
    results: list[str] = [""] * len(prompts)
    done = 0
    for batch in length_sorted_batches(lengths, batch_size):
        with tokenizer_lock(tokenizer):
            enc = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True,
                            truncation=True, max_length=max_input_tokens).to(device)
        extra = {"adapter_names": [adapter_names[i] for i in batch]} if adapter_names else {}
        row_streams = {k: streams[i] for k, i in enumerate(batch) if i in streams} if streams else {}
        if row_streams and config.num_beams == 1:  # transformers streams no beam search
            extra["streamer"] = RowStreamer(tokenizer, row_streams)
        out = model.generate(**enc, generation_config=config, **extra)  # (B, T_out)
        with tokenizer_lock(tokenizer):
            texts = tokenizer.batch_decode(out, skip_special_tokens=True)
        for i, text in zip(batch, texts):
            results[i] = text.strip()
        done += len(batch)
        if on_batch:
            on_batch(done, len(prompts))
    return results
