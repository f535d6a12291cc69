"""Start the real app (``app.py``) in-process on a free local port, for the API and browser tests."""
from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import app


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(base: Path, toxicity: Path, dataset: Path, runs_dir: Path, extra_argv: tuple = (),
                **slots: Path | None):
    """Yield ``(studio, url)`` of the app served with these models; closes it afterwards.

    ``slots`` may give ``full``, ``lora`` and ``detox`` sources; ``extra_argv`` more app options
    (e.g. ``("--backend", "ct2")``).
    """
    argv = ["--base-model", str(base), "--toxicity-model", str(toxicity), "--dataset", str(dataset),
            "--runs-dir", str(runs_dir), "--device", "cpu", "--port", str(free_port()), *extra_argv]
    for slot, source in slots.items():
        if source:
            argv += [f"--{slot}-model", str(source)]
    args = app.parse_args(argv)
    studio = app.make_studio(args)
    demo = app.build_demo(studio)
    studio.demo = demo  # for tests that call the page's events by fn_index
    app.launch(demo, args, prevent_thread_lock=True, quiet=True)
    try:
        yield studio, f"http://127.0.0.1:{args.port}/"
    finally:
        demo.close()


@contextlib.contextmanager
def serving(demo, results_dir: Path):
    """Yield the URL of ``demo`` served on a free local port, with ``$STUDIO_RESULTS_DIR`` set to
    ``results_dir`` while it runs (restored afterwards); closes it at the end."""
    import os

    old = os.environ.get("STUDIO_RESULTS_DIR")
    os.environ["STUDIO_RESULTS_DIR"] = str(results_dir)
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
        if old is None:
            os.environ.pop("STUDIO_RESULTS_DIR", None)
        else:
            os.environ["STUDIO_RESULTS_DIR"] = old


def logged_in(url: str, login: tuple[str, str] | None = None):
    """An ``httpx.Client`` on the app at ``url``, logged in as ``login`` (user, password) if given
    (Gradio's ``/login`` form; its cookie then rides on every request)."""
    import httpx

    http = httpx.Client(base_url=url, timeout=120)
    if login is not None:
        response = http.post("login", data={"username": login[0], "password": login[1]})
        assert response.status_code == 200 and response.json().get("success"), response.text
    return http


def call_event(http, fn_index: int, data: list, session_hash: str) -> list[dict]:
    """Run the page's event ``fn_index`` as a browser does (``/gradio_api/queue/join``, then the
    session's event stream) with ``data``; returns every message of that event, the last being
    ``process_completed`` (whose ``output`` holds the answer or the error)."""
    import json
    import uuid

    joined = http.post("gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session_hash,
                                                      "event_data": None, "trigger_id": None})
    if joined.status_code != 200:
        return [{"msg": "refused at join", "status": joined.status_code, "output": joined.text}]
    event_id = joined.json()["event_id"]
    messages = []
    with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("event_id") not in (event_id, None):
                continue
            messages.append(message)
            if message.get("msg") in ("process_completed", "unexpected_error"):
                break
    return messages or [{"msg": "no answer", "event": str(uuid.uuid4())}]
