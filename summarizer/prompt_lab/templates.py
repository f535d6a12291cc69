"""Prompt templates for the Prompt Lab: presets, checks, filling and fitting to the input limit.

A template is text with one or more ``{dialogue}`` placeholders (``{{`` and ``}}`` write literal
braces, as in ``str.format``). :func:`check_templates` refuses a bad one with a message naming it
(T1..T6) and what to change; :func:`fit` fills it with a dialogue cut to the model's input
limit. Presets are the course labs' prompts (:mod:`summarizer.prompts`).
"""
from __future__ import annotations

import re
from typing import Sequence

from summarizer.prompts import SHOT_TEMPLATE, TARGET_TEMPLATE, ZERO_SHOT_TEMPLATE, count_tokens, cut_dialogue

MAX_TEMPLATES = 6
MAX_TEMPLATE_CHARS = 2_000  # FLAN-T5 reads 512 tokens, about 2,000 characters of English
PLACEHOLDER = "{dialogue}"
ONE_SHOT_EXAMPLES = (40,)  # train rows the course lab used for its one-shot prompt
FEW_SHOT_EXAMPLES = (40, 120)  # the lab's 40 and 80 overflow the length cap; 120 is short
PRESETS: dict[str, str] = {
    "zero-shot": ZERO_SHOT_TEMPLATE,  # course lab 1 zero-shot; also the training prompt
    "what-was-going-on": TARGET_TEMPLATE,  # course lab 1 "Dialogue: ... What was going on?"
    "raw": PLACEHOLDER,  # the dialogue alone
}
PRESET_LABELS = {
    "zero-shot": "Course zero-shot: “Summarize the following conversation.” (also the training prompt)",
    "what-was-going-on": "Course “Dialogue: … What was going on?” (zero-shot form of lab 1's shots)",
    "raw": "The dialogue alone, no instruction",
    "one-shot": "Course one-shot: train #40 solved, then the dialogue",
    "few-shot": "Course few-shot: train #40 and #120 solved, then the dialogue",
}
_BRACES = re.compile(r"\{\{|\}\}")


class TemplateError(ValueError):
    """A template is invalid; the message names the template (T1..T6) and what to change."""


def escape(text: str) -> str:
    """``text`` with braces doubled, so it stays literal inside a template."""
    return text.replace("{", "{{").replace("}", "}}")


def shots_template(examples: Sequence[tuple[str, str]]) -> str:
    """A one-/few-shot template: the course's solved-dialogue blocks, then the target block."""
    shots = "".join(SHOT_TEMPLATE.format(dialogue=escape(d), summary=escape(s)) for d, s in examples)
    return shots + TARGET_TEMPLATE


def preset(name: str, train_rows=None) -> str:
    """The template of preset ``name`` (:data:`PRESET_LABELS`); shot presets need the train split.

    Raises:
        ValueError: unknown preset, or a shot preset without ``train_rows``.
    """
    if name in PRESETS:
        return PRESETS[name]
    if name in ("one-shot", "few-shot"):
        if train_rows is None:
            raise ValueError(f"The {name} preset needs the DialogSum train split for its examples.")
        idx = ONE_SHOT_EXAMPLES if name == "one-shot" else FEW_SHOT_EXAMPLES
        return shots_template([(train_rows[i]["dialogue"], train_rows[i]["references"][0]) for i in idx])
    raise ValueError(f"Unknown preset {name!r}; presets are {', '.join(PRESET_LABELS)}.")


def check_template(text: str, name: str) -> str:
    """``text`` if it is a valid template, else :class:`TemplateError` naming ``name``.

    Valid: at most :data:`MAX_TEMPLATE_CHARS` characters, at least one ``{dialogue}``, and no
    other brace except the escapes ``{{`` and ``}}``.
    """
    if not isinstance(text, str) or not text.strip():
        raise TemplateError(f"Template {name} is empty: write a prompt with a {PLACEHOLDER} placeholder, or clear the slot.")
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"Template {name} has {len(text):,} characters, over the limit of "
                            f"{MAX_TEMPLATE_CHARS:,}: shorten it (FLAN-T5 reads 512 tokens in all).")
    if PLACEHOLDER not in text:
        raise TemplateError(f"Template {name} has no {PLACEHOLDER} placeholder: add it where the dialogue goes.")
    rest = _BRACES.sub("", text.replace(PLACEHOLDER, ""))
    if "{" in rest or "}" in rest:
        bad = re.search(r"\{[^{}]{0,30}\}?|\}", rest).group(0)
        raise TemplateError(f"Template {name} has a brace other than {PLACEHOLDER}: {bad!r}. Only "
                            f"{PLACEHOLDER} is filled in; write a literal brace as {{{{ or }}}}.")
    return text


def check_templates(templates: Sequence[str], names: Sequence[str] | None = None) -> list[str]:
    """Validate 1..:data:`MAX_TEMPLATES` templates named ``names`` (default T1, T2...).

    Raises:
        TemplateError: none, too many, or an invalid one (named).
    """
    templates = list(templates)
    names = list(names or [f"T{i + 1}" for i in range(len(templates))])
    if not templates:
        raise TemplateError(f"Give at least one template (with a {PLACEHOLDER} placeholder).")
    if len(templates) > MAX_TEMPLATES:
        raise TemplateError(f"{len(templates)} templates given; at most {MAX_TEMPLATES} are compared at once.")
    if len(names) != len(templates) or len(set(names)) != len(names):
        raise TemplateError(f"Template names must be distinct, one per template; got {names}.")
    return [check_template(t, name) for t, name in zip(templates, names)]


def fill(template: str, dialogue: str) -> str:
    """The template with every ``{dialogue}`` replaced (the dialogue's own braces stay as they are)."""
    return template.format(dialogue=dialogue)


def fit(template: str, dialogue: str, tokenizer, max_tokens: int) -> tuple[str, int, int]:
    """(prompt, its token count, characters cut from the dialogue's end) fitting ``max_tokens``.

    The same cut as :func:`summarizer.prompts.build_prompt` makes for the course templates, by
    the same code (:func:`summarizer.prompts.cut_dialogue`): the longest token-boundary prefix of
    the dialogue whose filled prompt fits, found by arithmetic and verified in a few calls.
    """
    text = fill(template, dialogue)
    n = count_tokens(tokenizer, text)
    if n <= max_tokens:
        return text, n, 0
    cut, cut_chars, n_cut = cut_dialogue(lambda d: fill(template, d), dialogue, tokenizer, max_tokens, n,
                                         copies=max(1, template.count(PLACEHOLDER)))
    return fill(template, cut), n_cut, cut_chars
