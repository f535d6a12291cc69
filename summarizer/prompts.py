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
from typing import Callable, Protocol, Sequence

from summarizer.limits import DEFAULT_MAX_INPUT_TOKENS
from summarizer.tokenizer_lock import tokenizer_lock

ZERO_SHOT_TEMPLATE = "Summarize the following conversation.\n\n{dialogue}\n\nSummary: "
SHOT_TEMPLATE = "Dialogue:\n\n{dialogue}\n\nWhat was going on?\n{summary}\n\n\n"
TARGET_TEMPLATE = "Dialogue:\n\n{dialogue}\n\nWhat was going on?\n"
MODES = ("zero-shot", "one-shot", "few-shot", "raw")
DEFAULT_SHOTS = 2  # few-shot examples when no numbers are given
MAX_SHOTS = 10  # more shots never fit 512 tokens; a cap keeps one request from holding the queue
DEFAULT_MAX_TOKENS = DEFAULT_MAX_INPUT_TOKENS  # summarizer.limits owns it (FLAN-T5's 512)


class Tokenizer(Protocol):
    def __call__(self, text, **kwargs): ...


@dataclass(frozen=True)
class Example:
    """One solved dialogue used as a shot: the dialogue, its human summary, and where it comes
    from (e.g. ``"train #123"``, shown beside its token cost; may be empty)."""

    dialogue: str
    summary: str
    source: str = ""


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
        shot_tokens: ``(source, tokens)`` of each kept shot: the tokens its block adds to the
            prompt, counted on its own (empty without a tokenizer).
    """

    text: str
    mode: str
    n_tokens: int | None
    max_tokens: int
    shots_used: int = 0
    shots_dropped: int = 0
    truncated_chars: int = 0
    notes: list[str] = field(default_factory=list)
    shot_tokens: list[tuple[str, int]] = field(default_factory=list)

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


def render(mode: str, dialogue: str, examples: Sequence[Example] = (),
           zero_shot_template: str = ZERO_SHOT_TEMPLATE) -> str:
    """The prompt text for ``mode`` without any length check; ``zero-shot`` fills
    ``zero_shot_template`` (a task's template, :func:`summarizer.tasks.template`).

    Raises:
        ValueError: unknown ``mode``, or a one-/few-shot mode without examples.
    """
    if mode == "zero-shot":
        return zero_shot_template.format(dialogue=dialogue)
    if mode == "raw":
        return dialogue
    if mode in ("one-shot", "few-shot"):
        if not examples:
            raise ValueError(f"A {mode} prompt needs at least one example dialogue.")
        if mode == "one-shot":
            examples = examples[:1]
        return few_shot(dialogue, examples)
    raise ValueError(f"Unknown prompt mode {mode!r}; choose one of {', '.join(MODES)}.")


def _render_unchecked(mode: str, dialogue: str, examples: Sequence[Example],
                      zero_shot_template: str = ZERO_SHOT_TEMPLATE) -> str:
    """Like :func:`render`, but a shot prompt whose shots were all dropped keeps its target form."""
    if mode in ("one-shot", "few-shot") and not examples:
        return few_shot(dialogue, [])
    return render(mode, dialogue, examples, zero_shot_template)


def count_tokens(tokenizer, text: str) -> int:
    """Number of tokens ``tokenizer`` makes of ``text``, special tokens (e.g. ``</s>``) included."""
    with tokenizer_lock(tokenizer):
        return len(tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])


def shot_costs(tokenizer, examples: Sequence[Example]) -> list[int]:
    """Tokens each example's shot block adds to a prompt (no special tokens), in one tokenizer call.

    The cost of a block inside a longer prompt can differ from its standalone cost by a token
    where it meets its neighbours; :func:`build_prompt` verifies the final prompt for that reason.
    """
    if not examples:
        return []
    blocks = [SHOT_TEMPLATE.format(dialogue=e.dialogue, summary=e.summary) for e in examples]
    with tokenizer_lock(tokenizer):
        return [len(ids) for ids in tokenizer(blocks, add_special_tokens=False, truncation=False)["input_ids"]]


def largest_fitting(estimate: Callable[[int], int], measure: Callable[[int], int], hi: int,
                    limit: int) -> int:
    """Largest ``k`` in ``0..hi`` with ``measure(k) <= limit`` (0 when none), for a non-decreasing
    ``measure`` that ``estimate`` (cheap, non-decreasing) predicts to within a few units.

    Starts from the largest ``k`` the estimate allows, then gallops (steps 1, 2, 4, ...) towards
    the answer and bisects: when the estimate is off by ``e`` units this calls ``measure``
    about ``2 + 2 log2(e + 1)`` times, so 2 times when it is exact, whatever ``hi`` is.
    """
    lo_k, hi_k = 0, hi  # the answer lies in lo_k..hi_k
    a, b = 0, hi  # largest k with estimate(k) <= limit, by bisection (no tokenizer calls)
    while a < b:
        mid = (a + b + 1) // 2
        a, b = (mid, b) if estimate(mid) <= limit else (a, mid - 1)
    k = a
    step = 1
    if measure(k) <= limit:  # go up until something does not fit
        lo_k = k
        while lo_k < hi_k:
            probe = min(lo_k + step, hi_k)
            if measure(probe) <= limit:
                lo_k, step = probe, step * 2
            else:
                hi_k = probe - 1
                break
    else:  # go down until something fits (or 0)
        hi_k = k - 1
        while hi_k > lo_k:
            probe = max(hi_k - step + 1, lo_k)
            if measure(probe) <= limit:
                lo_k = probe
                break
            hi_k, step = probe - 1, step * 2
    while lo_k < hi_k:  # bisect what the galloping left open
        mid = (lo_k + hi_k + 1) // 2
        lo_k, hi_k = (mid, hi_k) if measure(mid) <= limit else (lo_k, mid - 1)
    return lo_k


class _Counter:
    """``count_tokens`` of prompts built from ``k``, each ``k`` tokenized at most once."""

    def __init__(self, tokenizer, build: Callable[[int], str]):
        self.tokenizer, self.build, self.seen = tokenizer, build, {}

    def __call__(self, k: int) -> int:
        if k not in self.seen:
            self.seen[k] = count_tokens(self.tokenizer, self.build(k))
        return self.seen[k]


def cut_dialogue(render: Callable[[str], str], dialogue: str, tokenizer, max_tokens: int, n_full: int,
                 copies: int = 1) -> tuple[str, int, int]:
    """Longest token-boundary prefix of ``dialogue`` whose prompt ``render(prefix)`` fits ``max_tokens``.

    Returns (kept prefix, characters cut, tokens of ``render(prefix)``). The dialogue is tokenized
    once (with offsets); keeping ``k`` of its tokens gives a prompt of about
    ``overhead + copies * k`` tokens, where ``copies`` is how many times ``render`` places the
    dialogue and ``overhead = n_full - copies * len(dialogue tokens)`` is what the rest of the
    prompt adds, so the cut is found by arithmetic and then verified on the real prompt (a cut
    string can re-tokenize a token differently at the boundary; see :func:`largest_fitting`).
    ``n_full`` is the token count of ``render(dialogue)``. Used by :func:`build_prompt` and by the
    Prompt Lab's :func:`summarizer.prompt_lab.templates.fit`.
    """
    ends = [end for _, end in tokenizer(dialogue, add_special_tokens=False,
                                        return_offsets_mapping=True)["offset_mapping"]]
    prefix = lambda k: dialogue[: ends[k - 1]] if k else ""
    overhead = n_full - copies * len(ends)
    measure = _Counter(tokenizer, lambda k: render(prefix(k)))
    measure.seen[len(ends)] = n_full
    kept = largest_fitting(lambda k: overhead + copies * k, measure, len(ends), max_tokens)
    cut = prefix(kept)
    return cut, len(dialogue) - len(cut), measure(kept)  # measure(kept) is usually cached: no extra call


def _fit_shots(mode, dialogue, examples, costs, tokenizer, max_tokens, n_full: int) -> int:
    """Number of leading examples to keep so the prompt fits ``max_tokens``.

    ``costs`` are the blocks' :func:`shot_costs`; keeping the first ``k`` examples is estimated as
    the full prompt (``n_full`` tokens) minus the dropped blocks' costs, then verified.
    """
    suffix = [0] * (len(costs) + 1)  # suffix[k] = tokens of the blocks k.. (those dropped)
    for i in range(len(costs) - 1, -1, -1):
        suffix[i] = suffix[i + 1] + costs[i]
    measure = _Counter(tokenizer, lambda k: _render_unchecked(mode, dialogue, examples[:k]))
    measure.seen[len(examples)] = n_full
    kept = largest_fitting(lambda k: n_full - suffix[k], measure, len(examples), max_tokens)
    return kept


def build_prompt(mode: str, dialogue: str, examples: Sequence[Example] = (), tokenizer=None,
                 max_tokens: int = DEFAULT_MAX_TOKENS, zero_shot_template: str = ZERO_SHOT_TEMPLATE) -> Prompt:
    """Build the prompt for ``mode`` and make it fit ``max_tokens``, saying what was changed.

    Work is linear in the prompt's length: the full prompt, the shot blocks (one batched call) and
    the dialogue are tokenized once each, what to drop or cut is found by arithmetic on those
    counts, and the final prompt is re-tokenized a few times to verify it (see
    :func:`largest_fitting`). The result is the largest prefix of the examples, then of the
    dialogue, that fits, exactly as dropping one example at a time would give.

    Args:
        mode: ``zero-shot``, ``one-shot``, ``few-shot`` or ``raw``.
        dialogue: the dialogue to summarize (non-empty).
        examples: solved dialogues for one-/few-shot prompts; one-shot uses the first.
        tokenizer: the model's tokenizer (a fast tokenizer, for offsets); without one the
            prompt is returned unchecked with ``n_tokens=None``.
        max_tokens: the encoder's input limit (512 for FLAN-T5).
        zero_shot_template: the ``zero-shot`` template, with a ``{dialogue}`` placeholder (default
            the course's summary prompt; :func:`summarizer.tasks.template` gives each task's).

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
    text = render(mode, dialogue, examples, zero_shot_template)
    if tokenizer is None:
        return Prompt(text, mode, None, max_tokens, shots_used=len(examples))
    n = count_tokens(tokenizer, text)
    notes: list[str] = []
    requested = len(examples)
    costs = shot_costs(tokenizer, examples)
    if n > max_tokens and examples:
        examples = examples[:_fit_shots(mode, dialogue, examples, costs, tokenizer, max_tokens, n)]
        text = _render_unchecked(mode, dialogue, examples, zero_shot_template)
        n = count_tokens(tokenizer, text)
    costs = costs[:len(examples)]
    dropped = requested - len(examples)
    if dropped:
        why = (f": the dialogue alone takes {n} tokens, so no example fits beside it (shorten it or "
               "use zero-shot)") if not examples and n > max_tokens else ""
        notes.append(f"Dropped {dropped} of {requested} example dialogue(s) (the last ones) "
                     f"to fit the {max_tokens}-token limit{why}.")
    cut_chars = 0
    if n > max_tokens:
        before = n
        cut, cut_chars, n = cut_dialogue(lambda d: _render_unchecked(mode, d, examples, zero_shot_template),
                                         dialogue, tokenizer, max_tokens, before)
        text = _render_unchecked(mode, cut, examples, zero_shot_template)
        notes.append(f"The prompt had {before} tokens, over the {max_tokens}-token limit: cut the "
                     f"last {cut_chars} of {len(dialogue)} characters of the dialogue "
                     f"(kept up to “…{cut[-40:]}”).")
    return Prompt(text, mode, n, max_tokens, shots_used=len(examples), shots_dropped=dropped,
                  truncated_chars=cut_chars, notes=notes,
                  shot_tokens=[(e.source, c) for e, c in zip(examples, costs)])
