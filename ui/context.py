"""What every tab shares: the model slots, the toxicity scorer, the dataset and the runs folder."""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from summarizer.data import SPLITS, load_split
from summarizer.inference.slots import ModelSlots
from summarizer.limits import DEFAULT_MAX_INPUT_TOKENS
from summarizer.tasks import check_task, response_example
from summarizer.text import clean_text
from summarizer.toxicity import ToxicityScorer
from summarizer.uploads import UPLOADED
from ui.class_activity import ClassActivity, ClassBroadcast
from ui.classroom import Classroom, SessionLimit

# All model work (generation, scoring, evaluation) goes through this one queue so that one CPU
# or GPU is never oversubscribed by concurrent users (Gradio's concurrency_id).
MODEL_QUEUE = "model-work"
# Interactive generation (Summarize, Compare, the Arena's pairs): many requests at once reach the
# slots, which merge them into batches (summarizer.inference.batcher); the slots' lock still runs
# one batch at a time. Each session may have SESSION_LIMIT of them waiting (ui.classroom.SessionLimit).
GENERATION_QUEUE, GENERATION_CONCURRENCY, SESSION_LIMIT = "generation", 64, 2


def row_index(rows) -> dict[str, dict]:
    """Each cleaned dialogue of ``rows`` -> its row (``id``, ``dialogue``, ``references``), so a
    loaded dialogue finds its summaries (and, for the response task, its turns)."""
    return {clean_text(d): {"id": i, "dialogue": d, "references": list(r)}
            for i, d, r in zip(rows["id"], rows["dialogue"], rows["references"])}


def context_index(index: dict[str, dict]) -> dict[str, dict]:
    """Each response context (a dialogue cut after turn k, :func:`summarizer.tasks.response_example`)
    of the rows of a :func:`row_index` -> the whole row, so that a dialogue the page shows cut
    still finds its next turn (about 0.2 s for DialogSum's 12,460 train rows)."""
    out = {}
    for row in index.values():
        example = response_example(row)
        if example is not None:
            out.setdefault(clean_text(example["dialogue"]), row)
    return out


@dataclass
class Studio:
    """Shared state of one app process.

    Attributes:
        slots: the four model slots (one shared base).
        toxicity: the hate-speech scorer.
        dataset: DialogSum hub id or local folder.
        runs_dir: folder holding training runs.
        max_input_tokens: encoder limit for prompts (:data:`summarizer.limits.DEFAULT_MAX_INPUT_TOKENS`,
            the engines' own ``slots.max_input_tokens`` by default).
        classroom: teacher and student logins (:class:`ui.classroom.Classroom`; none = no roles).
        limit: the per-login cap on waiting generation requests (per session without logins).
        activity: each login's last request and its Summarize/Compare requests, for the Class view.
        uploaded: the teacher's own dialogues, the split ``"uploaded"`` (None until an upload).
    """

    slots: ModelSlots
    toxicity: ToxicityScorer
    dataset: str
    runs_dir: Path
    max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS
    classroom: Classroom = field(default_factory=Classroom)
    limit: SessionLimit = field(default_factory=lambda: SessionLimit(SESSION_LIMIT))
    activity: ClassActivity = field(default_factory=ClassActivity)  # who is here, what each asked (Class view)
    broadcast: ClassBroadcast = field(default_factory=ClassBroadcast)  # the set-up sent to every student page
    uploaded: object = None  # the teacher's own dialogues (summarizer.uploads), split "uploaded"
    lesson: object = None  # the lesson last opened (summarizer.lessons.Lesson): what page loads show
    _splits: dict = field(default_factory=dict, repr=False)
    _references: dict = field(default_factory=dict, repr=False)  # cleaned dialogue -> its row
    _indexed: set = field(default_factory=set, repr=False)  # splits already in _references
    _contexts: dict = field(default_factory=dict, repr=False)  # cleaned response context -> its whole row
    # Cancel buttons: one flag per running job, keyed by browser session ("api" for API clients),
    # kept here so that two apps in one process (the tests) never share them.
    _cancel_flags: dict = field(default_factory=dict, repr=False)

    @contextlib.contextmanager
    def running(self, session: str | None) -> Iterator[threading.Event]:
        """Register a cancel flag for a job of ``session`` while the block runs; yields the flag.

        The flag exists only while the job runs, so :meth:`request_cancel` never creates one and
        the table holds at most one flag per running job, whatever clients send.
        """
        key, flag = session or "api", threading.Event()
        self._cancel_flags[key] = flag  # a newer job of the same session takes the Cancel button
        try:
            yield flag
        finally:
            if self._cancel_flags.get(key) is flag:
                del self._cancel_flags[key]

    def request_cancel(self, session: str | None) -> bool:
        """Set the flag of ``session``'s running job; False (and nothing kept) when none runs."""
        flag = self._cancel_flags.get(session or "api")
        if flag is not None:
            flag.set()
        return flag is not None

    def split(self, name: str):
        """The DialogSum split ``name`` (cached after the first load), or the teacher's uploaded
        dialogues for ``"uploaded"``.

        Raises:
            ValueError: ``"uploaded"`` before any upload (the message says where to upload).
        """
        if name == UPLOADED:
            if self.uploaded is None:
                raise ValueError("Split 'uploaded': no dialogues uploaded yet; the teacher uploads a CSV or "
                                 "JSONL file under 'Your own dialogues' in the Prompting tab.")
            return self.uploaded
        if name not in self._splits:
            self._splits[name] = load_split(self.dataset, name)
        return self._splits[name]

    def set_uploaded(self, rows) -> None:
        """Make ``rows`` (:func:`summarizer.uploads.read_dialogues`) the ``uploaded`` split, for
        every session; their references are found for a loaded dialogue as DialogSum's are."""
        self.uploaded = rows
        index = row_index(rows)
        self._references.update(index)
        self._contexts.update(context_index(index))

    def references_for(self, dialogue: str) -> list[str]:
        """Human summaries of ``dialogue`` if it is a DialogSum dialogue (any split), else ``[]``.

        Splits are indexed lazily, in order, until the dialogue is found.
        """
        row = self.row_for(dialogue)
        return list(row["references"]) if row else []

    def row_for(self, dialogue: str) -> dict | None:
        """The DialogSum (or uploaded) row whose dialogue is ``dialogue`` after cleaning, else None.

        Splits are indexed lazily, in order, until the dialogue is found.
        """
        key = clean_text(dialogue)
        for name in SPLITS:
            if key in self._references:
                break
            if name not in self._indexed:
                index = row_index(self.split(name))
                self._references.update(index)
                self._contexts.update(context_index(index))
                self._indexed.add(name)
        return self._references.get(key)

    def row_for_context(self, dialogue: str) -> dict | None:
        """The whole DialogSum (or uploaded) row whose response context (the dialogue cut after
        turn k, as Load shows it for the response task) is ``dialogue`` after cleaning, else None."""
        key = clean_text(dialogue)
        if key not in self._contexts:
            self.row_for(key)  # indexes the splits not yet indexed, and their contexts
        return self._contexts.get(key)

    def locate(self, dialogue: str) -> tuple[str, int] | None:
        """(split, row number) of the DialogSum or uploaded row whose whole dialogue or response
        context is ``dialogue`` after cleaning (the uploaded split first), else None (a pasted text).
        A linear scan of one split's ids (a few ms for DialogSum's train split)."""
        row = self.row_for(dialogue) or self.row_for_context(dialogue)
        if row is None:
            return None
        for name in (UPLOADED, *reversed(SPLITS)):
            if name == UPLOADED and self.uploaded is None:
                continue
            rows = self.split(name)
            for number, (row_id, text) in enumerate(zip(rows["id"], rows["dialogue"])):
                if row_id == row["id"] and clean_text(text) == clean_text(row["dialogue"]):
                    return name, number
        return None

    def task_row(self, task: str, dialogue: str) -> dict | None:
        """The example ``dialogue`` stands for under ``task``: ``summary``, its DialogSum (or
        uploaded) row; ``response``, the response example (``context_turns`` k, ``speaker``) of
        the row whose whole dialogue or whose context (turns 1..k) it is. None for a pasted text.

        Raises:
            ValueError: unknown task, or a known dialogue too short for the response task.
        """
        task = check_task(task, "Task")
        row = self.row_for(dialogue)
        if task == "summary":
            return row
        row = row or self.row_for_context(dialogue)
        if row is None:
            return None
        example = response_example(row)
        if example is None:
            raise ValueError("Task response: this dialogue has fewer than three turns (or an empty next turn); "
                             "pick another dialogue or the summary task.")
        return example

    def task_example(self, task: str, dialogue: str) -> tuple[str, list[str]]:
        """(what the model reads, its references) for ``dialogue`` under ``task``.

        ``summary``: the dialogue and its human summaries. ``response``: a DialogSum or uploaded
        dialogue is cut after turn k as the training runs cut it (:func:`summarizer.tasks.response_example`),
        with turn k+1 as the reference, and so is its context (turns 1..k, what Load shows); a pasted
        conversation is read whole, with no reference (:meth:`task_row`).

        Raises:
            ValueError: unknown task, or a known dialogue too short for the response task.
        """
        text = clean_text(dialogue)
        example = self.task_row(task, text)
        if example is None:
            return text, []
        return (text if task == "summary" else example["dialogue"]), list(example["references"])
