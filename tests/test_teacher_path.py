"""The teacher's path (issue 21): the Train tab measures the time left from the run's own steps and
warns before a long run; the log has no peft/transformers FutureWarning per adapter; the Arena
says when its class session is an earlier class's; Gradio's untranslated ``common.complete`` has
a word; a student's Prompt Lab says why it has no Run button."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from summarizer.runs import RunFolder
from training.runner.estimate import LONG_RUN_S, Estimate, measured_remaining
from training.runner.run_files import clean_status


def test_the_time_left_is_measured_from_the_runs_own_steps(tmp_path):
    from ui.train.monitor import progress_html

    (tmp_path / "lora-1").mkdir()
    run = RunFolder(tmp_path / "lora-1")
    run.update_status(state="running", started=time.time() - 400, estimate_s=20.0)  # the old, wrong guess
    run.record_step(2, 12)
    first = run.status()
    assert first["first_step"] == 2 and measured_remaining(first) is None  # one step: nothing measured yet
    time.sleep(0.05)
    status = run.record_step(4, 12)
    assert status["first_step_at"] == first["first_step_at"]  # kept for the attempt
    per_step, left = measured_remaining(status, now=status["step_at"])
    assert per_step == (status["step_at"] - status["first_step_at"]) / 2 and left == 8 * per_step
    # the page shows the measured time left, not the estimate made before the run started
    shown = progress_html(clean_status({**status, "step_at": status["first_step_at"] + 60, "run_id": "lora-1"}))
    assert "about 4m00s left (measured 30.0 s/step)" in shown and "estimated" not in shown
    assert "estimated 0m20s" in progress_html({"state": "running", "step": 0, "total_steps": 12, "estimate_s": 20.0})


def test_a_long_run_is_warned_about_before_it_starts():
    from ui.train.form import estimate_markdown

    long = estimate_markdown(Estimate(LONG_RUN_S + 60, 30.0, LONG_RUN_S + 30, "rough CPU figure"))
    assert long.startswith("**This run will take long on this machine (about 16m00s).**")
    assert not estimate_markdown(Estimate(120.0, 30.0, 90.0, "rough CPU figure")).startswith("**This run")


def test_making_an_adapter_logs_no_gradient_checkpointing_warning(tiny_t5):
    # In a fresh process, as a run's child or the app is (pytest resets warning filters per test).
    code = f"""
import warnings, summarizer
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSeq2SeqLM
model = AutoModelForSeq2SeqLM.from_pretrained({str(tiny_t5)!r})
with warnings.catch_warnings(record=True) as caught:
    get_peft_model(model, LoraConfig(r=2, target_modules=["q", "v"], task_type="SEQ_2_SEQ_LM"))
print(sorted({{str(w.message)[:40] for w in caught}}))
"""
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_an_earlier_class_session_is_said_to_be_one():
    from ui.arena import session_started

    started = time.mktime((2026, 12, 6, 12, 2, 0, 0, 0, -1))
    assert session_started(started, app_started=started + 3600).startswith(
        time.strftime("2026-12-06 12:02 %Z", time.localtime(started)) + ", before this app started")
    assert "before" not in session_started(started, app_started=started - 1)


def test_gradio_status_keys_have_words():
    import app

    words = app.status_words().translations_dict["en"]
    assert words["common.complete"] == "Done" and words["common.error"] == "Error"


def test_a_students_prompt_lab_says_why_it_has_no_run_button():
    import gradio as gr

    from ui.prompt_lab import STUDENT_NOTE, build

    with gr.Blocks():
        view = build(None)
    assert view["student_note"].value == STUDENT_NOTE and view["student_note"].visible is False
    assert "The teacher runs the Prompt Lab" in STUDENT_NOTE


def test_compare_with_no_dialogue_is_one_message_not_eight_errors(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path):
    import gradio as gr
    import pytest

    import app
    from ui.compare.tab import check_compare_input

    with pytest.raises(ValueError, match="dialogue is empty"):
        check_compare_input("   ", 40)
    args = app.parse_args(["--base-model", str(tiny_t5), "--toxicity-model", str(tiny_classifier),
                           "--dataset", str(dialogsum_dir), "--runs-dir", str(tmp_path)])
    demo = app.build_demo(app.make_studio(args))
    fns = {b.fn.__name__: b for b in demo.fns.values() if b.fn is not None}
    check, compare = fns["check_clicked"], next(b for b in demo.fns.values() if b.api_name == "compare")
    assert check.outputs == [] and compare.trigger_after == check._id and compare.trigger_only_on_success
    with pytest.raises(gr.Error, match="dialogue is empty"):  # the one toast; /compare is not run after it
        check.fn("", 40, gr.Request(username=None))


def test_opening_the_arena_shows_the_first_pair_by_itself(tiny_t5, tiny_classifier, random_adapter, dialogsum_dir,
                                                         tmp_path):
    import gradio as gr

    import app

    args = app.parse_args(["--base-model", str(tiny_t5), "--toxicity-model", str(tiny_classifier), "--dataset",
                           str(dialogsum_dir), "--runs-dir", str(tmp_path), "--lora-model", str(random_adapter)])
    demo = app.build_demo(app.make_studio(args))
    (opened,) = [b for b in demo.fns.values() if b.fn is not None and b.fn.__name__ == "tab_opened"]
    assert [event for _, event in opened.targets] == ["select"]
    request = gr.Request(username=None, session_hash="first-visit")
    pair_id, dialogue, summary_a, summary_b, status, *_ = opened.fn("", request)
    assert len(pair_id) > 8 and dialogue.startswith("#Person") and summary_a and summary_b
    assert status.endswith("Which summary is better? You may rate each one first.")
    assert all(v == gr.skip() for v in opened.fn(pair_id, request))  # a shown pair stays
