"""The tasks a model is trained and evaluated on, in one registry: how an example and its prompt
are built from a DialogSum dialogue. The trainer, the slots and the metrics are the same for all.

* ``summary`` (the default): the whole dialogue, its human summaries as references, and the
  course's zero-shot prompt (:data:`summarizer.prompts.ZERO_SHOT_TEMPLATE`).
* ``response``: the dialogue cut after turn ``k`` (the context), with turn ``k + 1`` as the one
  reference, and the prompt :data:`RESPONSE_TEMPLATE`. A turn is a line starting with a speaker
  tag ``#Person1#:``, ``#Person2#:``, ... (case-insensitive: train has one ``#PErson2#:``); a line
  without a tag continues the turn above it. The reference is the turn's text **without** its
  speaker tag (``#Person2#: Yes, sir...`` -> ``Yes, sir...``): a tag in the reference would give
  every model free ROUGE and BLEU for copying it; the tag is kept in the example's ``speaker``.
  ``k`` (at least :data:`MIN_CONTEXT_TURNS`, at most ``turns - 1``) is drawn from the SHA-256 of
  ``"<seed>:<dialogue id>"`` (:func:`context_turns`), so the same id and seed give the same cut on
  every machine and run; dialogues with fewer than ``MIN_CONTEXT_TURNS + 1`` turns are skipped,
  and so is one whose turn ``k + 1`` is a bare tag (DialogSum: 232 of 12,460 train dialogues, one
  of them ``train_2149``, whose turn 9 is a bare ``#Person1#:``; 7 of 500 validation; 5 of 500 test).

An example is a row with ``id`` (the dialogue's id, unchanged), ``dialogue`` (the text the prompt
is built from), ``references`` (list[str]) and ``topic``; a response example also has ``task``
(``"response"``), ``context_turns`` (k) and ``speaker`` (the reference turn's tag). A row without
``task`` is a summary example, as :func:`summarizer.data.load_split` returns them.
"""
from __future__ import annotations

import hashlib
import re
from typing import Iterable

from summarizer.prompts import ZERO_SHOT_TEMPLATE

TASKS = ("summary", "response")
DEFAULT_TASK = "summary"
MIN_CONTEXT_TURNS = 2  # turns of context a response example gives at least
RESPONSE_TEMPLATE = "Continue the following conversation with the next turn.\n\n{dialogue}\n\nNext turn: "
TEMPLATES = {"summary": ZERO_SHOT_TEMPLATE, "response": RESPONSE_TEMPLATE}
DESCRIPTIONS = {  # one line each, for model cards and labels
    "summary": "summarize the whole dialogue; references: its human summaries",
    "response": "write the next turn of a dialogue cut after turn k (k >= 2, fixed per dialogue id); "
                "reference: turn k+1 without its speaker tag",
}
LABELS = {  # what the page calls a task's output and its reference (Prompting, Compare)
    "summary": {"output": "Summary", "reference": "Human reference summaries",
                "against": "the human summaries in the reference box"},
    "response": {"output": "Next turn", "reference": "Reference: the next turn (turn k+1, what ROUGE is computed "
                                                     "against; the box above shows turns 1..k)",
                 "against": "the next turn, turn {turn} ({speaker}) without its tag, in the reference box"},
}
_TURN_START = re.compile(r"^[ \t]*#person\d+#:", re.IGNORECASE | re.MULTILINE)
_SPEAKER = re.compile(r"^\s*(#person\d+#):[ \t]*", re.IGNORECASE)


def check_task(value, field: str = "task") -> str:
    """``value`` if it is one of :data:`TASKS`.

    Raises:
        ValueError: anything else; the message names ``field`` (e.g. ``--task``) and the choices.
    """
    if not isinstance(value, str) or value not in TASKS:
        raise ValueError(f"{field} must be one of {', '.join(TASKS)}, got {repr(value)[:40]}.")
    return value


def template(task: str) -> str:
    """The zero-shot template of ``task`` (a ``{dialogue}`` placeholder). Raises like :func:`check_task`."""
    return TEMPLATES[check_task(task)]


def prompt(task: str, dialogue: str) -> str:
    """The zero-shot prompt of ``task`` for ``dialogue`` (for ``response``: the context), unchecked
    for length (:func:`summarizer.prompts.build_prompt` with ``zero_shot_template=template(task)``
    fits it). Raises like :func:`check_task`."""
    return template(task).format(dialogue=dialogue)


def split_turns(dialogue: str) -> list[str]:
    """The turns of a DialogSum dialogue, each from its speaker tag to the next, ends stripped.

    Text before the first tag (none in DialogSum once stripped) is a turn of its own.
    """
    starts = [m.start() for m in _TURN_START.finditer(dialogue)]
    bounds = ([0] if not starts or starts[0] > 0 else []) + starts + [len(dialogue)]
    turns = [dialogue[a:b].strip() for a, b in zip(bounds, bounds[1:])]
    return [t for t in turns if t]


def speaker_and_text(turn: str) -> tuple[str, str]:
    """(``#PersonN#`` tag or ``""``, the turn's text without it)."""
    m = _SPEAKER.match(turn)
    return (m.group(1), turn[m.end():].strip()) if m else ("", turn.strip())


def context_turns(dialogue_id: str, n_turns: int, seed: int = 0) -> int | None:
    """k, the turns of context of a response example: ``MIN_CONTEXT_TURNS + h % (n_turns -
    MIN_CONTEXT_TURNS)`` with ``h`` the first 8 bytes of SHA-256(``"<seed>:<dialogue_id>"``), so
    ``MIN_CONTEXT_TURNS <= k <= n_turns - 1``; None when ``n_turns < MIN_CONTEXT_TURNS + 1``."""
    if n_turns <= MIN_CONTEXT_TURNS:
        return None
    h = int.from_bytes(hashlib.sha256(f"{seed}:{dialogue_id}".encode()).digest()[:8], "big")
    return MIN_CONTEXT_TURNS + h % (n_turns - MIN_CONTEXT_TURNS)


def label(task: str, what: str, **fields) -> str:
    """The page's word for ``what`` (``"output"``, ``"reference"`` or ``"against"``) under ``task``
    (:data:`LABELS`), its ``{turn}``/``{speaker}`` filled from ``fields``. Raises like :func:`check_task`,
    and ``KeyError`` for another ``what``."""
    return LABELS[check_task(task)][what].format(**fields)


def task_of(row: dict) -> str:
    """The task a row was built for: its ``task`` value, else ``summary``."""
    return row.get("task") or DEFAULT_TASK


def response_example(row: dict, seed: int = 0) -> dict | None:
    """The response example of one DialogSum row (see the module docstring), or None when the
    dialogue has too few turns or its reference turn has no text after the tag."""
    turns = split_turns(row["dialogue"])
    k = context_turns(str(row["id"]), len(turns), seed)
    if k is None:
        return None
    speaker, reference = speaker_and_text(turns[k])
    if not reference:
        return None
    return {**row, "dialogue": "\n".join(turns[:k]), "references": [reference], "task": "response",
            "context_turns": k, "speaker": speaker}


def examples(rows: Iterable[dict], task: str, seed: int = 0, limit: int | None = None):
    """The examples of ``task`` built from DialogSum ``rows``, the first ``limit`` (None: all).

    ``rows`` are :func:`summarizer.data.load_split` rows (a ``datasets.Dataset`` or dicts with
    ``id``, ``dialogue``, ``references``); rows already built for ``task`` pass unchanged, so
    calling this twice is harmless. ``summary`` returns the rows themselves (first ``limit``);
    ``response`` skips dialogues with fewer than three turns. A Dataset in gives a Dataset out,
    else a list of dicts.

    Raises:
        ValueError: unknown ``task`` (naming ``task``), or a row built for another task (a
            response example cannot be turned back into a summary example).
    """
    check_task(task)
    is_dataset = hasattr(rows, "features") and hasattr(rows, "select")
    if is_dataset and "task" not in rows.column_names and task == DEFAULT_TASK:
        return rows if limit is None else rows.select(range(min(limit, len(rows))))
    built = []
    for row in rows:
        if limit is not None and len(built) >= limit:
            break
        row = dict(row)
        if task_of(row) == task:
            built.append(row)
        elif task_of(row) != DEFAULT_TASK:
            raise ValueError(f"row {row.get('id')!r} is a {task_of(row)} example; task {task} needs "
                             "the DialogSum rows it was built from (summarizer.data.load_split).")
        elif (example := response_example(row, seed)) is not None:
            built.append(example)
    return _as_dataset(built, rows.features, task) if is_dataset else built


def _as_dataset(built: list[dict], features, task: str):
    """``built`` as a ``datasets.Dataset`` with ``features`` plus the response columns (also when empty)."""
    import datasets

    features = datasets.Features({**features})
    if task == "response":
        features.update(task=datasets.Value("string"), context_turns=datasets.Value("int64"),
                        speaker=datasets.Value("string"))
    return datasets.Dataset.from_list(built, features=features)


def load_examples(source, split: str, task: str = DEFAULT_TASK, length=None, limit: int | None = None,
                  seed: int = 0):
    """The first ``limit`` examples of ``task`` from ``split`` of ``source`` (a ``datasets.Dataset``):
    :func:`summarizer.data.load_split` (with the ``length`` filter on the whole dialogue), then
    :func:`examples`. The one loader of the training runs and the Evaluate CLI.

    Raises:
        ValueError: unknown task (naming ``task``), and what ``load_split`` raises.
    """
    from summarizer.data import load_split

    check_task(task)
    rows = load_split(source, split, length=length, limit=limit if task == DEFAULT_TASK else None)
    return examples(rows, task, seed=seed, limit=limit)
