"""Send to the class: the teacher's Prompting set-up appears on every open student page, now.

The teacher's button (and a lesson opened mid-lesson, :mod:`ui.lessons`) publishes the page's
values in :class:`ui.class_activity.ClassBroadcast`. Each student page polls it with a
``gr.Timer`` every :data:`POLL_S` seconds, remembering in a ``gr.State`` the version it has
shown; a newer one fills its fields once (no reload), and the student may edit them afterwards.
A page opened after a send gets the newest set-up at its first poll. The poll is also how the
Class view knows who is here (:mod:`ui.class_view`).
"""
from __future__ import annotations

import gradio as gr

from ui.access import for_students, teacher_only
from ui.common import shown_where
from ui.context import Studio
from ui.lessons import WHERE_FIELDS

POLL_S = 3.0
POLL_QUEUE, POLL_CONCURRENCY = "class-poll", 8  # cheap reads, off the model and store queues


def layout() -> dict:
    """The teacher's button and its status line (place them in the Prompting tab)."""
    with gr.Row() as box:
        button = gr.Button("Send this set-up to the class", elem_id="send-to-class", scale=0, min_width=260)
        status = gr.Markdown(elem_id="send-to-class-status")
    return {"box": box, "button": button, "status": status}


def wire(studio: Studio, demo: gr.Blocks, view: dict, fields: dict, sent: list[str]) -> None:
    """Connect the button and every page's poll.

    Args:
        fields: field name -> component that a sent set-up may fill (the Prompting fields, the
            task, a lesson's Prompt Lab templates); values are published under these names.
        sent: the names the button reads (the Prompting set-up), in order; it also sends the
            split, number, reference box and "Loaded" line of a dialogue that is a DialogSum or
            uploaded row (:func:`ui.common.shown_where`), when ``fields`` has them.
    """
    names = list(fields)
    seen = gr.State(0)  # the version this page has shown
    timer = gr.Timer(POLL_S, active=False)

    @teacher_only
    def send_clicked(*values):
        """Reads the Prompting set-up; publishes it to every student page; updates the status line."""
        setup = dict(zip(sent, values))
        where = shown_where(studio, setup.get("dialogue"), setup.get("task"))
        setup.update(zip(WHERE_FIELDS, where or (gr.skip(), gr.skip(), "", "pasted (no reference)")))
        version = studio.broadcast.publish({k: v for k, v in setup.items() if k in fields and not isinstance(v, dict)})
        n = len(studio.classroom.students)
        return (f"Sent (set-up {version}) to every open student page{f' ({n} student logins)' if n else ''}; "
                "each shows it within a few seconds, and students may edit it afterwards.")

    @for_students
    def poll(shown):
        """Timer: the newest set-up if this page has not shown it (else no update at all)."""
        newer = studio.broadcast.newer_than(shown)
        if newer is None:
            return (gr.skip(),) * (len(names) + 1)
        version, values = newer
        return (version, *(values[n] if n in values else gr.skip() for n in names))

    @for_students
    def start_polling(request: gr.Request):
        """Page load: a student's page polls (every page does when the app has no logins)."""
        room = studio.classroom
        return gr.Timer(active=not room.enabled or room.role_of(request.username) != "teacher")

    view["button"].click(send_clicked, [fields[n] for n in sent], view["status"], api_name="send_to_class")
    timer.tick(poll, seen, [seen, *fields.values()], api_visibility="private", show_progress="hidden",
               concurrency_id=POLL_QUEUE, concurrency_limit=POLL_CONCURRENCY)
    demo.load(start_polling, None, timer, api_visibility="private")
