"""The teacher's own dialogues: a CSV or JSONL upload that becomes the split ``uploaded``.

``panel(studio)`` adds the upload under the Prompting tab's dialogue picker; the endpoint
``/upload_dialogues`` (file -> a status line) is the teacher's (:mod:`ui.classroom`). The file is
checked as untrusted input by :func:`summarizer.uploads.read_dialogues`; once read, the split
``uploaded`` serves Prompting and Compare (Split: uploaded), Evaluate and the Prompt Lab.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from summarizer.uploads import MAX_UPLOAD_BYTES, MAX_UPLOAD_DIALOGUES, UPLOADED, UploadError, read_dialogues
from ui.access import teacher_only
from ui.common import user_errors
from ui.context import Studio

HELP = (f"One dialogue per row (CSV) or line (JSONL) in a column **dialogue**; optional **id** and references "
        f"**summary** or **summary1**, **summary2**, ... At most {MAX_UPLOAD_DIALOGUES:,} dialogues and "
        f"{MAX_UPLOAD_BYTES // 1_000_000} MB, UTF-8. They become the split **{UPLOADED}** for every tab "
        f"and every student, until the next upload or a restart.")


def upload_dialogues(studio: Studio, path: str | None) -> str:
    """Read the file at ``path`` into the ``uploaded`` split; returns a status line.

    Raises:
        gr.Error: no file, too big, or any :class:`~summarizer.uploads.UploadError` (naming the row
            or column); the previous upload stays in use.
    """
    with user_errors((UploadError, OSError)):
        if not path:
            raise UploadError("Dialogues file: choose a .csv or .jsonl file first.")
        size = Path(path).stat().st_size
        if size > MAX_UPLOAD_BYTES:  # before reading it into memory
            raise UploadError(f"Dialogues file: {size:,} bytes, over the limit of {MAX_UPLOAD_BYTES:,}.")
        rows = read_dialogues(Path(path).read_bytes(), Path(path).name)
    studio.set_uploaded(rows)
    with_refs = sum(1 for refs in rows["references"] if refs)
    return (f"**{len(rows)} dialogues** uploaded ({with_refs} with reference summaries): choose the split "
            f"**{UPLOADED}**.")


def panel(studio: Studio) -> dict:
    """The upload accordion; returns ``{"box": the accordion (teacher only)}``."""
    with gr.Accordion("Your own dialogues (teacher): upload a CSV or JSONL file", open=False) as box:
        gr.Markdown(HELP)
        with gr.Row():
            file = gr.File(label="Dialogues file", file_types=[".csv", ".jsonl", ".json"], type="filepath",
                           elem_id="upload-dialogues-file", scale=2)
            status = gr.Markdown(elem_id="upload-dialogues-status")

    @teacher_only
    def upload_clicked(path):
        """Reads the file; updates the status line (the split ``uploaded`` changes for everyone)."""
        return upload_dialogues(studio, path)

    file.upload(upload_clicked, file, status, api_name="upload_dialogues")
    return {"box": box}
