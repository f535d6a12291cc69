"""Who may call an event function, declared where the function is defined.

Every function the page registers as an event (``.click``, ``.change``, ``demo.load``, a timer's
``.tick``...) carries one mark, put on its ``def`` line::

    @teacher_only
    def apply_clicked(...): ...

    @for_students
    def summarize(...): ...

``teacher_only``: changes what the whole class sees or uses (slots, engine, runs, uploads,
lessons, the Arena's rounds) or reads the teacher's data (runs, logs, exports).
``for_students``: everyone logged in may call it (students and the teacher).

:func:`ui.classroom.Classroom.guard` reads the marks once, after the app is built, and wraps
every event: deny by default, so an unmarked function makes the build fail with its name.
"""
from __future__ import annotations

TEACHER, STUDENT = "teacher", "student"
_MARK = "__studio_access__"


def teacher_only(fn):
    """Mark ``fn`` (an event function) as the teacher's; returns ``fn`` itself."""
    setattr(fn, _MARK, TEACHER)
    return fn


def for_students(fn):
    """Mark ``fn`` (an event function) as everyone's, students included; returns ``fn`` itself."""
    setattr(fn, _MARK, STUDENT)
    return fn


def access_of(fn) -> str | None:
    """``"teacher"``, ``"student"``, or None for a function with no mark."""
    return getattr(fn, _MARK, None)


def roles_table(demo) -> str:
    """The Markdown table of a built page's named endpoints (its public API): endpoint, who may
    call it, and the first line of its function's docstring; one row per endpoint, sorted.
    ``docs/classroom.md`` holds this table, and a test checks it equals the marks of the app."""
    rows = {}
    for block_fn in demo.fns.values():
        if block_fn.fn is None or not block_fn.api_name or block_fn.api_visibility != "public":
            continue
        role = {TEACHER: "teacher", STUDENT: "students and teacher"}.get(access_of(block_fn.fn), "unmarked")
        paragraph = " ".join((block_fn.fn.__doc__ or "").strip().split("\n\n")[0].split())
        sentence = paragraph.split(". ")[0].split("; ")[0].rstrip(".")  # the first clause says it
        rows[block_fn.api_name] = (role, sentence.replace("|", "\\|"))
    lines = ["| Endpoint | Who may call it | What it does |", "|---|---|---|"]
    lines += [f"| `/{name}` | {role} | {doc} |" for name, (role, doc) in sorted(rows.items())]
    return "\n".join(lines)
