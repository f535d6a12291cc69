"""A class as the user: teacher and student logins, enforced on the server for every endpoint.

``--auth USER:PASSWORD`` is the teacher's login; ``--student-auth USER:PASSWORD`` (repeatable, or
``--student-auth-file FILE`` with one ``USER:PASSWORD`` per line) adds student logins. Without
student logins nothing here applies and every login may do everything, as before.

A student may use Prompting, Compare (the slots read-only), Toxicity, see the Prompt Lab and vote
in the Arena. The teacher's: changing slots or the engine, Train, Evaluate runs and uploads,
running the Prompt Lab, the Arena's rounds and export, the Class view. Each event function says
which it is where it is defined (``@teacher_only`` / ``@for_students``, :mod:`ui.access`);
:meth:`Classroom.guard` wraps **every** event of the built app by its mark (named endpoints and
the page's own events alike, since a client can call either, by name or by ``fn_index``), and an
unmarked one fails the build. The login (``gr.Request.username``) is the identity: the session
id a client sends decides nothing.
"""
from __future__ import annotations

import contextlib
import functools
import http.cookies
import inspect
import os
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from ui.access import STUDENT, TEACHER, access_of, for_students

# Triggers a student does not fire by a click of their own: a page load, a timer, a value that another
# event (a lesson, a restore) changed, a chained step. A teacher-only function they trigger for a
# student returns no update, silently; a click, submit, upload or API call is refused by name.
QUIET_TRIGGERS = {"load", "tick", "change", "input", "select", "then", "success", "failure"}


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
    files: "TeacherFiles" = field(default_factory=lambda: TeacherFiles(), repr=False)

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

    def guard(self, demo: gr.Blocks, activity=None) -> None:
        """Wrap every event function of ``demo`` by the mark on its definition (:mod:`ui.access`).

        Call once, after the whole page is built. Deny by default: a function with no mark makes
        the build fail. A teacher-only function called by a student is refused with a message
        naming it, except when a page load, a timer or another event (not the student's own click)
        triggered it: then it returns no update at all, and no toast. ``activity`` (a
        :class:`ui.class_activity.ClassActivity`) records who called what, for the Class view.

        Raises:
            ValueError: an event function has no mark (the message names it and its module).
        """
        unmarked = [f"{getattr(b.fn, '__module__', '?')}.{getattr(b.fn, '__qualname__', b.fn)}"
                    for b in demo.fns.values() if b.fn is not None and access_of(b.fn) is None]
        if unmarked:
            raise ValueError("Every event function needs a permission mark (@teacher_only or @for_students "
                             f"from ui.access) where it is defined; unmarked: {', '.join(sorted(set(unmarked)))}.")
        for block_fn in demo.fns.values():
            if block_fn.fn is not None and not getattr(block_fn.fn, "__studio_guarded__", False):
                quiet = bool(block_fn.targets) and {t[1] for t in block_fn.targets} <= QUIET_TRIGGERS
                block_fn.fn = _guarded(block_fn.fn, self, access_of(block_fn.fn), block_fn.api_name or
                                       block_fn.fn.__name__, quiet, len(block_fn.outputs), activity)

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

        @for_students
        def show_by_role(request: gr.Request):
            teacher = self.role_of(request.username) == TEACHER
            return [gr.update(visible=teacher)] * len(components) + [gr.update(visible=not teacher)] * len(notes)

        demo.load(show_by_role, None, [*components, *notes], api_visibility="private")

    def refusal(self, request: gr.Request | None, action: str) -> str | None:
        """The message refusing ``action`` to this request's login, or None when it may."""
        user = getattr(request, "username", None)
        if self.role_of(user) == TEACHER:
            return None
        return (f"{action} needs the teacher's login: you are logged in as the student {user!r}. "
                f"Ask your teacher to do it.")


def _guarded(fn, classroom: Classroom, access: str, action: str, quiet: bool, n_outputs: int, activity=None):
    """``fn`` with the caller's role checked first (and the call noted in ``activity``).

    Gradio fills a ``gr.Request`` parameter by its annotation: ``fn``'s own, or one added here
    (after the positional inputs) and taken out again before ``fn`` is called.
    """
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
    bound_sig = inspect.Signature(params)
    nothing = None if n_outputs == 0 else gr.skip() if n_outputs == 1 else tuple(gr.skip() for _ in range(n_outputs))

    def check(args, kwargs):
        """(allowed, args, kwargs): False when a student triggered a teacher-only read (no update)."""
        arguments = bound_sig.bind(*args, **kwargs).arguments
        request = arguments.get(own or "_request")
        if activity is not None:
            activity.seen(request, action)
        if access != STUDENT:
            message = classroom.refusal(request, action)
            if message and quiet:
                return False, args, kwargs
            if message:
                raise gr.Error(message, print_exception=False)
            classroom.files.record(list(arguments.values()))  # an upload's cached path is the teacher's
        if own is None:  # take out the request Gradio put in for this check (at its position)
            args = args[:at] + args[at + 1:] if len(args) > at else args
            kwargs = {k: v for k, v in kwargs.items() if k != "_request"}
        return True, args, kwargs

    owned = classroom.files.record if access != STUDENT else (lambda out: out)  # files it returns are the teacher's

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            allowed, args, kwargs = check(args, kwargs)
            if not allowed:
                yield nothing
                return
            for out in fn(*args, **kwargs):
                yield owned(out)
    else:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            allowed, args, kwargs = check(args, kwargs)
            return owned(fn(*args, **kwargs)) if allowed else nothing
    wrapper.__signature__ = sig.replace(parameters=params)
    wrapper.__annotations__ = {**getattr(fn, "__annotations__", {}), **({} if own else {"_request": gr.Request})}
    wrapper.__studio_guarded__ = True
    return wrapper


class TeacherFiles:
    """The files that teacher-only functions read or returned (uploads, exports, results).

    Gradio serves every file it cached to any logged-in user who knows its path
    (``/gradio_api/file=...``); :class:`TeacherFilesGate` asks :meth:`owns` and answers 403 to a
    student. An upload is known by its cached path; a returned file by its name, because
    Gradio copies it into its cache (``<cache>/<hash>/<name>``) after the function returns, and
    our exports carry a time stamp or run id in their names.
    """

    MAX_PATH_CHARS = 4096

    def __init__(self):
        self._lock, self._paths, self._names = threading.Lock(), set(), set()

    def record(self, value):
        """Note every existing file path among ``value`` (a str, or lists, tuples and dicts of them,
        as event functions take and return); returns ``value`` unchanged."""
        found, stack = [], [value]
        while stack:
            item = stack.pop()
            if isinstance(item, (list, tuple)):
                stack.extend(item)
            elif isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, str) and 0 < len(item) < self.MAX_PATH_CHARS and "\n" not in item:
                with contextlib.suppress(OSError, ValueError):
                    if os.path.isfile(item):
                        found.append(os.path.realpath(item))
        if found:
            with self._lock:
                self._paths.update(found)
                self._names.update(os.path.basename(p) for p in found)
        return value

    def owns(self, path: str) -> bool:
        """Whether ``path`` (as a file URL names it) is one of the teacher's files."""
        with self._lock:
            if not self._paths:
                return False
            with contextlib.suppress(OSError, ValueError):
                if os.path.realpath(path) in self._paths:
                    return True
            return os.path.basename(path) in self._names


class TeacherFilesGate:
    """ASGI middleware: a student's request for one of the teacher's files gets 403.

    Args:
        app: the ASGI app it wraps (Gradio's FastAPI app; Starlette passes it).
        classroom: whose logins are students and which files are the teacher's.

    Reads the login as Gradio's own ``/user`` route does: the ``access-token`` cookie looked up
    in the app's token table.
    """

    FILE_ROUTES = ("/gradio_api/file=", "/file=")

    def __init__(self, app, classroom: Classroom):
        self.app, self.classroom = app, classroom

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.classroom.enabled:
            path = urllib.parse.unquote(scope.get("path", ""))
            route = next((r for r in self.FILE_ROUTES if path.startswith(r)), None)
            if route and self.classroom.files.owns(path[len(route):]) \
                    and self.classroom.role_of(self._user(scope)) != TEACHER:
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
                await send({"type": "http.response.body",
                            "body": b"This file is the teacher's: log in with the teacher's login to download it."})
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _user(scope) -> str | None:
        app = scope.get("app")
        cookies = http.cookies.SimpleCookie()
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                with contextlib.suppress(http.cookies.CookieError):
                    cookies.load(value.decode("latin-1"))
        cookie_id = getattr(app, "cookie_id", "")
        for key in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
            if key in cookies:
                return getattr(app, "tokens", {}).get(cookies[key].value)
        return None


def identity_of(request: gr.Request | None) -> str:
    """Who is asking: the login (``gr.Request.username``) when the app has logins, else the
    browser (or API client) session, ``"api"`` when there is neither. A client picks its
    session id, so with logins it never decides whose requests, pairs or votes it gets."""
    user = getattr(request, "username", None)
    if user:
        return f"login:{user}"
    return f"session:{getattr(request, 'session_hash', None) or 'api'}"


class SessionLimit:
    """At most ``limit`` model requests of one person at a time, waiting or running.

    One student cannot queue 100 Compares ahead of the class. Keyed by :func:`identity_of`: the
    login across all of one student's tabs and session ids (the session only without logins),
    never by IP: a classroom shares one address.
    """

    def __init__(self, limit: int = 2):
        self.limit, self._lock, self._counts = limit, threading.Lock(), {}

    @contextlib.contextmanager
    def admit(self, request: gr.Request | None):
        """Count this request for its login (or session) while the block runs.

        Raises:
            gr.Error: this login (or session) already has ``limit`` requests running or waiting.
        """
        key = identity_of(request)
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

    def in_flight(self) -> dict[str, int]:
        """``{identity: requests now running or waiting}`` (see :func:`identity_of`)."""
        with self._lock:
            return dict(self._counts)
