"""Lessons: the page's set-up saved as one JSON file in the runs folder, and opened again.

A lesson is what a teacher prepared before class: the models in the four slots, the inference
engine, the task, the dialogue shown (a DialogSum row, a pasted text, or a row of the teacher's
own uploaded set, which the lesson then carries), the Prompt Lab templates, the Prompting mode and
examples, and the generation settings. The UI builds a :class:`Lesson` from the page and
:func:`save_lesson` writes it; :func:`list_lessons` lists the saved ones; :func:`load_lesson`
reads one back (the page restores it; ``python app.py --lesson FILE`` starts with it), and
:func:`missing_sources` says which of its models or folders is not here.

Layout::

    <runs_dir>/lessons/<slug of the name>-YYYYmmdd-HHMMSS.json   one lesson (Lesson.to_dict())

A lesson file is untrusted input (it may be hand-edited, copied from another machine, or planted
in the runs folder): it is read with a size cap (:data:`MAX_LESSON_BYTES`) from a regular file
that is not a symlink, must be a JSON object with known fields only, and every field is
type-checked by the rule the page itself uses (:class:`Lesson`); a bad field raises
:class:`LessonError` naming the field and the file. A name or path that comes from a request must
name a file directly inside ``<runs_dir>/lessons`` (no ``..``, no path elsewhere, no symlink); a
path the user typed on the command line (``--lesson FILE``) may be anywhere.

No gradio here (floors: ui -> training -> summarizer).
"""
from __future__ import annotations

import errno
import json
import os
import re
import threading
import time
import unicodedata
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path

import datasets

from summarizer.data import SPLITS, is_hub_id
from summarizer.inference.ct2_engine import COMPUTE_TYPES
from summarizer.inference.generation import GenerationSettings
from summarizer.inference.model_sources import check_kind, check_weights, resolve_source
from summarizer.inference.slot_config import ADAPTER_SLOTS, SLOTS, SlotError
from summarizer.inference.slots import BACKENDS
from summarizer.preflight import offline as hub_offline
from summarizer.prompt_lab.templates import MAX_TEMPLATES, check_template
from summarizer.prompts import DEFAULT_SHOTS, MAX_SHOTS, MODES
from summarizer.runs import RUN_ID_RE, read_bytes, write_json
from summarizer.runs import runs_dir as default_runs_dir
from summarizer.tasks import DEFAULT_TASK, check_task
from summarizer.text import clean_dialogue, clean_text, excerpt, parse_indices, whole_number
from summarizer.uploads import MAX_REFERENCE_CHARS, MAX_UPLOAD_DIALOGUES, UPLOADED

LESSON_VERSION = 1
LESSONS_FOLDER = "lessons"
MAX_LESSON_BYTES = 20_000_000  # an uploaded set is at most 5 MB as CSV; JSON escaping adds some
MAX_NAME_CHARS = 100
MAX_SOURCE_CHARS = 1_000  # a hub id or a folder path
MAX_EXAMPLES_CHARS = 200  # "40, 80": at most 10 numbers
MAX_ROW_NUMBER = 10_000_000  # a dialogue number; the split's real size is checked when it is loaded
MAX_LISTED = 1_000  # lesson files read by list_lessons at most
MAX_ID_CHARS = 100  # as summarizer/uploads.py
LESSON_FILE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}\.json")
_save_lock = threading.Lock()


class LessonError(ValueError):
    """A lesson cannot be saved, found or used; the message names the field or file and what to do."""


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _default_slots() -> dict:
    return {slot: None for slot in SLOTS}


@dataclass
class Lesson:
    """One saved set-up of the page. Every field is checked (and normalised) when it is made.

    Attributes:
        name: the teacher's name for it (cleaned text, 1..100 characters); shown in the list.
        slots: slot -> source for ``base``, ``full``, ``lora``, ``detox`` (hub id, model or
            adapter folder, or run folder; at most 1,000 characters). ``None`` (or ``""``) empties
            the slot; for ``base``, which cannot be empty, ``None`` keeps the base the app runs.
            A missing key is ``None``. Existence is not checked here: see :func:`missing_sources`.
        backend: the inference engine, ``torch`` or ``ct2``
            (:data:`summarizer.inference.slots.BACKENDS`).
        compute_type: CTranslate2 weights (:data:`summarizer.inference.ct2_engine.COMPUTE_TYPES`:
            ``auto``, ``int8``, ``float32``, ``int8_float16``); kept when the backend is torch.
        task: ``summary`` or ``response`` (:data:`summarizer.tasks.TASKS`).
        dialogue: the dialogue shown, or ``None``: ``{"split": "test", "number": 12}`` (a split of
            :data:`summarizer.data.SPLITS`, or ``"uploaded"`` for a row of ``uploaded``) or
            ``{"text": "#Person1#: ..."}`` (a pasted dialogue, cleaned by the app's one rule).
        uploaded: the teacher's own dialogues, or ``None``: 1..:data:`MAX_UPLOAD_DIALOGUES` rows
            ``{"id", "dialogue", "references"}`` (unique ids of at most 100 characters, cleaned
            dialogues, references a list of texts of at most 5,000 characters each); a ``topic``
            key (as :func:`summarizer.uploads.read_dialogues` rows have) is dropped.
        templates: the Prompt Lab's template boxes, at most 6 texts; each non-empty one must pass
            :func:`summarizer.prompt_lab.templates.check_template` (named T1..T6); a blank box
            is kept as ``""`` so the boxes come back in their places. Templates are not stripped.
        generation: the generation settings as a dict of
            :class:`~summarizer.inference.generation.GenerationSettings` fields; missing keys
            take their defaults, so the stored dict always has every field.
        prompt_mode: the Prompting mode, one of :data:`summarizer.prompts.MODES`.
        examples: the Prompting example numbers as typed, e.g. ``"40, 80"`` (``""``: none given);
            whole numbers, at most 10 distinct, at most 200 characters.
        shots: Prompting's "How many examples" (1..10), used when no numbers are given.
        created: ISO 8601 time it was made (default: now, with the local time zone); a time
            without a zone is read as local time.
        version: the lesson format, :data:`LESSON_VERSION` (1).

    Raises:
        LessonError: a field of the wrong type or out of range; the message names the field.
    """

    name: str
    slots: dict = field(default_factory=_default_slots)
    backend: str = "torch"
    compute_type: str = "auto"
    task: str = DEFAULT_TASK
    dialogue: dict | None = None
    uploaded: list | None = None
    templates: list = field(default_factory=list)
    generation: dict = field(default_factory=dict)
    prompt_mode: str = "zero-shot"
    examples: str = ""
    shots: int = DEFAULT_SHOTS
    created: str = field(default_factory=_now)
    version: int = LESSON_VERSION

    def __post_init__(self):
        for name, check in _CHECKS.items():  # the uploaded set before the dialogue that may point into it
            try:
                value = check(getattr(self, name), self) if name == "dialogue" else check(getattr(self, name))
            except ValueError as err:
                raise LessonError(f"field '{name}': {err}") from None
            setattr(self, name, value)

    def to_dict(self) -> dict:
        """The lesson as the JSON object of its file (every field)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data) -> Lesson:
        """A lesson from a parsed JSON object: ``name`` and ``version`` are required, other
        missing fields take their defaults, and an unknown field is refused.

        Raises:
            LessonError: not an object, a missing or unknown field, or a bad field (named).
        """
        if not isinstance(data, dict):
            raise LessonError(f"a lesson must be a JSON object of field: value, got a {_json_kind(data)}.")
        known = [f.name for f in fields(cls)]
        unknown = [str(k) for k in data if k not in known]
        if unknown:
            raise LessonError(f"unknown field(s) {', '.join(map(repr, unknown))[:200]}; known fields: "
                              f"{', '.join(known)}. Remove them, or save the lesson again from the page.")
        for required in ("name", "version"):
            if required not in data:
                raise LessonError(f"field '{required}' is missing; a lesson file needs 'name' and "
                                  f"'version' ({LESSON_VERSION}).")
        return cls(**data)


# ---- field checks (each returns the normalised value or raises ValueError) ---------------------

def _json_kind(value) -> str:
    names = {dict: "JSON object", list: "JSON list", str: "text", bool: "true/false", int: "number",
             float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _shown(value) -> str:
    """``value`` for a message: scalars shortened (:func:`summarizer.text.excerpt`); a list or an
    object only by its kind and size (the repr of a 20 MB list is slow)."""
    if isinstance(value, (list, dict)):
        return f"a {_json_kind(value)} of {len(value):,} item(s)"
    return excerpt(value)


def _whole(value, what: str, lo: int, hi: int) -> int:
    """:func:`summarizer.text.whole_number`, with a list or object refused by its kind first."""
    if isinstance(value, (list, dict)):
        raise ValueError(f"{what} must be a whole number {lo}..{hi}, got {_shown(value)}.")
    return whole_number(value, what, lo, hi)


def _text(value, what: str, limit: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        shown = _shown(value) if isinstance(value, (list, dict)) else f"a {_json_kind(value)} ({_shown(value)})"
        raise ValueError(f"{what} must be text, got {shown}.")
    cleaned = clean_text(value)
    if not cleaned and not allow_empty:
        raise ValueError(f"{what} is empty: give it some text.")
    if len(cleaned) > limit:
        raise ValueError(f"{what} has {len(cleaned):,} characters, at most {limit:,}: shorten it.")
    return cleaned


def _one_of(value, choices, what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}, got {_shown(value)}.")
    return value


def _check_name(value) -> str:
    return _text(value, "the name", MAX_NAME_CHARS)


def _check_slots(value) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object of slot: source ({', '.join(SLOTS)}), got a {_json_kind(value)}.")
    unknown = [str(k) for k in value if k not in SLOTS]
    if unknown:
        raise ValueError(f"unknown slot(s) {', '.join(map(repr, unknown))[:200]}; the slots are {', '.join(SLOTS)}.")
    out = {}
    for slot in SLOTS:
        source = value.get(slot)
        if source is None:
            out[slot] = None
            continue
        source = _text(source, f"the {slot} slot's source", MAX_SOURCE_CHARS, allow_empty=True)
        if "\n" in source:
            raise ValueError(f"the {slot} slot's source has a line break: give one hub id or folder.")
        out[slot] = source or None
    return out


def _check_backend(value) -> str:
    return _one_of(value, BACKENDS, "the inference engine")


def _check_compute_type(value) -> str:
    return _one_of(value, COMPUTE_TYPES, "the compute type")


def _check_task(value) -> str:
    return check_task(value, "the task")


def _check_dialogue(value, lesson: Lesson):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f'must be null, {{"split": ..., "number": ...}} or {{"text": ...}}, got a {_json_kind(value)}.')
    keys = set(value)
    if keys == {"text"}:
        if not isinstance(value["text"], str):
            raise ValueError(f"the pasted dialogue must be text, got a {_json_kind(value['text'])}.")
        return {"text": clean_dialogue(value["text"], what="pasted dialogue")}
    if keys != {"split", "number"}:
        raise ValueError(f'must have the keys "split" and "number", or "text" alone; got '
                         f'{", ".join(map(repr, sorted(map(str, keys))))[:200] or "none"}.')
    split = _one_of(value["split"], SPLITS + (UPLOADED,), "the split")
    if split == UPLOADED:
        # The uploaded set is checked before the dialogue (field order), so its length is known.
        if not lesson.uploaded:
            raise ValueError("names the uploaded split, but the lesson has no uploaded dialogues: "
                             "upload them again and save, or pick a DialogSum split.")
        number = _whole(value["number"], "the dialogue number", 0, len(lesson.uploaded) - 1)
    else:
        number = _whole(value["number"], "the dialogue number", 0, MAX_ROW_NUMBER)
    return {"split": split, "number": number}


def _check_uploaded(value):
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError(f"must be null or a list of dialogue rows, got a {_json_kind(value)}.")
    if not value:
        return None
    if len(value) > MAX_UPLOAD_DIALOGUES:
        raise ValueError(f"{len(value):,} dialogues, over the limit of {MAX_UPLOAD_DIALOGUES:,}.")
    rows, seen = [], set()
    for k, row in enumerate(value, 1):
        where = f"dialogue {k}"
        if not isinstance(row, dict):
            raise ValueError(f"{where} must be a JSON object with id, dialogue, references; got a {_json_kind(row)}.")
        unknown = [str(key) for key in row if key not in ("id", "dialogue", "references", "topic")]
        if unknown or "dialogue" not in row or "id" not in row:
            raise ValueError(f"{where} must have the keys id, dialogue and references (optional), got "
                             f"{', '.join(map(repr, map(str, row)))[:200] or 'none'}.")
        ident = _text(row["id"], f"{where}'s id", MAX_ID_CHARS)
        if ident in seen:
            raise ValueError(f"the id {ident!r} appears twice; give each dialogue its own id.")
        seen.add(ident)
        if not isinstance(row["dialogue"], str):
            raise ValueError(f"{where}'s dialogue must be text, got a {_json_kind(row['dialogue'])}.")
        dialogue = clean_dialogue(row["dialogue"], what=f"{where}'s dialogue")
        refs = row.get("references", [])
        if not isinstance(refs, list):
            raise ValueError(f"{where}'s references must be a list of texts, got a {_json_kind(refs)}.")
        references = [r for r in (_text(r, f"a reference of {where}", MAX_REFERENCE_CHARS, allow_empty=True)
                                  for r in refs) if r]
        rows.append({"id": ident, "dialogue": dialogue, "references": references})
    return rows


def _check_templates(value) -> list:
    if not isinstance(value, list):
        raise ValueError(f"must be a list of template texts, got a {_json_kind(value)}.")
    if len(value) > MAX_TEMPLATES:
        raise ValueError(f"{len(value)} templates, at most {MAX_TEMPLATES} (the Prompt Lab's boxes).")
    out = []
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise ValueError(f"template T{i + 1} must be text, got a {_json_kind(text)}.")
        out.append(check_template(text, f"T{i + 1}") if text.strip() else "")
    return out


def _check_generation(value) -> dict:
    return GenerationSettings.from_dict(value).to_dict()


def _check_prompt_mode(value) -> str:
    return _one_of(value, MODES, "the prompt mode")


def _check_examples(value) -> str:
    text = _text(value, "the example numbers", MAX_EXAMPLES_CHARS, allow_empty=True)
    numbers = parse_indices(text, MAX_ROW_NUMBER + 1, what="the example numbers")
    if len(set(numbers)) > MAX_SHOTS:
        raise ValueError(f"{len(set(numbers))} distinct example numbers, at most {MAX_SHOTS}.")
    return text


def _check_shots(value) -> int:
    return _whole(value, "how many examples", 1, MAX_SHOTS)


def _check_created(value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be an ISO 8601 time as text, got a {_json_kind(value)}.")
    try:
        when = datetime.fromisoformat(value.strip()[:40])
        when = when.astimezone() if when.tzinfo is None else when
        when.timestamp()  # the list sorts by it: a time it cannot place (year 1 here) is refused
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"must be an ISO 8601 time such as 2026-01-31T14:25:01+01:00, got "
                         f"{_shown(value)}.") from None
    return when.isoformat(timespec="seconds")


def _check_version(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be the number {LESSON_VERSION}, got {_shown(value)}.")
    if value != LESSON_VERSION:
        newer = " (made by a newer version of the app: update this one)" if value > LESSON_VERSION else ""
        raise ValueError(f"lesson format {value} is not known{newer}; this app reads format {LESSON_VERSION}.")
    return value


# One check per field, in the order they run: the uploaded set before the dialogue that may name
# one of its rows.
_CHECKS = {"name": _check_name, "slots": _check_slots, "backend": _check_backend,
           "compute_type": _check_compute_type, "task": _check_task, "uploaded": _check_uploaded,
           "dialogue": _check_dialogue, "templates": _check_templates, "generation": _check_generation,
           "prompt_mode": _check_prompt_mode, "examples": _check_examples, "shots": _check_shots,
           "created": _check_created, "version": _check_version}


# ---- files ----------------------------------------------------------------------------------------

def lessons_dir(runs_dir: str | os.PathLike | None = None) -> Path:
    """``<runs_dir>/lessons`` (``runs_dir`` as :func:`summarizer.runs.runs_dir` reads it: the
    given folder, else ``$STUDIO_RUNS_DIR``, else ``./runs``)."""
    return default_runs_dir(runs_dir) / LESSONS_FOLDER


def slug(name: str) -> str:
    """The file-name part made of ``name``: ASCII letters and digits in lower case joined by ``-``,
    at most 40 characters (``"Leçon 1: greetings!"`` -> ``"lecon-1-greetings"``); ``"lesson"`` when
    nothing is left."""
    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:40].strip("-")
    return text or "lesson"


def _folder(runs_dir, create: bool) -> Path:
    """The lessons folder, refused when it is a symlink or not a folder (it holds untrusted files,
    and a planted link would move our writes elsewhere).

    Raises:
        LessonError: the folder is a symlink or a file, or cannot be made.
    """
    folder = lessons_dir(runs_dir)
    if folder.is_symlink():
        raise LessonError(f"The lessons folder {folder} is a symbolic link: lessons are kept only in a "
                          f"real folder; remove the link and move the lessons into a folder of that name.")
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise LessonError(f"The lessons folder {folder} cannot be made ({err.strerror or err}): "
                              f"check --runs-dir and its permissions.") from None
    if folder.exists() and not folder.is_dir():
        raise LessonError(f"{folder} is a file, not the lessons folder: move it away.")
    return folder


def save_lesson(lesson: Lesson, runs_dir: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Write ``lesson`` to ``<runs_dir>/lessons/<slug>-YYYYmmdd-HHMMSS.json`` (atomic) and return the path.

    The lesson is checked again first (a field changed after it was made is caught). Names are
    unique in the folder, compared without case: a lesson of the same name is refused, unless
    ``overwrite``, which writes over that lesson's file (same path).

    Raises:
        LessonError: not a :class:`Lesson`, a bad field (named), a lesson of that name exists
            (naming its file), the file would be over :data:`MAX_LESSON_BYTES`, or the folder is a
            symlink or cannot be written.
    """
    if not isinstance(lesson, Lesson):
        raise LessonError(f"save_lesson needs a Lesson, got a {type(lesson).__name__}.")
    lesson = Lesson.from_dict(lesson.to_dict())
    data = lesson.to_dict()
    size = len(json.dumps(data, indent=2, default=str).encode())
    if size > MAX_LESSON_BYTES:
        raise LessonError(f"Lesson {lesson.name!r} would be {size:,} bytes, over the limit of "
                          f"{MAX_LESSON_BYTES:,}: upload fewer or shorter dialogues and save again.")
    with _save_lock:
        folder = _folder(runs_dir, create=True)
        same = [path for name, path, _ in list_lessons(runs_dir) if name.casefold() == lesson.name.casefold()]
        if same and not overwrite:
            raise LessonError(f"A lesson named {lesson.name!r} already exists ({same[0].name}): pick "
                              f"another name, or overwrite it.")
        if same:
            path = same[0]
        else:
            stem = f"{slug(lesson.name)}-{time.strftime('%Y%m%d-%H%M%S')}"
            path, k = folder / f"{stem}.json", 2
            while path.exists() or path.is_symlink():
                path, k = folder / f"{stem}-{k}.json", k + 1
        try:
            write_json(path, data)
        except OSError as err:
            raise LessonError(f"Lesson {lesson.name!r} cannot be written to {path} "
                              f"({err.strerror or err}): check the runs folder's space and permissions.") from None
    return path


def list_lessons(runs_dir: str | os.PathLike | None = None,
                 skipped: list | None = None) -> list[tuple[str, Path, str]]:
    """``(name, path, created)`` of each readable lesson in the lessons folder, newest first.

    Only ``*.json`` files directly in the folder are read (at most :data:`MAX_LISTED`); a file
    that is not a usable lesson (not JSON, a bad field, a symlink, too big) is left out and never
    raises. When ``skipped`` is a list, ``(file name, why)`` is appended to it for each one left
    out, so the page can say so. A missing folder, or one that is a symlink, lists nothing.
    """
    folder = lessons_dir(runs_dir)
    if folder.is_symlink() or not folder.is_dir():
        if skipped is not None and folder.is_symlink():
            skipped.append((folder.name, f"the lessons folder {folder} is a symbolic link; it is not read."))
        return []
    try:
        names = sorted(p.name for p in folder.iterdir())
    except OSError:
        return []
    found = []
    for k, file_name in enumerate(n for n in names if LESSON_FILE_RE.fullmatch(n)):
        if k >= MAX_LISTED:
            if skipped is not None:
                skipped.append((file_name, f"more than {MAX_LISTED} lesson files; the rest are not read."))
            break
        try:
            lesson = _read(folder / file_name, file_name)
        except LessonError as err:
            if skipped is not None:
                skipped.append((file_name, str(err)))
            continue
        found.append((lesson.name, folder / file_name, lesson.created))
    found.sort(key=lambda item: (datetime.fromisoformat(item[2]).timestamp(), item[1].name), reverse=True)
    return found


def load_lesson(path_or_name: str | os.PathLike, runs_dir: str | os.PathLike | None = None) -> Lesson:
    """The lesson in a file, every field checked.

    With ``runs_dir`` (a name or path from a request: the page), ``path_or_name`` is a lesson's
    file name (``week-1-20260131-142501.json``), a path to a file directly in
    ``<runs_dir>/lessons`` (as :func:`list_lessons` gives), or a lesson's name (``Week 1``, no
    ``.json``, matched without case). Anything that leads elsewhere is refused: ``..``, an
    absolute or relative path outside the folder, a symlink, a lessons folder that is a symlink.

    Without ``runs_dir`` (``--lesson FILE``: the user typed it), ``path_or_name`` is any path;
    symlinks are followed. A request must never reach this form.

    Either way the file must be a regular file of at most :data:`MAX_LESSON_BYTES` bytes holding
    a JSON object of :class:`Lesson` fields.

    Raises:
        LessonError: naming the file and what is wrong: missing, outside the lessons folder, a
            symlink, not a regular file, too big, not JSON, not an object, a missing, unknown or
            bad field (named).
    """
    if isinstance(path_or_name, os.PathLike):
        path_or_name = os.fspath(path_or_name)
    if not isinstance(path_or_name, str) or not path_or_name.strip() or "\x00" in path_or_name:
        raise LessonError(f"Lesson: give a lesson's name or file name (pick one from the list), got "
                          f"{_shown(path_or_name)}.")
    text = path_or_name.strip()
    if runs_dir is None:
        path = Path(text).expanduser()
        try:
            path = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise LessonError(f"Lesson file {text} does not exist: give the path of a lesson file "
                              f"(saved ones are in {lessons_dir()}).") from None
        return _read(path, text)
    path = _inside(text, runs_dir)
    return _read(path, path.name)


def _inside(text: str, runs_dir) -> Path:
    """The file ``text`` names directly in the lessons folder (see :func:`load_lesson`).

    Raises:
        LessonError: ``..``, a path outside the folder, not a lesson file name, a symlink, or no
            lesson of that name.
    """
    folder = _folder(runs_dir, create=False)
    shown = excerpt(text, 80)
    if not text.lower().endswith(".json"):  # a lesson's name, as listed
        wanted = clean_text(text).casefold()
        for name, path, _ in list_lessons(runs_dir):
            if name.casefold() == wanted:
                return path
        raise LessonError(f"There is no lesson named {shown} in {folder}: pick one from the list "
                          f"(or give its file name, ending .json).")
    given = Path(text)
    if ".." in given.parts:
        raise LessonError(f"Lesson file {shown}: '..' is not allowed; pick a lesson from the list "
                          f"(files in {folder}).")
    if len(given.parts) == 1:
        path = folder / text
    else:
        path = given
        try:
            inside = path.parent.resolve() == folder.resolve()
        except (OSError, RuntimeError):
            inside = False
        if not inside:
            raise LessonError(f"Lesson file {shown} is outside the lessons folder {folder}: only "
                              f"lessons saved there can be opened from the page.")
    if not LESSON_FILE_RE.fullmatch(path.name):
        raise LessonError(f"Lesson file {shown}: not a lesson file name (letters, digits, '.', '_' "
                          f"and '-', ending .json); pick a lesson from the list.")
    if path.is_symlink():
        raise LessonError(f"Lesson file {path.name} is a symbolic link: lessons are read only from "
                          f"regular files in {folder}.")
    return path


def _read(path: Path, shown: str) -> Lesson:
    """The checked lesson in ``path`` (``shown`` names it in messages).

    Raises:
        LessonError: see :func:`load_lesson`.
    """
    try:
        data = read_bytes(path, MAX_LESSON_BYTES)
    except OSError as err:
        raise LessonError(f"Lesson file {shown} {_os_problem(err)}") from None
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as err:
        why = err.msg if isinstance(err, json.JSONDecodeError) else type(err).__name__
        raise LessonError(f"Lesson file {shown} is not JSON ({why}): a lesson file is the JSON "
                          f"object the app saved; save the lesson again from the page.") from None
    try:
        return Lesson.from_dict(obj)
    except LessonError as err:
        raise LessonError(f"Lesson file {shown}: {err} Fix it in the file, or save the lesson again "
                          f"from the page.") from None


def _os_problem(err: OSError) -> str:
    if err.errno == errno.ENOENT:
        return "does not exist: pick a lesson from the list."
    if err.errno == errno.ELOOP:
        return "is a symbolic link: lessons are read only from regular files."
    if err.errno == errno.EFBIG:
        return (f"is over {MAX_LESSON_BYTES:,} bytes: a lesson is much smaller (even with its "
                f"uploaded dialogues); is it the right file?")
    if err.errno in (errno.EINVAL, errno.EISDIR):
        return "is not a regular file: give a lesson's .json file."
    return f"cannot be read ({err.strerror or err})."


# ---- what a lesson needs ----------------------------------------------------------------------------

def missing_sources(lesson: Lesson, offline: bool | None = None,
                    hub_cache: str | os.PathLike | None = None) -> list[str]:
    """One message per slot source of ``lesson`` that cannot be used here, in slot order.

    * A local path (a folder, a run folder, or a hub-id-looking ``runs/x`` whose first part is a
      folder here): reported when it does not exist, is a file, is a run folder with no finished
      model, or holds the wrong kind of model for its slot (an adapter in ``full``, a full model in
      ``lora``, pickle weights the restricted unpickler refuses), by the slots' own checks
      (:mod:`summarizer.inference.model_sources`), before anything is applied.
    * A hub id (:func:`summarizer.data.is_hub_id`): the network is never asked. It is looked up in
      the local Hugging Face cache only (``hub_cache``, default huggingface_hub's own); one not
      there is reported only when ``offline`` (default: ``HF_HUB_OFFLINE``,
      :func:`summarizer.preflight.offline`), since online it is downloaded when its slot loads.

    Messages name the slot and the source and say what to do, e.g. "The lora slot's folder runs/x
    does not exist: train it again or edit the lesson."
    """
    offline = hub_offline() if offline is None else offline
    messages = []
    for slot in SLOTS:
        source = lesson.slots.get(slot)
        if source:
            message = _source_problem(slot, source, offline, hub_cache)
            if message:
                messages.append(message)
    return messages


def _source_problem(slot: str, source: str, offline: bool, hub_cache) -> str | None:
    path = Path(source).expanduser()
    if path.exists():
        try:
            resolved = resolve_source(source)
            check_kind(slot, resolved)
            check_weights(resolved)  # a pickle-only folder the restricted unpickler refuses
        except SlotError as err:
            return f"The {slot} slot's source {source}: {err} Edit the lesson, or put the right model there."
        return None
    looks_local = (not is_hub_id(source) or path.is_symlink()
                   or len(path.parts) > 1 and Path(path.parts[0]).expanduser().is_dir())
    if looks_local:
        where = "" if path.is_absolute() else f" (relative folders are read from {Path.cwd()})"
        fix = ("train it again or edit the lesson" if RUN_ID_RE.fullmatch(path.name)
               else "copy the model there or edit the lesson")
        return f"The {slot} slot's folder {source} does not exist{where}: {fix}."
    from huggingface_hub import try_to_load_from_cache

    wanted = "adapter_config.json" if slot in ADAPTER_SLOTS else "config.json"
    try:
        cached = try_to_load_from_cache(source, wanted, cache_dir=hub_cache)
    except (OSError, ValueError):  # a malformed cache entry or id: treat it as not cached
        cached = None
    if isinstance(cached, str) or not offline:
        return None
    return (f"The {slot} slot's hub model {source} is not in the Hugging Face cache and the app is "
            f"offline: download it once on a connected machine (hf download {source}), or edit the lesson.")


def uploaded_dataset(lesson: Lesson) -> datasets.Dataset | None:
    """The lesson's uploaded dialogues as the split ``uploaded`` (the columns
    :func:`summarizer.uploads.read_dialogues` gives: id, dialogue, references, topic), or None."""
    if not lesson.uploaded:
        return None
    features = datasets.Features({"id": datasets.Value("string"), "dialogue": datasets.Value("string"),
                                  "references": datasets.Sequence(datasets.Value("string")),
                                  "topic": datasets.Value("string")})
    return datasets.Dataset.from_list([{**row, "topic": UPLOADED} for row in lesson.uploaded], features=features)
