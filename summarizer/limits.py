"""The input token limit, in one place: its default and the model's own limit.

    from summarizer.limits import DEFAULT_MAX_INPUT_TOKENS, check_max_input_tokens, model_input_limit
    limit = check_max_input_tokens(1024, model_input_limit(tokenizer), "--max-input-tokens", "google/flan-t5-base")

Every prompt builder (:mod:`summarizer.prompts`, the evaluation, the Prompt Lab, the Arena, the
tabs) fits its prompts to a configured limit, and both inference engines truncate at that same
limit (:class:`summarizer.inference.slot_config.SlotConfig`'s ``max_input_tokens``, read by the
torch and the CTranslate2 engine), so a changed limit is never cut silently somewhere else. A
limit above what the model reads is refused by :func:`check_max_input_tokens`, naming both.

The default is FLAN-T5's: its encoder was trained on 512-token inputs (Raffel et al. 2020, the T5
paper, §3.1.2), and its tokenizer says so (``model_max_length`` 512). The rule of one owner for
limits follows FastChat's ``fastchat/constants.py``. No torch import here.
"""
from __future__ import annotations

DEFAULT_MAX_INPUT_TOKENS = 512  # FLAN-T5's encoder input (T5 paper, §3.1.2; its tokenizer's model_max_length)
# transformers writes int(1e30) into model_max_length when a tokenizer names no limit; anything this
# large means "not set", not a real limit.
_UNSET_LIMIT = 10 ** 9


def model_input_limit(tokenizer=None, config=None) -> int | None:
    """The most input tokens the model reads, or None when neither object names a limit.

    Args:
        tokenizer: a transformers tokenizer; its ``model_max_length`` (FLAN-T5: 512, BART: 1024)
            is transformers' "maximum length of the inputs to the model".
        config: a transformers model config; ``max_position_embeddings`` bounds models with
            absolute positions (BART: 1024). T5 uses relative positions and has none.

    Returns:
        The smaller of the limits found (tokens), or None.
    """
    found = []
    length = getattr(tokenizer, "model_max_length", None)
    if isinstance(length, int) and 0 < length < _UNSET_LIMIT:
        found.append(length)
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        found.append(positions)
    return min(found) if found else None


def check_max_input_tokens(value, model_limit: int | None, field: str = "max input tokens",
                           model: str = "the model") -> int:
    """``value`` as a whole number of input tokens, 1 up to ``model_limit``.

    Args:
        value: the limit asked for (tokens).
        model_limit: :func:`model_input_limit` of the model that reads the prompts (None: no cap).
        field: the flag or field named in the message (e.g. ``--max-input-tokens``).
        model: the model's source, named in the message.

    Returns:
        ``value`` as an int.

    Raises:
        ValueError: not a whole number, below 1, or above ``model_limit`` (the message names the
            field, the value and the model's limit).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field} must be a whole number of tokens, got {value!r}.")
    if value < 1:
        raise ValueError(f"{field} must be at least 1 token, got {value}.")
    if model_limit is not None and value > model_limit:
        raise ValueError(f"{field} {value} is above the input limit of {model} ({model_limit} tokens, what "
                         f"it reads): give at most {model_limit}; longer prompts would be "
                         f"cut to {model_limit} tokens without a word.")
    return value
