"""Every entry point the README names answers ``--help`` as a user runs it (a fresh process, offline).

The runs themselves are driven elsewhere (test_default_path, test_evaluation, test_prompt_lab, the
training tests); here each script must at least start, parse and describe its flags.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("benchmarks/*.py"), *ROOT.glob("scripts/*.py")])
MODULES = ["summarizer.evaluation", "summarizer.prompt_lab", "training.full", "training.lora", "training.ppo",
           "training.dpo", "tests.tiny_models"]


@pytest.mark.parametrize("command", [["app.py"], *[[s] for s in SCRIPTS], *[["-m", m] for m in MODULES]],
                         ids=lambda c: c[-1])
def test_help_describes_the_flags(command):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    done = subprocess.run([sys.executable, *command, "--help"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:") and "--help" in done.stdout
    assert "%%" not in done.stdout, "a literal %% in the help text (argparse only formats %(...)s)"


@pytest.mark.parametrize("rounds", ["0", "200"])
def test_bench_class_refuses_rounds_the_test_split_cannot_fill_before_building_anything(rounds, dialogsum_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "DIALOGSUM_DIR": str(dialogsum_dir)}
    done = subprocess.run([sys.executable, "benchmarks/bench_class.py", "--size", "tiny", "--n", "24", "--rounds",
                           rounds], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and f"--rounds {rounds} x --n 24" in done.stderr, done.stderr[-2000:]
    assert "dialogues in all" in done.stderr and "building" not in done.stdout
