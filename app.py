"""Dialogue Summarization Studio: see how FLAN-T5 summarizes conversations and how fine-tuning changes it.

Run ``python app.py --help`` for options. By default the app listens on 127.0.0.1:7860 only.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

# Shared with the evaluation CLI; imports neither torch nor gradio, so --offline still comes first.
from summarizer.cli import add_dataset_flag, add_model_flags, add_offline_flag, set_offline_env, slot_config


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_flags(p, "models (hub id, local folder, or finished run folder)")
    d = p.add_argument_group("data")
    add_dataset_flag(d)
    d.add_argument("--runs-dir", default=os.environ.get("STUDIO_RUNS_DIR", "runs"),
                   help="folder for training runs (default: $STUDIO_RUNS_DIR, else ./runs)")
    s = p.add_argument_group("server")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s; 0.0.0.0 exposes it to your network)")
    s.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT") or 7860),
                   help="port (default: $GRADIO_SERVER_PORT, Gradio's own variable, else 7860)")
    s.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
    s.add_argument("--auth", metavar="USER:PASSWORD", help="require this login: the teacher's")
    s.add_argument("--student-auth", metavar="USER:PASSWORD", action="append", default=[],
                   help="a student login (repeatable); students use Prompting, Compare, Toxicity and the "
                        "Arena, and cannot change slots, train, evaluate or reset the Arena. Needs --auth")
    s.add_argument("--student-auth-file", metavar="FILE",
                   help="a file of student logins, one USER:PASSWORD per line")
    s.add_argument("--lesson", metavar="FILE",
                   help="start with this lesson (a JSON file saved from the page's Lessons panel, e.g. "
                        "runs/lessons/<name>.json): its slots, engine, uploaded dialogues and page values")
    s.add_argument("--presenter", action="store_true",
                   help="start in presenter mode: larger text for a projector (a toggle in the page header)")
    add_offline_flag(s)
    s.add_argument("--mcp", action="store_true",
                   help="also serve the named endpoints as MCP tools at /gradio_api/mcp/ (Gradio's MCP server; "
                        "needs the mcp extra: pip install \"gradio[mcp]==6.31.0\")")
    from summarizer.inference.serve_config import add_serving_flags, ray_config_of  # no torch, no Ray

    add_serving_flags(p)
    args = p.parse_args(argv)
    try:
        args.ray_config = ray_config_of(args)
    except ValueError as err:
        p.error(str(err))
    if args.auth and ":" not in args.auth:
        p.error("--auth must be USER:PASSWORD")
    try:
        args.classroom = classroom_of(args)
    except ValueError as err:
        p.error(str(err))
    if args.mcp and (args.auth or args.student_auth or args.student_auth_file):
        # Gradio's MCP server neither asks an MCP client for a login nor passes one to the tools: with
        # logins, its schema would be open to anyone and every tool call refused, the teacher's too.
        p.error("--mcp cannot be combined with --auth/--student-auth: Gradio's MCP server does not carry "
                "logins to the tools. Serve MCP without logins (on 127.0.0.1, the default --host) for one "
                "user, or use the named HTTP endpoints with gradio_client and a login.")
    if args.mcp and importlib.util.find_spec("mcp") is None:
        p.error('--mcp needs the mcp extra: pip install "gradio[mcp]==6.31.0"')
    return args


def classroom_of(args: argparse.Namespace):
    """The teacher and student logins of ``--auth``, ``--student-auth`` and ``--student-auth-file``.

    Raises:
        ValueError: a malformed login or file, or student logins without ``--auth`` (naming the flag).
    """
    from ui.classroom import Classroom, parse_login, read_logins

    students = [parse_login(s, "--student-auth") for s in args.student_auth]
    if args.student_auth_file:
        students += read_logins(args.student_auth_file)
    if students and not args.auth:
        raise ValueError("--student-auth needs --auth USER:PASSWORD, the teacher's login.")
    teachers = dict([parse_login(args.auth, "--auth")]) if args.auth else {}
    return Classroom(teachers, dict(students))


def go_offline_if_unreachable() -> bool:
    """Switch to offline mode when the hub cannot be reached (checked once, 3 s timeout).

    Without this, the first model load on a machine with no network retries for about a minute
    before failing. Must run before transformers, datasets or gradio are imported. Returns True
    when it switched.
    """
    from summarizer.preflight import hub_reachable, offline

    if offline() or hub_reachable():
        return False
    print("The Hugging Face hub cannot be reached: working offline (HF_HUB_OFFLINE=1). Only local "
          "folders and what is already in the Hugging Face cache can be used.", flush=True)
    set_offline_env()
    return True


def preflight(args: argparse.Namespace) -> list:
    """Print where the base model, the toxicity model and DialogSum will come from; return the
    :class:`summarizer.preflight.SourceCheck` list."""
    from summarizer.data import default_dataset
    from summarizer.preflight import check_sources

    checks = check_sources(args.base_model, args.toxicity_model, args.dataset or default_dataset())
    for check in checks:
        print(check.text, flush=True)
    return checks


def make_studio(args: argparse.Namespace):
    from summarizer.data import default_dataset
    from summarizer.inference.slots import ModelSlots
    from summarizer.toxicity import ToxicityScorer
    from ui.classroom import Classroom
    from ui.context import Studio

    if getattr(args, "ray_config", None) is not None:  # --serve ray: the slots as Ray Serve replicas
        from summarizer.inference.ray_serve import RayStartError, start_ray_slots

        try:
            slots = start_ray_slots(slot_config(args), args.ray_config, device=args.device, backend=args.backend,
                                    compute_type=args.compute_type)
        except RayStartError as err:
            raise SystemExit(f"error: {err}") from None
    else:
        slots = ModelSlots(slot_config(args), device=args.device, backend=args.backend,
                           compute_type=args.compute_type)
    studio = Studio(slots=slots, toxicity=ToxicityScorer(args.toxicity_model, device=args.device),
                    dataset=args.dataset or default_dataset(), runs_dir=Path(args.runs_dir),
                    classroom=getattr(args, "classroom", None) or Classroom())
    if getattr(args, "lesson", None):
        open_lesson_file(studio, args.lesson)
    return studio


def open_lesson_file(studio, path: str) -> None:
    """``--lesson FILE``: apply the lesson at start and print what it could not restore.

    Raises:
        SystemExit: the file is not a lesson (status 2, the message names the file and field).
    """
    from summarizer.lessons import LessonError, load_lesson
    from ui.lessons import apply_lesson

    try:
        lesson = load_lesson(path)  # a path the user typed: any file may be given
    except (LessonError, OSError) as err:
        raise SystemExit(f"error: --lesson {path}: {err}") from None
    for note in apply_lesson(studio, lesson):
        print(f"lesson {lesson.name!r}: {note}", flush=True)


def build_demo(studio, notice: str = "", presenter_mode: bool = False):
    """The Gradio Blocks app with every tab; ``notice`` (Markdown, e.g. the first-start
    download note from :func:`summarizer.preflight.summary_markdown`) is shown under the title;
    ``presenter_mode`` ticks the presenter toggle."""
    import gradio as gr

    from ui import arena, backend, class_view, lessons, presenter, prompt_lab, prompting, send_to_class, toxicity
    from ui.common import task_selector, tiny_model_line
    from ui.access import for_students
    from ui.compare import tab as compare
    from ui.evaluate import predictions_upload, tab as evaluate
    from ui.train import tab as train

    room = studio.classroom
    with gr.Blocks(title="Dialogue Summarization Studio") as demo:
        with gr.Row():
            gr.Markdown("# Dialogue Summarization Studio\nHow FLAN-T5 summarizes conversations, "
                        "and how fine-tuning (full, LoRA) and PPO detoxification change it.")
            presenter_toggle = presenter.toggle(presenter_mode)
        if notice:
            gr.Markdown(notice, elem_id="first-start-notice")
        tiny_line = gr.Markdown(tiny_model_line(studio), elem_id="tiny-model-line")  # above the tabs: every tab
        with gr.Accordion("Inference engine", open=False) as engine_box:
            backend.build(studio)
        lesson_view = lessons.layout()
        task_radio, task = task_selector()  # one task for Prompting, Compare, Evaluate and the Prompt Lab
        with gr.Tabs():
            with gr.Tab("Prompting", id="prompting"):
                prompting_view = prompting.build(studio, task)
                send_view = send_to_class.layout()
            with gr.Tab("Compare", id="compare"):
                compare_view = compare.build(studio, task)
            with gr.Tab("Toxicity", id="toxicity"):
                toxicity.build(studio, prompting_view["summary"], compare_view["results"])
            with gr.Tab("Train", id="train"):
                train_note = room.teachers_tab_note("Train")
                with gr.Column() as train_body:
                    train_view = train.build(studio)
            with gr.Tab("Evaluate", id="evaluate"):
                evaluate_note = room.teachers_tab_note("Evaluate")
                with gr.Column() as evaluate_body:
                    evaluate_view = evaluate.build(studio, task)
                    predictions_upload.build(studio)
            with gr.Tab("Prompt Lab", id="prompt-lab"):
                lab_view = prompt_lab.build(studio, task)
            with gr.Tab("Arena", id="arena") as arena_tab:
                arena_view = arena.build(studio, tab=arena_tab)  # opening the tab shows the first pair
            with gr.Tab("Class", id="class"):
                class_note = room.teachers_tab_note("Class")
                with gr.Column() as class_body:
                    class_hook = class_view.build(studio, arena_view["api"])["load"]
        page = prompting_view["lesson_fields"]  # after the tabs: a lesson fills their fields
        page_fields = [page["dialogue"], task_radio, page["prompt_mode"], page["examples"], page["shots"],
                       *page["controls"], *lab_view["templates"]]
        lessons.wire(studio, lesson_view, page_fields, demo, where=page["where"])
        by_name = dict(zip(lessons.page_names(len(lab_view["templates"])), page_fields))
        sent = list(by_name)[:-len(lab_view["templates"])]  # the Prompting set-up (not the Lab's templates)
        by_name.update(zip(lessons.WHERE_FIELDS, page["where"]))
        send_to_class.wire(studio, demo, send_view, by_name, sent=sent)
        # Every page load shows the server's state now (slots, finished runs, the selected run and
        # its settings), not the start-up one.
        for view in (compare_view, evaluate_view):
            demo.load(view["load"], None, view["load_outputs"], api_visibility="private")

        @for_students
        def show_tiny_line():
            """Reads the slots; updates the line saying test-size models give meaningless outputs."""
            return tiny_model_line(studio)

        demo.load(show_tiny_line, None, tiny_line, api_visibility="private")
        demo.load(compare_view["teacher_load"], None, compare_view["teacher_load_outputs"], api_visibility="private")
        for hook in [*train_view["load"], arena_view["load"], class_hook]:  # run monitor, restored settings,
            demo.load(**hook, api_visibility="private")           # form previews, leaderboard
        room.hide_from_students(demo, [engine_box, lesson_view["box"], train_body, evaluate_body, *prompting_view["teacher_only"],
                                        *compare_view["teacher_only"],
                                        *lab_view["teacher_only"], *arena_view["teacher_only"],
                                        send_view["box"], class_body],
                                notes=[train_note, evaluate_note, class_note, lab_view["student_note"]])
        presenter.wire(demo, presenter_toggle)
    room.guard(demo, studio.activity)  # every event, by the mark on its definition (ui.access)
    return demo


def status_words():
    """Words for the status keys Gradio 6.31's English locale lacks: its status tracker announces
    ``common.complete`` (and ``common.error``) after every event, and without a translation the
    page shows the key itself. Passed to ``launch(i18n=...)``, which extends Gradio's own locale."""
    import gradio as gr

    return gr.I18n(en={"common.complete": "Done", "common.error": "Error"})


def launch(demo, args: argparse.Namespace, **kwargs):
    """Launch bound to ``args.host`` with no share link unless ``--share``."""
    from starlette.middleware import Middleware

    from ui.classroom import TeacherFilesGate
    from ui.presenter import CSS

    classroom = getattr(args, "classroom", None) or classroom_of(args)
    # The teacher's uploads and exports sit in Gradio's file cache: refuse them to students (403).
    kwargs.setdefault("app_kwargs", {}).setdefault("middleware", []).append(
        Middleware(TeacherFilesGate, classroom=classroom))
    # Light requests (page loads, votes, listings) run 8 at a time; model work keeps its own
    # queues (ui.context.MODEL_QUEUE, GENERATION_QUEUE). A class needs threads for every waiting student.
    return demo.queue(default_concurrency_limit=8).launch(
        server_name=args.host, server_port=args.port, share=args.share, auth=classroom.auth(),
        mcp_server=args.mcp, css=CSS, max_threads=80, i18n=status_words(), **kwargs)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.offline:
        set_offline_env()
    else:
        go_offline_if_unreachable()
    from summarizer.preflight import summary_markdown

    checks = preflight(args)
    studio = make_studio(args)
    launch(build_demo(studio, notice=summary_markdown(checks), presenter_mode=args.presenter), args)


if __name__ == "__main__":
    sys.exit(main())
