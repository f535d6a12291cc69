"""A class as the user: teacher and student logins, enforced on the server for every endpoint.

``--auth USER:PASSWORD`` is the teacher's login; ``--student-auth USER:PASSWORD`` (repeatable, or
``--student-auth-file FILE`` with one ``USER:PASSWORD`` per line) adds student logins. Without
student logins nothing here applies and every login may do everything, as before.

A student may use Prompting, Compare (the slots read-only), Toxicity, see the Prompt Lab and vote
in the Arena. The teacher's: changing slots or the engine, Train, Evaluate runs and uploads,
running the Prompt Lab, the Arena's new class session and export. :class:`Classroom` checks
``gr.Request.username`` inside **every** event function of the app (named endpoints and the
page's own events alike, since a client can call either), not only by hiding controls: the app
records which functions each tab registered (:meth:`Classroom.section`) and wraps each one whose
role is the teacher's. Page loads and timer ticks only read, so they are everyone's.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

TEACHER, STUDENT = "teacher", "student"
READ_TRIGGERS = {"load", "tick"}  # page loads and timers read state, they never change it


def parse_login(text: str, flag: str) -> tuple[str, str]:
    """``USER:PASSWORD`` -> (user, password).

    Raises:
        ValueError: no colon, or an empty user or password (the message names ``flag``).
    """
    user, sep, password = str(text).partition(":")
    if not sep or not user.strip() or not password:
        raise ValueError(f"{flag} must be USER:PASSWORD, got {text!r}.")
    return user.strip(), password


def read_logins(path: str | Path, flag: str = "--student-auth-file") -> list[tuple[str, str]]:
    """The ``USER:PASSWORD`` lines of ``path`` (blank lines and ``#`` comments skipped).

    Raises:
        ValueError: a line is not ``USER:PASSWORD`` (naming the line), or the file cannot be read.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{flag} {path}: cannot be read ({err}).") from err
    logins = []
    for number, line in enumerate(lines, 1):
        if line.strip() and not line.lstrip().startswith("#"):
            logins.append(parse_login(line.strip(), f"{flag} line {number}"))
    return logins


@dataclass
class Classroom:
    """Who may do what, and which event functions each part of the page registered.

    Attributes:
        teachers: teacher logins (user -> password).
        students: student logins (user -> password); empty = no roles (everyone may do everything).
    """

    teachers: dict[str, str] = field(default_factory=dict)
    students: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        both = set(self.teachers) & set(self.students)
        if both:
            raise ValueError(f"--student-auth: {', '.join(sorted(both))} is also the teacher's login; "
                             f"give students other user names.")

    @property
    def enabled(self) -> bool:
        return bool(self.students)

    def auth(self) -> list[tuple[str, str]] | None:
        """Every login for ``launch(auth=...)``, or None for no login."""
        logins = [*self.teachers.items(), *self.students.items()]
        return logins or None

    def role_of(self, user: str | None) -> str:
        """``teacher`` or ``student``; without roles everyone is the teacher."""
        if not self.enabled:
            return TEACHER
        return STUDENT if user in self.students else TEACHER if user in self.teachers else STUDENT

    @contextlib.contextmanager
    def section(self, demo: gr.Blocks, name: str, student: bool = True, teacher_fns: set[str] = frozenset()):
        """Mark the event functions registered inside the block.

        Args:
            demo: the Blocks being built.
            name: what the part is called in a refusal ("the Train tab").
            student: whether students may use the part's functions at all.
            teacher_fns: function names (``fn.__name__``) in the part that only the teacher may call.
        """
        before = set(demo.fns)
        yield
        for key in set(demo.fns) - before:
            block_fn = demo.fns[key]
            fn_name = getattr(block_fn.fn, "__name__", "")
            reads = {t[1] for t in block_fn.targets} <= READ_TRIGGERS and block_fn.targets
            if block_fn.fn is not None and not reads and (not student or fn_name in teacher_fns):
                self._teacher_only(block_fn, name)

    def teachers_tab_note(self, tab: str) -> gr.Markdown:
        """A note, shown only on a student's page, in a tab whose contents are the teacher's
        (Gradio keeps a tab's button when the tab is hidden, so the tab says why it is empty)."""
        return gr.Markdown(f"The {tab} tab is the teacher's: log in with the teacher's login to use it.",
                           visible=False)

    def hide_from_students(self, demo: gr.Blocks, components: list, notes: list = ()) -> None:
        """On every page load, hide ``components`` (the teacher's controls) from a student's page
        and show ``notes`` there instead. Only the view: the server refuses their functions to
        students whether shown or not."""
        if not self.enabled:
            return

        def show_by_role(request: gr.Request):
            teacher = self.role_of(request.username) == TEACHER
            return [gr.update(visible=teacher)] * len(components) + [gr.update(visible=not teacher)] * len(notes)

        demo.load(show_by_role, None, [*components, *notes], api_visibility="private")

    def _teacher_only(self, block_fn, part: str) -> None:
        if self.enabled:
            block_fn.fn = _guarded(block_fn.fn, self, f"{block_fn.api_name or block_fn.fn.__name__} ({part})")

    def refusal(self, request: gr.Request | None, action: str) -> str | None:
        """The message refusing ``action`` to this request's login, or None when it may."""
        user = getattr(request, "username", None)
        if self.role_of(user) == TEACHER:
            return None
        return (f"{action} needs the teacher's login: you are logged in as the student {user!r}. "
                f"Ask your teacher to do it.")


def _guarded(fn, classroom: Classroom, action: str):
    """``fn`` with a check of the caller's role first; Gradio passes it the request."""
    sig = inspect.signature(fn)
    own = next((p.name for p in sig.parameters.values()
                if p.annotation is gr.Request or "Request" in str(p.annotation)), None)
    params = list(sig.parameters.values())
    at = len(params)
    if own is None:  # add a request parameter Gradio fills, after the positional inputs (and progress)
        at = next((k for k, p in enumerate(params) if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)),
                  len(params))
        params.insert(at, inspect.Parameter("_request", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                            default=None, annotation=gr.Request))

    def check(args, kwargs):
        request = inspect.Signature(params).bind(*args, **kwargs).arguments.get(own or "_request")
        message = classroom.refusal(request, action)
        if message:
            raise gr.Error(message, print_exception=False)
        if own is None:  # take out the request Gradio put in for this check (at its position)
            args = args[:at] + args[at + 1:] if len(args) > at else args
            kwargs = {k: v for k, v in kwargs.items() if k != "_request"}
        return args, kwargs

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            args, kwargs = check(args, kwargs)
            yield from fn(*args, **kwargs)
    else:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            args, kwargs = check(args, kwargs)
            return fn(*args, **kwargs)
    wrapper.__signature__ = sig.replace(parameters=params)
    wrapper.__annotations__ = {**getattr(fn, "__annotations__", {}), **({} if own else {"_request": gr.Request})}
    return wrapper


class SessionLimit:
    """At most ``limit`` model requests of one browser (or API client) session at a time.

    One student cannot queue 100 Compares ahead of the class. Keyed by Gradio's ``session_hash``,
    never by IP: a classroom shares one address.
    """

    def __init__(self, limit: int = 2):
        self.limit, self._lock, self._counts = limit, threading.Lock(), {}

    @contextlib.contextmanager
    def admit(self, request: gr.Request | None):
        """Count this request for its session while the block runs.

        Raises:
            gr.Error: the session already has ``limit`` requests running or waiting.
        """
        key = getattr(request, "session_hash", None) or "api"
        with self._lock:
            if self._counts.get(key, 0) >= self.limit:
                raise gr.Error(f"You already have {self.limit} requests running or waiting; wait for "
                               f"them to finish, then try again.", print_exception=False)
            self._counts[key] = self._counts.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._counts[key] -= 1
                if not self._counts[key]:
                    del self._counts[key]
