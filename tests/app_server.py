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
