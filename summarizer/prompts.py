"""Zero-, one- and few-shot prompts in the course templates, with honest token-limit handling.

Templates (reproduced exactly from the course labs):

* zero-shot: ``"Summarize the following conversation.\\n\\n{dialogue}\\n\\nSummary: "``
* each shot: ``"Dialogue:\\n\\n{dialogue}\\n\\nWhat was going on?\\n{summary}\\n\\n\\n"``, followed
  by the target dialogue in the same form without its summary
  (``"Dialogue:\\n\\n{dialogue}\\n\\nWhat was going on?\\n"``);
* raw: the dialogue alone, no instruction.

A prompt longer than the encoder's limit (512 tokens for FLAN-T5) is never cut silently:
:func:`build_prompt` first drops example dialogues (the last listed first), then,
if the target alone is still too long, cuts the end of the target dialogue, and reports each
step in :attr:`Prompt.notes`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

ZERO_SHOT_TEMPLATE = "Summarize the following conversation.\n\n{dialogue}\n\nSummary: "
SHOT_TEMPLATE = "Dialogue:\n\n{dialogue}\n\nWhat was going on?\n{summary}\n\n\n"
TARGET_TEMPLATE = "Dialogue:\n\n{dialogue}\n\nWhat was going on?\n"
MODES = ("zero-shot", "one-shot", "few-shot", "raw")
DEFAULT_MAX_TOKENS = 512  # FLAN-T5's encoder was trained on 512-token inputs (T5 paper, §3.1.2)


class Tokenizer(Protocol):
    def __call__(self, text, **kwargs): ...


@dataclass(frozen=True)
class Example:
    """One solved dialogue used as a shot: the dialogue and its human summary."""

    dialogue: str
    summary: str


@dataclass
class Prompt:
    """A built prompt.

    Attributes:
        text: the exact string given to the model.
        mode: one of :data:`MODES`.
        n_tokens: length of ``text`` in tokens of the model's tokenizer (end-of-sequence
            included), or ``None`` when no tokenizer was given.
        max_tokens: the encoder limit it was checked against.
        shots_used: number of shots kept in ``text``.
        shots_dropped: number of requested shots dropped to fit the limit.
        truncated_chars: characters cut from the end of the target dialogue to fit (0 if none).
        notes: human-readable sentences describing each change made to fit the limit.
    """

    text: str
    mode: str
    n_tokens: int | None
    max_tokens: int
    shots_used: int = 0
    shots_dropped: int = 0
    truncated_chars: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.n_tokens is None or self.n_tokens <= self.max_tokens


def zero_shot(dialogue: str) -> str:
    """The course's zero-shot instruction prompt for ``dialogue``."""
    return ZERO_SHOT_TEMPLATE.format(dialogue=dialogue)


def few_shot(dialogue: str, examples: Sequence[Example]) -> str:
    """Shots in the course's "What was going on?" form, then the target dialogue.

    With one example this is the one-shot prompt; with none it is the target block alone.
    """
    shots = "".join(SHOT_TEMPLATE.format(dialogue=e.dialogue, summary=e.summary) for e in examples)
    return shots + TARGET_TEMPLATE.format(dialogue=dialogue)


def render(mode: str, dialogue: str, examples: Sequence[Example] = ()) -> str:
    """The prompt text for ``mode`` without any length check.

    Raises:
        ValueError: unknown ``mode``, or a one-/few-shot mode without examples.
    """
    if mode == "zero-shot":
        return zero_shot(dialogue)
    if mode == "raw":
        return dialogue
    if mode in ("one-shot", "few-shot"):
        if not examples:
            raise ValueError(f"A {mode} prompt needs at least one example dialogue.")
        if mode == "one-shot":
            examples = examples[:1]
        return few_shot(dialogue, examples)
    raise ValueError(f"Unknown prompt mode {mode!r}; choose one of {', '.join(MODES)}.")


def _render_unchecked(mode: str, dialogue: str, examples: Sequence[Example]) -> str:
    """Like :func:`render`, but a shot prompt whose shots were all dropped keeps its target form."""
    if mode in ("one-shot", "few-shot") and not examples:
        return few_shot(dialogue, [])
    return render(mode, dialogue, examples)


def count_tokens(tokenizer, text: str) -> int:
    """Number of tokens ``tokenizer`` makes of ``text``, special tokens (e.g. ``</s>``) included."""
    return len(tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])


def _cut_dialogue(mode, dialogue, examples, tokenizer, max_tokens) -> tuple[str, int]:
    """Longest token-boundary prefix of ``dialogue`` whose prompt fits ``max_tokens``.

    Returns (kept prefix, number of characters cut). Binary search over the number of
    dialogue tokens kept, since re-tokenizing a cut string can shift a boundary by a token.
    """
    ends = [end for _, end in tokenizer(dialogue, add_special_tokens=False,
                                        return_offsets_mapping=True)["offset_mapping"]]
    prefix = lambda k: dialogue[: ends[k - 1]] if k else ""
    lo, hi = 0, len(ends)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(tokenizer, _render_unchecked(mode, prefix(mid), examples)) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    cut = prefix(lo)
    return cut, len(dialogue) - len(cut)


def build_prompt(mode: str, dialogue: str, examples: Sequence[Example] = (), tokenizer=None,
                 max_tokens: int = DEFAULT_MAX_TOKENS) -> Prompt:
    """Build the prompt for ``mode`` and make it fit ``max_tokens``, saying what was changed.

    Args:
        mode: ``zero-shot``, ``one-shot``, ``few-shot`` or ``raw``.
        dialogue: the dialogue to summarize (non-empty).
        examples: solved dialogues for one-/few-shot prompts; one-shot uses the first.
        tokenizer: the model's tokenizer (a fast tokenizer, for offsets); without one the
            prompt is returned unchecked with ``n_tokens=None``.
        max_tokens: the encoder's input limit (512 for FLAN-T5).

    Returns:
        A :class:`Prompt` whose ``text`` fits ``max_tokens`` tokens.

    Raises:
        ValueError: empty dialogue, unknown mode, missing examples, or ``max_tokens < 1``.
    """
    if not dialogue or not dialogue.strip():
        raise ValueError("The dialogue is empty: paste a conversation or pick one from DialogSum.")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}.")
    examples = list(examples[:1] if mode == "one-shot" else examples)
    text = render(mode, dialogue, examples)
    if tokenizer is None:
        return Prompt(text, mode, None, max_tokens, shots_used=len(examples))
    n = count_tokens(tokenizer, text)
    notes: list[str] = []
    requested = len(examples)
    while n > max_tokens and examples:
        examples.pop()
        text = _render_unchecked(mode, dialogue, examples)
        n = count_tokens(tokenizer, text)
    dropped = requested - len(examples)
    if dropped:
        notes.append(f"Dropped {dropped} of {requested} example dialogue(s) (the last ones) "
                     f"to fit the {max_tokens}-token limit.")
    cut_chars = 0
    if n > max_tokens:
        before = n
        cut, cut_chars = _cut_dialogue(mode, dialogue, examples, tokenizer, max_tokens)
        text = _render_unchecked(mode, cut, examples)
        n = count_tokens(tokenizer, text)
        notes.append(f"The prompt had {before} tokens, over the {max_tokens}-token limit: cut the "
                     f"last {cut_chars} of {len(dialogue)} characters of the dialogue "
                     f"(kept up to “…{cut[-40:]}”).")
    return Prompt(text, mode, n, max_tokens, shots_used=len(examples), shots_dropped=dropped,
                  truncated_chars=cut_chars, notes=notes)
