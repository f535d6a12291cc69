"""Class tab (the teacher's): who is logged in now, what each student asked, the Arena round as it
comes in, and a CSV of it all; a ``gr.Timer`` refreshes it every :data:`REFRESH_S` seconds.

Presence comes from :class:`ui.class_activity.ClassActivity` (every event of a login, including
each student page's poll for the teacher's set-up, ``ui.send_to_class``); requests in flight from
the per-login cap (:class:`ui.classroom.SessionLimit`); the Arena's columns from its store, so
they are the store's own counts.
"""
from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from summarizer.text import spreadsheet_safe
from ui.access import teacher_only
from ui.context import Studio

REFRESH_S = 3.0  # the view's timer
HERE_S = 30.0  # seen within this many seconds = here now (a student page polls every few seconds)
PEOPLE_COLUMNS = ("login", "role", "here now", "last seen", "requests in flight", "Summarize", "Compare",
                  "last dialogue")
STUDENT_COLUMNS = ("login", "pairs served", "votes", "ratings")
PAIR_COLUMNS = ("pair", "login", "dialogue id", "models (A / B)", "vote", "ratings")
CSV_COLUMNS = (*PEOPLE_COLUMNS, *STUDENT_COLUMNS[1:])


def _ago(seconds: float) -> str:
    return "never" if seconds is None else f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def people_rows(studio: Studio, now: float | None = None) -> list[list]:
    """One row per login (every configured login, then anyone else seen), in :data:`PEOPLE_COLUMNS`
    order: login, role, here now (yes/no), last seen, requests in flight, Summarize and Compare
    requests, the last dialogue's first characters."""
    now = time.time() if now is None else now
    room, seen = studio.classroom, {p.login: p for p in studio.activity.people()}
    flight = studio.limit.in_flight()
    logins = [*room.teachers, *room.students, *(login for login in seen if login not in room.teachers
                                                and login not in room.students)]
    rows = []
    for login in logins:
        person = seen.get(login)
        ago = now - person.last_seen if person else None
        rows.append([login, room.role_of(login), "yes" if ago is not None and ago <= HERE_S else "no", _ago(ago),
                     flight.get(f"login:{login}", 0), person.asked["summarize"] if person else 0,
                     person.asked["compare"] if person else 0, person.last_dialogue if person else ""])
    return rows


def arena_rows(store) -> tuple[list[list], list[list], dict]:
    """The current Arena class session: per login (pairs served, votes, ratings), per served pair
    (short id, login, dialogue id, models, vote, ratings given), and the session itself."""
    klass = store.current_class()
    served, votes, ratings = store.served(klass["id"]), store.votes(klass["id"]), store.ratings(klass["id"])
    vote_of = {v["pair_id"]: v["vote"] for v in votes}
    rated = {}
    for r in ratings:
        rated.setdefault(r["pair_id"], []).append(r["side"])
    logins = sorted({p["login"] or "(no login)" for p in served})
    per_student = [[login, sum(1 for p in served if (p["login"] or "(no login)") == login),
                    sum(1 for v in votes if (v["login"] or "(no login)") == login),
                    sum(1 for r in ratings if (r["login"] or "(no login)") == login)] for login in logins]
    per_pair = [[p["pair_id"][:8], p["login"] or "(no login)", p["dialogue_id"], f"{p['model_a']} / {p['model_b']}",
                 vote_of.get(p["pair_id"], ""), ", ".join(sorted(rated.get(p["pair_id"], [])))] for p in served]
    return per_student, per_pair[::-1], klass  # newest pair first: a round's progress reads at the top


def class_csv(studio: Studio, store, folder: Path | None = None) -> Path:
    """Write :data:`CSV_COLUMNS`, one row per login (presence, requests, the Arena counts of the
    current class session), to a new file in ``folder`` (default: a new private temp folder)."""
    per_student = {row[0]: row[1:] for row in arena_rows(store)[0]}
    folder = Path(folder or tempfile.mkdtemp(prefix="class-export-"))
    out = folder / f"class-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for row in people_rows(studio):
            writer.writerow([spreadsheet_safe(x) for x in (*row, *per_student.get(row[0], (0, 0, 0)))])
    return out


def build(studio: Studio, arena_api) -> dict:
    """The Class tab's contents (call inside its ``gr.Tab``); ``arena_api`` is the Arena tab's
    :class:`ui.arena.ArenaEndpoints` (its store). Returns ``{"load": page-load hook}``, which
    starts the timer on the teacher's page (a student's page gets nothing, ui.classroom)."""
    gr.Markdown("Who is here and what each student asked, live. *Here now*: seen in the last "
                f"{HERE_S:.0f} s (an open page checks in every few seconds). The Arena columns count the "
                "current class session, as its store has them.")
    caption = gr.Markdown(elem_id="class-caption")
    people = gr.Dataframe(headers=list(PEOPLE_COLUMNS), interactive=False, wrap=True, label="Logins",
                          elem_id="class-people",  # the counts' headers whole on a 1400 px projector
                          column_widths=["9%", "8%", "7%", "8%", "9%", "10%", "9%", "40%"])
    with gr.Row():
        students = gr.Dataframe(headers=list(STUDENT_COLUMNS), interactive=False, label="Arena round: per student",
                                elem_id="class-arena-students", scale=2)
        pairs = gr.Dataframe(headers=list(PAIR_COLUMNS), interactive=False, wrap=True, max_height=400,
                             label="Arena round: per pair, newest first", elem_id="class-arena-pairs", scale=3)
    with gr.Row():
        export = gr.Button("Export as CSV", elem_id="class-export", scale=0)
        file = gr.File(label="Class CSV", interactive=False, elem_id="class-export-file")
    timer = gr.Timer(REFRESH_S, active=False)

    @teacher_only
    def refresh():
        """Reads the activity, the cap's counts and the Arena store; updates the caption and tables."""
        per_student, per_pair, klass = arena_rows(arena_api.store)
        rows = people_rows(studio)
        here = sum(1 for r in rows if r[2] == "yes" and r[1] == "student")
        return (f"**{here} of {len(studio.classroom.students)} students here now**; Arena class session "
                f"*{klass['name']}*: {sum(r[2] for r in per_student)} votes, {sum(r[3] for r in per_student)} ratings.",
                pd.DataFrame(rows, columns=list(PEOPLE_COLUMNS)),
                pd.DataFrame(per_student, columns=list(STUDENT_COLUMNS)),
                pd.DataFrame(per_pair, columns=list(PAIR_COLUMNS)))

    @teacher_only
    def start():
        """Page load (the teacher's): the tables now, and the timer on."""
        return (*refresh(), gr.Timer(active=True))

    @teacher_only
    def export_clicked():
        """Writes the class CSV; updates the file."""
        return str(class_csv(studio, arena_api.store))

    outputs = [caption, people, students, pairs]
    timer.tick(refresh, None, outputs, api_visibility="private", show_progress="hidden")
    export.click(export_clicked, None, file, api_name="class_export")
    gr.api(refresh_api(studio, arena_api), api_name="class_view")
    return {"load": dict(fn=start, inputs=None, outputs=[*outputs, timer])}


def refresh_api(studio: Studio, arena_api):
    """The ``/class_view`` endpoint (the teacher's): the Class view as JSON."""
    @teacher_only
    def class_view() -> dict:
        """{"people": rows of PEOPLE_COLUMNS as objects, "arena_students": rows of STUDENT_COLUMNS,
        "arena_pairs": rows of PAIR_COLUMNS, "class_session": the current Arena class session}."""
        per_student, per_pair, klass = arena_rows(arena_api.store)
        return {"people": [dict(zip(PEOPLE_COLUMNS, r)) for r in people_rows(studio)],
                "arena_students": [dict(zip(STUDENT_COLUMNS, r)) for r in per_student],
                "arena_pairs": [dict(zip(PAIR_COLUMNS, r)) for r in per_pair], "class_session": klass}
    return class_view
