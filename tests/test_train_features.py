"""The method registry, resume, delete, overlay, export, accelerate config files and 2 processes.

A fake method registered here must appear in the Train tab's forms and chart and in the job
runner's allow-list with no other edit; a cancelled LoRA run resumes from its checkpoint as a
second attempt; a 2-process run logs the same loss as a 1-process run with the same global batch.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from summarizer.runs import RunFolder, finished_runs
from training import full, lora, ppo, registry
from training.runner import run_actions
from training.runner.jobs import JobRunner
from training.registry import ChartPanel, FormField, MethodSpec

ROOT = Path(__file__).resolve().parents[1]
RUN = "lora-20260101-000000-001"


def _small(tiny_t5, dialogsum_dir, **changes) -> dict:
    return {"base_model": str(tiny_t5), "dataset": str(dialogsum_dir), "train_size": 4, "val_size": 0,
            "batch_size": 2, "max_source_tokens": 32, "max_target_tokens": 8, "max_steps": 1, **changes}


def _plant(root: Path, run_id: str, status: dict, config: dict | None = None, metrics=()) -> Path:
    path = root / run_id
    path.mkdir(parents=True)
    (path / "status.json").write_text(json.dumps(status))
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    (path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return path


# ---- one registry ---------------------------------------------------------------------------------
@dataclass
class FakeRunConfig(full.FullRunConfig):
    """A method that exists only in this test."""

    METHOD = "fake"

    fake_knob: int = 3


FAKE = MethodSpec(name="fake", title="Fake method", module="training.full", config=FakeRunConfig, slot="full",
                  fields=(FormField("max_steps", "Steps"), FormField("fake_knob", "Knob")),
                  chart=(ChartPanel("fake panel", (("fake_metric", "the fake metric"),)),),
                  card_text="a fake", adapter=False)


@pytest.fixture
def fake_method():
    registry.register(FAKE)
    yield FAKE
    registry.unregister("fake")


def test_registered_method_reaches_runner_form_and_chart(fake_method, tiny_t5, dialogsum_dir, tmp_path):
    import gradio as gr

    from ui.train import tab as train
    from ui.train.monitor import chart, overlay_series

    runner = JobRunner(tmp_path / "runs")
    runner.tick = lambda: None  # queue only: nothing is launched here
    run_id = runner.submit("fake", _small(tiny_t5, dialogsum_dir, fake_knob=5))
    status = runner.status(run_id)
    assert run_id.startswith("fake-") and (status["method"], status["slot"], status["state"]) == ("fake", "full", "queued")
    assert status["command"][1:3] == ["-m", "training.full"]
    assert json.loads(runner.run(run_id).config_file.read_text())["fake_knob"] == 5
    with pytest.raises(ValueError, match="method 'nope' is unknown; choose one of full, lora, ppo, dpo, fake"):
        runner.submit("nope", {})

    studio = SimpleNamespace(runs_dir=tmp_path / "runs", dataset=dialogsum_dir, slots=SimpleNamespace(
        config=SimpleNamespace(base=str(tiny_t5))), toxicity=SimpleNamespace(model_name="x"))
    with gr.Blocks() as demo:
        view = train.build(studio)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"train-fake-max-steps", "train-fake-fake-knob", "train-fake-start"} <= ids
    assert len(view["load"]) == 1 + len(registry.methods())  # the monitor, then one preview per form
    fig = chart("fake", [{"step": 1, "fake_metric": 0.5}, {"step": 2, "fake_metric": 0.25}])
    assert [(t.name, list(t.y)) for t in fig.data] == [("the fake metric", [0.5, 0.25])]
    assert overlay_series({run_id: ("fake", [{"step": 1, "fake_metric": 2.0}])})["fake_metric"][0]["values"] == [2.0]


def test_model_card_and_cost_come_from_the_spec():
    from training.runner.estimate import estimate_seconds
    from training.run_life import model_card

    card = model_card("ppo-20260101-000000-001", ppo.PPORunConfig(), {"steps": 1})
    assert "This is a PPO-detoxified LoRA adapter (peft) for" in card and "PeftModel.from_pretrained" in card
    one = estimate_seconds("ppo", "google/flan-t5-small", 1, 8, threads=2, settings={"ppo_epochs": 1})
    four = estimate_seconds("ppo", "google/flan-t5-small", 1, 8, threads=2, settings={"ppo_epochs": 4})
    assert four / one == pytest.approx((2 + 4) / (2 + 1))
    assert lora.lora_targets("t5") == ["q", "v"] and lora.lora_targets("pegasus") == ["q_proj", "v_proj"]


# ---- delete, export, overlay ----------------------------------------------------------------------
def test_delete_needs_a_finished_run_and_the_confirmation(tmp_path):
    root = tmp_path / "runs"
    for i, state in enumerate(["queued", "running", "completed"], 1):
        _plant(root, f"lora-20260101-000000-00{i}", {"state": state, "method": "lora"})
    runner = JobRunner(root)
    for rid in ("lora-20260101-000000-001", "lora-20260101-000000-002"):
        with pytest.raises(ValueError, match=f"run_id {rid} is (queued|running)"):
            run_actions.delete_run(runner, rid, rid)
    done = "lora-20260101-000000-003"
    with pytest.raises(ValueError, match="confirm must repeat the run id"):
        run_actions.delete_run(runner, done, "yes")
    assert (root / done).is_dir()
    run_actions.delete_run(runner, done, done)
    assert not (root / done).exists() and (root / "lora-20260101-000000-002").is_dir()


def test_export_zip_has_model_card_metrics_config_and_no_pickles(tmp_path):
    root = tmp_path / "runs"
    path = _plant(root, RUN, {"state": "completed", "method": "lora"}, {"lora_r": 4}, [{"step": 1, "loss": 2.0}])
    (path / "model").mkdir()
    (path / "model" / "adapter_model.safetensors").write_bytes(b"weights")
    (path / "model" / "adapter_config.json").write_text("{}")
    (path / "model" / "training_args.bin").write_bytes(b"pickle")
    (path / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (path / "checkpoints" / "checkpoint-2" / "optimizer.pt").write_bytes(b"pickle")
    (path / "README.md").write_text("# card")
    runner = JobRunner(root)
    out = run_actions.export_run(runner, RUN, tmp_path / "out")
    names = sorted(zipfile.ZipFile(out).namelist())
    assert names == [f"{RUN}/{n}" for n in ("README.md", "config.json", "metrics.jsonl", "model/adapter_config.json",
                                          "model/adapter_model.safetensors", "status.json")]
    assert run_actions.upload_command(runner, RUN, "me/my-lora") == f"huggingface-cli upload me/my-lora {path / 'model'}"
    assert f"<your-name>/{RUN}" in run_actions.upload_command(runner, RUN)
    _plant(root, "lora-20260101-000000-002", {"state": "failed", "method": "lora"})
    with pytest.raises(ValueError, match="only a completed run exports"):
        run_actions.export_run(runner, "lora-20260101-000000-002", tmp_path / "out")


def test_overlay_puts_differing_settings_in_the_legend(tmp_path):
    from ui.train.monitor import RunReader, chart, overlay_chart

    root = tmp_path / "runs"
    base = {"base_model": "m", "learning_rate": 1e-3, "run_dir": "x"}
    _plant(root, "lora-20260101-000000-001", {"state": "completed", "method": "lora"}, {**base, "lora_r": 4},
           [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0, "eval_loss": 2.5}])
    _plant(root, "lora-20260101-000000-002", {"state": "completed", "method": "lora"}, {**base, "lora_r": 8, "run_dir": "y"},
           [{"step": 1, "loss": 2.9}])
    _plant(root, "ppo-20260101-000000-003", {"state": "completed", "method": "ppo"}, {**base},
           [{"step": 1, "reward_mean": 0.5, "kl": 0.1}])
    reader = RunReader(JobRunner(root))
    data = reader.overlay(["lora-20260101-000000-001", "lora-20260101-000000-002"])
    assert data["legend"] == {"lora-20260101-000000-001": "lora_r=4", "lora-20260101-000000-002": "lora_r=8"}
    assert [line["values"] for line in data["series"]["loss"]] == [[3.0, 2.0], [2.9]]
    assert [line["values"] for line in data["series"]["eval_loss"]] == [[2.5]]
    mixed = reader.overlay(["lora-20260101-000000-001", "ppo-20260101-000000-003"])
    assert set(mixed["series"]) == {"loss", "eval_loss", "reward_mean", "kl"}
    assert "method=ppo" in mixed["legend"]["ppo-20260101-000000-003"]
    fig = overlay_chart(data["series"], data["legend"])
    assert [t.name for t in fig.data if t.showlegend] == ["lora-20260101-000000-001 (lora_r=4)",
                                                           "lora-20260101-000000-002 (lora_r=8)"]
    with pytest.raises(ValueError, match="run_ids"):
        reader.overlay("lora-20260101-000000-001")
    resumed = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0}, {"step": 2, "loss": 1.5, "attempt": 2}]
    assert [list(t.y) for t in chart("lora", resumed).data][0] == [3.0, 1.5]  # the latest attempt's value


# ---- accelerate config files and processes ---------------------------------------------------------
def test_accelerate_config_is_an_untrusted_path(tiny_t5, dialogsum_dir, tmp_path, monkeypatch):
    from ui.train.form import command_preview

    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.chdir(tmp_path)  # a YAML in the current folder but outside the runs folder is refused
    good = root / "two_gpus.yaml"
    good.write_text("distributed_type: MULTI_GPU\nnum_processes: 2\nmixed_precision: bf16\n")
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("num_processes: 2\n")
    (root / "broken.yaml").write_text("a: [1, 2\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    runner = JobRunner(root)
    runner.tick = lambda: None
    for bad, why in [(str(outside), "outside the allowed places"), ("/etc/passwd", "outside the allowed places"),
                     (str(root / "../elsewhere.yaml"), "outside"), (str(root / "missing.yaml"), "not a file"),
                     (str(root / "broken.yaml"), "does not parse"), (str(root / "list.yaml"), "mapping"),
                     (5, "must be a file path"), ("a\x00b", "must be a file path")]:
        with pytest.raises(ValueError, match=f"accelerate_config.*{why}"):
            runner.submit("lora", _small(tiny_t5, dialogsum_dir), accelerate_config=bad)
    run_id = runner.submit("lora", _small(tiny_t5, dialogsum_dir), accelerate_config=str(good))
    cmd = runner.status(run_id)["command"]
    assert cmd[1:5] == ["-m", "accelerate.commands.launch", "--config_file", str(good)] and "--multi_gpu" not in cmd
    assert f"--config_file {good}" in command_preview(runner, "lora", {"lora_r": 4}, 1, str(good))
    allowed = JobRunner(root, accelerate_configs=[outside])  # named on the app's command line
    assert allowed.check_accelerate_config(str(outside)) == str(outside.resolve())
    with pytest.raises(ValueError, match="num_processes must be 1 for PPO detox runs"):
        runner.submit("ppo", {}, num_processes=2)
    with pytest.raises(ValueError, match="accelerate_config must be empty for PPO detox runs"):
        runner.submit("ppo", {}, accelerate_config=str(good))


def test_ppo_cli_refuses_several_processes(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit, match="PPO detox runs in at most 1 process"):
        ppo.main(["--max_steps", "1"])


def test_two_processes_log_the_loss_of_one(tiny_t5, dialogsum_dir, tmp_path):
    """accelerate launch --multi_gpu --num_processes 2 on CPU (gloo), batch 2 per process, against
    one process with batch 4: the same 4 dialogues every step, so the same losses (the doubled
    loss, and ranks training separate copies, are what this guards against)."""
    base = tmp_path / "t5"
    import shutil

    shutil.copytree(tiny_t5, base)
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "dropout_rate": 0.0}))  # same masks on any layout
    args = ["--base_model", str(base), "--dataset", str(dialogsum_dir), "--train_size", "4", "--val_size", "0",
            "--max_source_tokens", "48", "--max_target_tokens", "16", "--max_steps", "3",
            "--learning_rate", "1e-3", "--save_steps", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    losses = {}
    for name, cmd in [("one", [sys.executable, "-m", "training.full", *args, "--batch_size", "4"]),
                      ("two", [*launch, "-m", "training.full", *args, "--batch_size", "2"])]:
        done = subprocess.run([*cmd, "--run_dir", str(tmp_path / name)], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        losses[name] = [r["loss"] for r in RunFolder(tmp_path / name).metrics() if "loss" in r]
    print("1 vs 2 processes, loss per step:", losses)
    assert len(losses["one"]) == len(losses["two"]) == 3
    assert losses["two"] == pytest.approx(losses["one"], rel=1e-4)


# ---- resume -----------------------------------------------------------------------------------------
def test_cancelled_lora_run_resumes_from_its_checkpoint(tiny_t5, dialogsum_dir, tmp_path):
    """Cancelled once checkpoint-2 is saved (a loaded machine may reach a later checkpoint first);
    Resume queues it again, the child resumes from the last checkpoint and completes step 8; the
    first attempt is kept in status.json and metrics.jsonl."""
    root = (tmp_path / "runs").absolute()
    run = RunFolder(root / RUN)
    argv = ["--base_model", str(tiny_t5), "--dataset", str(dialogsum_dir), "--train_size", "8", "--val_size", "0",
            "--batch_size", "2", "--max_source_tokens", "32", "--max_target_tokens", "8", "--max_steps", "8",
            "--save_steps", "2", "--lora_r", "4", "--run_dir", str(run.path)]

    def cancel_after_checkpoint():  # the job runner's cancel file, once checkpoint-2 exists
        while run.last_checkpoint() is None:
            time.sleep(0.05)
        run.cancel_file.touch()

    threading.Thread(target=cancel_after_checkpoint, daemon=True).start()
    assert lora.main(argv) == 0
    first = run.status()
    saved = int(run.last_checkpoint().name.split("-")[1])
    assert first["state"] == "cancelled" and 2 <= saved < 8, (first["state"], saved)
    steps_before = [r["step"] for r in run.metrics() if "loss" in r]
    runner = JobRunner(root)
    with pytest.raises(ValueError, match="only a failed or cancelled run resumes"):
        _plant(root, "lora-20260101-000000-002", {"state": "completed", "method": "lora"})
        run_actions.resume_run(runner, "lora-20260101-000000-002")
    run_actions.resume_run(runner, RUN)
    status = runner.wait(RUN, timeout=400)
    assert status["state"] == "completed", run.log_tail(3000)
    assert [a["state"] for a in status["attempts"]] == ["cancelled"] and status["step"] == 8
    rows = [r for r in run.metrics() if "loss" in r]
    assert [r["step"] for r in rows[:len(steps_before)]] == steps_before  # history kept
    resumed = [(r["step"], r["attempt"]) for r in rows[len(steps_before):]]
    assert resumed == [(k, 2) for k in range(saved + 1, 9)]  # from the last checkpoint
    assert f"Resuming from checkpoint-{saved}" in run.log_tail(20_000)
    assert not run.checkpoints.exists() and (run.model_dir / "adapter_model.safetensors").is_file()
    assert [r.run_id for r in finished_runs(root, "lora")] == [RUN]
    ppo_run = _plant(root, "ppo-20260101-000000-003", {"state": "failed", "method": "ppo"})
    (ppo_run / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    with pytest.raises(ValueError, match="PPO detox runs cannot resume"):
        run_actions.resume_run(runner, "ppo-20260101-000000-003")


def test_endpoints_overlay_export_delete_resume(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from tests.app_server import running_app

    root = tmp_path / "runs"
    done = _plant(root, RUN, {"state": "completed", "method": "lora"}, {"lora_r": 4}, [{"step": 1, "loss": 2.0}])
    (done / "model").mkdir()
    (done / "model" / "adapter_model.safetensors").write_bytes(b"weights")
    failed = "lora-20260101-000000-002"
    _plant(root, failed, {"state": "failed", "method": "lora"}, {"lora_r": 8}, [{"step": 1, "loss": 2.5}])
    with running_app(tiny_t5, tiny_classifier, dialogsum_dir, root) as (studio, url):
        client = Client(url, verbose=False)
        overlay = client.predict([RUN, failed], api_name="/overlay_runs")
        assert overlay["legend"] == {RUN: "lora_r=4", failed: "lora_r=8"}
        exported = client.predict(RUN, "me/model", api_name="/export_run")
        assert exported["upload_command"].startswith("huggingface-cli upload me/model ")
        assert f"{RUN}/model/adapter_model.safetensors" in zipfile.ZipFile(exported["zip"]).namelist()
        with pytest.raises(AppError, match="no checkpoint to resume from"):
            client.predict(failed, api_name="/resume_run")
        with pytest.raises(AppError, match="confirm must repeat the run id"):
            client.predict(failed, "", api_name="/delete_run")
        assert client.predict(failed, failed, api_name="/delete_run") == f"Deleted run {failed}."
        assert [r["run_id"] for r in client.predict(api_name="/list_runs")] == [RUN]
