"""The documentation's offline commands run as written, and its roles table is the app's.

Every fenced ``bash`` block that follows the marker ``<!-- offline commands: ... -->`` in
README.md and the pages of ``docs/`` (in the site's order) is run line by line, exactly as
written, in a sandbox laid out like a checkout (``<tmp>/main`` with the project's folders linked
in, ``<tmp>/shared/data/dialogsum`` the real DialogSum), with the hub switched off. A command
that two pages show is run once. ``python app.py ...`` is started, must serve its page and
answer a Summarize, and is stopped. The README must stay what a newcomer reads in five minutes.
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.app_server import free_port

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- offline commands:"
BLOCK = re.compile(re.escape(MARKER) + r"[^\n]*-->\s*```bash\n(.*?)```", re.S)
LINKED = ("app.py", "summarizer", "training", "ui", "tests", "benchmarks", "scripts", "requirements.txt")


def doc_pages() -> list[Path]:
    """README.md, then the site's pages in mkdocs.yml's order."""
    nav = re.findall(r":\s*([\w-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"), re.M)
    return [ROOT / "README.md", *(ROOT / "docs" / name for name in nav)]


def offline_commands() -> list[tuple[str, str]]:
    """(page, command) for every line of every marked block, continuations joined, each once."""
    seen, out = set(), []
    for page in doc_pages():
        for block in BLOCK.findall(page.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                command = line.split(" #")[0].strip()
                if command and command not in seen:
                    seen.add(command)
                    out.append((page.name, command))
    return out


def test_the_docs_mark_the_offline_path_and_the_readme_is_short():
    commands = [c for _, c in offline_commands()]
    assert commands[0] == "python -m tests.tiny_models --out tiny-models"
    assert any(c.startswith("python app.py --offline") for c in commands)
    assert any(c.startswith("python -m summarizer.evaluation") and "--dataset" in c for c in commands)
    assert any(c.startswith("python -m summarizer.prompt_lab") and "--dataset" in c for c in commands)
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


def _sandbox(tmp_path: Path, dialogsum: Path) -> Path:
    main = tmp_path / "main"
    main.mkdir()
    for name in LINKED:
        (main / name).symlink_to(ROOT / name)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "dialogsum").symlink_to(dialogsum)
    return main


def _env(port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DIALOGSUM_DIR", "STUDIO_RUNS_DIR")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False", GRADIO_SERVER_PORT=str(port), PYTHONUNBUFFERED="1")
    return env


def _serve_and_ask(argv: list[str], cwd: Path, env: dict, port: int) -> str:
    """Start the app as written, wait for it, ask one Summarize; returns its console output."""
    from gradio_client import Client

    log = cwd / "app-console.log"
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.time() + 300
        while "Running on local URL" not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.time() < deadline, log.read_text(errors="replace")
            time.sleep(0.5)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        dialogue, _, info = client.predict("test", 0, api_name="/load_dialogue")
        assert dialogue and info.startswith("test #0 of")
        client.predict(dialogue, "zero-shot", "", 2, 8, 0, "greedy", 0.7, 50, 1.0, 4, 42, api_name="/summarize")
        return log.read_text(errors="replace")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def test_every_offline_command_of_the_docs_runs_as_written(tmp_path, dialogsum_dir, tiny_t5, tiny_classifier):
    # tiny_t5 and tiny_classifier fill the machine's tiny-model cache, which the docs' first command
    # (python -m tests.tiny_models) copies from instead of training the models a second time.
    main = _sandbox(tmp_path, dialogsum_dir)
    port = free_port()
    env = _env(port)
    for page, command in offline_commands():
        argv = shlex.split(command)
        assert argv[0] == "python", f"{page}: {command!r} does not start with python"
        argv[0] = sys.executable
        if argv[1] == "app.py":
            console = _serve_and_ask(argv, main, env, port)
            assert "Traceback" not in console, console
            continue
        done = subprocess.run(argv, cwd=main, env=env, capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, f"{page}: {command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert (main / "runs" / "tiny-lora" / "status.json").is_file()
    assert (main / "results" / "tiny" / "results.csv").is_file()


def test_the_roles_table_in_the_docs_is_the_apps():
    sys.path.insert(0, str(ROOT / "scripts"))
    import roles_table

    doc = roles_table.table_in_doc(roles_table.DOC.read_text(encoding="utf-8"))
    assert doc == roles_table.built_table(), "docs/classroom.md's roles table is stale: python scripts/roles_table.py --write"


@pytest.mark.skipif(subprocess.run([sys.executable, "-c", "import mkdocs, material"], capture_output=True).returncode,
                    reason="mkdocs-material is not installed (pip install mkdocs-material==9.8.2)")
def test_the_docs_site_builds_strictly(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
