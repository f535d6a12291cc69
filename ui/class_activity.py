"""What the class is doing now, for the teacher's Class view: who is logged in, what each asked,
and the set-up the teacher sent to every student page (:class:`ClassBroadcast`).

:class:`ClassActivity` is told of every event call (by :meth:`ui.classroom.Classroom.guard`,
which sees every request) and of every Summarize and Compare (by their handlers, with the
dialogue). It keeps only the latest state in memory, per login: a restart starts it empty
(the Arena's votes and ratings, which are the class's work, live in the Arena's SQLite store).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

ASKED = ("summarize", "compare")  # the requests the Class view counts per student
DIALOGUE_CHARS = 80  # the last dialogue, as its first characters (a projector row)


@dataclass
class Person:
    """One login's activity: ``last_seen`` (Unix seconds), its request counts by kind, the
    first :data:`DIALOGUE_CHARS` characters of the last dialogue it asked about."""

    login: str
    last_seen: float = 0.0
    asked: dict = field(default_factory=lambda: dict.fromkeys(ASKED, 0))
    last_dialogue: str = ""


def login_of(request) -> str:
    """The request's login, or ``""`` when the app has no logins (anonymous tabs are not listed)."""
    return getattr(request, "username", None) or ""


class ClassActivity:
    """Thread-safe record of each login's last event and of its Summarize/Compare requests."""

    def __init__(self, clock=time.time):
        self._clock, self._lock, self._people = clock, threading.Lock(), {}

    def _person(self, login: str) -> Person:
        return self._people.setdefault(login, Person(login))

    def seen(self, request, action: str = "") -> None:
        """Note that ``request``'s login called something now (``action`` is its name; unused
        beyond the time, so a page load counts as being here)."""
        login = login_of(request)
        if login:
            with self._lock:
                self._person(login).last_seen = self._clock()

    def asked(self, request, kind: str, dialogue: str) -> None:
        """Count one ``kind`` request (``"summarize"`` or ``"compare"``) and keep its dialogue.

        Raises:
            ValueError: ``kind`` is not one of :data:`ASKED`.
        """
        if kind not in ASKED:
            raise ValueError(f"kind must be one of {', '.join(ASKED)}; got {kind!r}.")
        login = login_of(request)
        if not login:
            return
        text = " ".join(str(dialogue or "").split())
        with self._lock:
            person = self._person(login)
            person.asked[kind] += 1
            person.last_dialogue = text[:DIALOGUE_CHARS] + ("…" if len(text) > DIALOGUE_CHARS else "")
            person.last_seen = self._clock()

    def people(self) -> list[Person]:
        """A copy of every login seen so far, the most recently seen first."""
        with self._lock:
            copies = [Person(p.login, p.last_seen, dict(p.asked), p.last_dialogue) for p in self._people.values()]
        return sorted(copies, key=lambda p: -p.last_seen)


class ClassBroadcast:
    """The set-up the teacher last sent to the class: a version and the page's values by field.

    Every student page polls it (a ``gr.Timer``) with the version it has shown; a newer version
    fills its fields once, and the student may edit them afterwards.
    """

    def __init__(self):
        self._lock, self.version, self._values = threading.Lock(), 0, {}

    def publish(self, values: dict) -> int:
        """Make ``values`` (field name -> value) the class's set-up; returns its new version."""
        with self._lock:
            self.version += 1
            self._values = dict(values)
            return self.version

    def newer_than(self, seen) -> tuple[int, dict] | None:
        """(version, values) when a set-up newer than version ``seen`` was sent, else None
        (also for a ``seen`` that is not a whole number: a page shows the newest once)."""
        seen = seen if isinstance(seen, int) and not isinstance(seen, bool) else -1
        with self._lock:
            return (self.version, dict(self._values)) if self.version > max(seen, 0) else None
