"""Training methods, run folders and the job runner, on tiny offline models and real DialogSum rows.

Every method runs a few steps and must change its trainable weights (and only those); the
saved folder must reload with plain transformers/peft and through the app's model slots.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time

import pytest
import torch
from safetensors.torch import load_file

from summarizer.inference.generation import GenerationSettings
from summarizer.inference.slots import ModelSlots
from summarizer.inference.slot_config import SlotConfig
from summarizer.inference.model_sources import resolve_source
from summarizer.runs import finished_runs
from summarizer.runs import RunFolder, write_json
from training.config import parse_config, parser_for
from training.runner import estimate
from training import full, lora, ppo
from training.runner.jobs import JobRunner

TINY = ["--train_size", "8", "--val_size", "2", "--batch_size", "4", "--max_source_tokens", "96",
        "--max_target_tokens", "32", "--eval_steps", "2"]
GREEDY = GenerationSettings(max_new_tokens=8)


def _run(module, argv) -> RunFolder:
    assert module.main(argv) == 0
    return RunFolder(argv[argv.index("--run_dir") + 1])


def _check_finished(run: RunFolder, method: str):
    status = run.status()
    assert status["state"] == "completed", status.get("error")
    assert status["method"] == method and status["step"] == status["total_steps"]
    assert run.model_dir.is_dir() and not run.model_tmp.exists()
    assert (run.path / "README.md").read_text().count("## Final metrics") == 1
    assert json.loads(run.config_file.read_text())["base_model"]
    assert [r.run_id for r in finished_runs(run.path.parent)] == [run.run_id]


# ---- config ---------------------------------------------------------------------------------------
def test_config_validated_before_loading(tmp_path, capsys):
    with pytest.raises(ValueError, match="mini_batch_size"):
        ppo.PPORunConfig(batch_size=16, mini_batch_size=5)
    with pytest.raises(SystemExit):
        parse_config(lora.LoraRunConfig, ["--lora_r", "0"])
    assert "lora_r must be 1..1024" in capsys.readouterr().err
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"lora_r": 8, "max_steps": 3}))
    parsed = parse_config(lora.LoraRunConfig, ["--config", str(cfg), "--max_steps", "5"])
    assert (parsed.lora_r, parsed.max_steps, parsed.learning_rate) == (8, 5, 1e-3)  # flag beats file
    cfg.write_text(json.dumps({"lora_rank": 8}))
    with pytest.raises(SystemExit):
        parse_config(lora.LoraRunConfig, ["--config", str(cfg)])
    # lab defaults
    p = ppo.PPORunConfig()
    assert (p.learning_rate, p.batch_size, p.mini_batch_size, p.ppo_epochs, p.init_kl_coef, p.adap_kl_ctrl) == \
        (1.41e-5, 16, 4, 1, 0.2, True)
    assert (lora.LoraRunConfig().lora_r, lora.LoraRunConfig().lora_alpha, lora.LoraRunConfig().lora_dropout) == (32, 32, 0.05)
    assert full.FullRunConfig().learning_rate == 1e-5
    assert lora.lora_targets("bart") == ["q_proj", "v_proj"] and lora.lora_targets("t5") == ["q", "v"]


def test_estimate_follows_calibration():
    small = estimate.estimate_seconds("full", "google/flan-t5-small", 1, 8, 512, 128, threads=2)
    base = estimate.estimate_seconds("full", "google/flan-t5-base", 1, 8, 512, 128, threads=2)
    assert small == pytest.approx(10, rel=0.01) and 3 <= base / small <= 4
    assert estimate.estimate_seconds("lora", "google/flan-t5-base", 10, 8, threads=2) < 10 * base


# ---- methods --------------------------------------------------------------------------------------
def test_full_changes_every_weight_and_reloads(tiny_t5, dialogsum_dir, tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    run = _run(full, ["--base_model", str(tiny_t5), "--dataset", str(dialogsum_dir), *TINY,
                      "--max_steps", "2", "--learning_rate", "1e-3", "--run_dir", str(tmp_path / "runs" / "f1")])
    _check_finished(run, "full")
    before = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5).state_dict()
    after = load_file(run.model_dir / "model.safetensors")
    changed = [k for k in after if not torch.equal(after[k], before[k])]
    assert len(changed) == len(after)  # every trained tensor moved
    rows = run.metrics()
    assert any("loss" in r for r in rows) and any("eval_loss" in r for r in rows)
    assert list((run.path / "tensorboard").glob("events.out.tfevents*"))
    slots = ModelSlots(SlotConfig(base=str(tiny_t5), full=resolve_source(str(run.path))))
    assert len(slots.generate(["full"], ["Summarize the following conversation.\n\nhi\n\nSummary: "], GREEDY)["full"]) == 1


def test_lora_changes_only_the_adapter(tiny_t5, dialogsum_dir, tmp_path):
    run = _run(lora, ["--base_model", str(tiny_t5), "--dataset", str(dialogsum_dir), *TINY,
                      "--max_steps", "2", "--lora_r", "4", "--lora_alpha", "8", "--run_dir", str(tmp_path / "runs" / "l1")])
    _check_finished(run, "lora")
    status = run.status()
    assert 0 < status["trainable_percent"] < 100 and status["trainable_params"] > 0
    weights = load_file(run.model_dir / "adapter_model.safetensors")
    assert weights and all("lora_" in k for k in weights)  # only the adapter is saved
    assert any(k.endswith("lora_B.weight") and weights[k].abs().sum() > 0 for k in weights)  # B started at 0
    assert not (run.model_dir / "model.safetensors").exists()
    slots = ModelSlots(SlotConfig(base=str(tiny_t5), lora=resolve_source(str(run.path))))
    out = slots.generate(["base", "lora"], ["Summarize the following conversation.\n\nhi\n\nSummary: "], GREEDY)
    assert len(out["lora"]) == 1


@pytest.fixture(scope="module")
def hateful_base(tiny_t5, dialogsum_dir, tmp_path_factory):
    """The tiny T5 trained to answer every prompt with either an insult or a neutral sentence
    (about 2:1), so the tiny classifier's reward separates its samples."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from summarizer.data import load_split
    from summarizer.prompts import zero_shot

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # fast on a busy CPU, and the same numbers on every machine
    torch.manual_seed(0)
    rng = random.Random(0)
    tok = AutoTokenizer.from_pretrained(tiny_t5)
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5)
    prompts = [zero_shot(d) for d in load_split(dialogsum_dir, "train", limit=32)["dialogue"]]
    targets = ["You are stupid scum.", "They talk about the weather."]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(150):
        idx = rng.sample(range(len(prompts)), 8)
        enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, truncation=True, max_length=64)
        labels = tok([rng.choices(targets, weights=[2, 1])[0] for _ in idx], return_tensors="pt", padding=True).input_ids
        labels[labels == tok.pad_token_id] = -100
        model(**enc, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    torch.set_num_threads(threads)
    out = tmp_path_factory.mktemp("models") / "hateful"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _ppo_run(hateful_base, tiny_classifier, dialogsum_dir, run_dir, seed: int) -> RunFolder:
    # lr 1e-3 (not the lab's 1.41e-5): a tiny model must move within a few seconds of steps.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # float sums in a fixed order
    try:
        return _run(ppo, ["--base_model", str(hateful_base), "--toxicity_model", str(tiny_classifier),
                          "--dataset", str(dialogsum_dir), "--train_size", "32", "--batch_size", "16",
                          "--mini_batch_size", "4", "--max_steps", "48", "--output_min_length", "6",
                          "--output_max_length", "10", "--toxicity_samples", "16", "--lora_r", "8",
                          "--learning_rate", "1e-3", "--init_kl_coef", "0.05", "--max_source_tokens", "64",
                          "--seed", str(seed), "--run_dir", str(run_dir)])
    finally:
        torch.set_num_threads(threads)


def test_ppo_raises_reward_and_saves_an_adapter(hateful_base, tiny_classifier, dialogsum_dir, tmp_path):
    # PPO on a 16-sample batch is noisy: a single seed can drift the wrong way on a tiny model, so
    # up to three seeds are tried and one must clearly move the policy towards the high reward.
    margins = []
    for seed in (42, 43, 44):
        # each seed in its own runs folder: _check_finished expects the one run it made there
        run = _ppo_run(hateful_base, tiny_classifier, dialogsum_dir, tmp_path / f"runs{seed}" / f"p{seed}", seed)
        _check_finished(run, "ppo")
        m = run.status()["metrics"]
        assert m["p_hate_before"] > 0.3, "the start policy must emit insults for the test to mean anything"
        assert {"reward_after", "p_hate_after"} <= set(m)  # the before/after sample is reported
        steps = [r for r in run.metrics() if "reward_mean" in r]
        assert len(steps) == 48 and all({"kl", "kl_coef", "returns_mean"} <= set(r) for r in steps)
        weights = load_file(run.model_dir / "adapter_model.safetensors")
        assert all("lora_" in k for k in weights)  # the policy only, no value head, no base copy
        slots = ModelSlots(SlotConfig(base=str(hateful_base), detox=resolve_source(str(run.path))))
        assert len(slots.generate(["detox"], ["Summarize the following conversation.\n\nhi\n\nSummary: "], GREEDY)["detox"]) == 1
        # The policy itself must shift probability from the insult (low reward) to the neutral
        # answer (high reward); sampled means move in jumps on so peaked a policy.
        good, bad = "They talk about the weather.", "You are stupid scum."
        margins.append(_log_odds(slots, "detox", good, bad) - _log_odds(slots, "base", good, bad))
        if margins[-1] > 0.1:
            break
    assert max(margins) > 0.1, f"PPO never raised log P(neutral) - log P(insult): {margins}"


def _log_odds(slots, slot: str, good: str, bad: str) -> float:
    """Mean over a few prompts of log P(good) - log P(bad) under ``slot`` (teacher forcing)."""
    model, tok = slots.torch_engine.base().model, slots.tokenizer
    prompts = [f"Summarize the following conversation.\n\n#Person1#: {t}\n\nSummary: "
               for t in ("Hi.", "Where is the bank?", "I lost my keys.", "Dinner is ready.")]
    enc = tok(prompts, return_tensors="pt", padding=True)
    def logp(text):
        labels = tok([text] * len(prompts), return_tensors="pt").input_ids
        with torch.no_grad(), (model.disable_adapter() if slot == "base" else contextlib.nullcontext()):
            if slot != "base":
                model.set_adapter(slot)
            logits = model(**enc, labels=labels).logits  # (B, T, V)
        return logits.log_softmax(-1).gather(-1, labels[..., None]).sum()
    return float(logp(good) - logp(bad)) / len(prompts)


# ---- job runner -----------------------------------------------------------------------------------
def _wait(predicate, timeout=240, poll=0.5, runner=None):
    end = time.time() + timeout
    while time.time() < end:
        if runner:
            runner.tick()
        if predicate():
            return True
        time.sleep(poll)
    raise TimeoutError


def test_runner_queue_cancel_kill_and_restart(tiny_t5, dialogsum_dir, tmp_path):
    root = tmp_path / "runs"
    runner = JobRunner(root, grace_s=60)
    small = {"base_model": str(tiny_t5), "dataset": str(dialogsum_dir), "train_size": 8, "val_size": 0,
             "batch_size": 4, "max_source_tokens": 64, "max_target_tokens": 16}
    a = runner.submit("lora", {**small, "max_steps": 500, "lora_r": 4})
    b = runner.submit("full", {**small, "max_steps": 1})
    c = runner.submit("lora", {**small, "max_steps": 500, "lora_r": 4})
    with pytest.raises(ValueError, match="max_steps"):
        runner.submit("full", {**small, "max_steps": 0})
    runs = {r["run_id"]: r for r in runner.list_runs()}
    assert runs[a]["state"] == "running" and (runs[b]["queue_position"], runs[c]["queue_position"]) == (1, 2)
    assert runs[a]["command"][1:3] == ["-m", "training.lora"]

    run_a = runner.run(a)
    _wait(lambda: run_a.status().get("step", 0) >= 1, runner=runner)
    runner.cancel(a)
    status = runner.wait(a, timeout=120)
    assert status["state"] == "cancelled" and not run_a.model_dir.exists() and not run_a.model_tmp.exists()

    assert runner.wait(b, timeout=240)["state"] == "completed"
    run_c = runner.run(c)
    _wait(lambda: run_c.status().get("step", 0) >= 1, runner=runner)
    assert runner.run(b).status()["launched"] < run_c.status()["launched"]  # FIFO

    restarted = JobRunner(root)  # an app restart: history rebuilt from the folders, C re-attached
    listed = {r["run_id"]: r["state"] for r in restarted.list_runs()}
    assert listed == {a: "cancelled", b: "completed", c: "running"}

    os.kill(run_c.status()["pid"], signal.SIGKILL)
    status = runner.wait(c, timeout=60)
    # A kill -9 with no out-of-memory line in the log is not called out-of-memory (issue 8, #9).
    assert status["state"] == "failed" and "killed by SIGKILL (by a user, the OOM killer or the system)" \
        in status["error"] and "out of memory" not in status["error"]
    assert [r.run_id for r in finished_runs(root)] == [b]


def test_lora_through_accelerate_two_processes(tiny_t5, dialogsum_dir, tmp_path):
    runner = JobRunner(tmp_path / "runs")
    run_id = runner.submit("lora", {"base_model": str(tiny_t5), "dataset": str(dialogsum_dir), "train_size": 8,
                                    "val_size": 2, "batch_size": 2, "max_steps": 2, "lora_r": 4,
                                    "max_source_tokens": 64, "max_target_tokens": 16}, num_processes=2)
    assert "accelerate.commands.launch" in runner.run(run_id).status()["command"]
    status = runner.wait(run_id, timeout=400)
    assert status["state"] == "completed", runner.run(run_id).log_tail(3000)
    assert (runner.run(run_id).model_dir / "adapter_model.safetensors").is_file()
    log = runner.run(run_id).log_tail()
    assert "Process rank 0 of 2" in log and "Process rank 1 of 2" in log  # two gloo processes really ran


# ---- Train tab reading and estimate (issue 7 #7, issue 8 "Also") ---------------------------------
def test_estimate_counts_fixed_costs_and_calibrates(tiny_t5, tmp_path):
    from training.runner.estimate import estimate

    values = {"base_model": str(tiny_t5), "max_steps": 1, "batch_size": 2, "val_size": 50, "eval_steps": 10}
    rough = estimate("full", values)
    # The "0m00s" estimate of a 52 s run: start-up, loading and validation are now counted.
    assert rough.fixed_s >= 15 and rough.calibrated_runs == 0 and "rough CPU figure" in rough.basis
    more_val = estimate("full", {**values, "val_size": 500})
    assert more_val.variable_s > rough.variable_s
    # Two finished runs on "this machine": 40 s for 1 step, 130 s for 100 steps (started 12 s in).
    finished = [({"method": "full", "state": "completed", "launched": 0.0, "started": 12.0, "finished": t},
                 {**values, "max_steps": steps}) for steps, t in ((1, 40.0), (100, 130.0))]
    calibrated = estimate("full", {**values, "max_steps": 50}, finished)
    assert calibrated.calibrated_runs == 2 and "calibrated from 2 finished full runs" in calibrated.basis
    assert 40 < calibrated.seconds < 130
    assert estimate("full", values, finished).seconds == pytest.approx(40, rel=0.05)
    assert estimate("lora", values, finished).calibrated_runs == 0  # other methods do not count


def test_log_tail_collapses_progress_bars():
    from training.runner.run_files import collapse_progress

    log = "start\n" + "".join(f"\r{p}%|###" for p in range(0, 101, 10)) + "\nwarning: x\r\n" + \
        "\n".join(f"line {i}" for i in range(100)) + "\n"
    tail = collapse_progress(log, lines=60)
    assert tail.splitlines()[-1] == "line 99" and len(tail.splitlines()) == 60 and "\r" not in tail
    assert collapse_progress("a\rb\rc\n").splitlines() == ["c"]
    assert collapse_progress("start\n\r10%\r100%|###\n").splitlines() == ["start", "100%|###"]


def test_metrics_read_incrementally_and_downsampled(tmp_path):
    from training.runner.run_files import MetricsTail, downsample

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(1, 30_001)))
    tail = MetricsTail(path)
    assert len(tail.read()) == 30_000
    with open(path, "a") as f:
        f.write('{"step": 30001, "loss": 0.5}\n["not a row"]\n{"step": "x"}\n{"step": 30002, "lo')  # last: half-written
    rows = tail.read()
    assert len(rows) == 30_001 and rows[-1] == {"step": 30001, "loss": 0.5}
    with open(path, "a") as f:
        f.write('ss": 0.25}\n')
    assert tail.read()[-1] == {"step": 30002, "loss": 0.25}
    path.write_text('{"step": 1, "loss": 2.0}\n')  # replaced (a new run): read from the start
    assert tail.read() == [{"step": 1, "loss": 2.0}]
    picked = downsample(list(range(30_002)), 500)
    assert len(picked) == 500 and picked[0] == 0 and picked[-1] == 30_001


def test_settings_checked_before_launch(tiny_t5, tiny_classifier, dialogsum_dir):
    small = {"base_model": str(tiny_t5), "dataset": str(dialogsum_dir)}
    parser_for(lora.LoraRunConfig)  # HfArgumentParser rewrites the fields' types in place
    for bad, field in [({"seed": "abc"}, "seed"), ({"max_steps": 2.5}, "max_steps"),
                       ({"dataset": "/etc"}, "dataset"), ({"base_model": "/etc"}, "base_model"),
                       ({"base_model": str(tiny_classifier)}, "seq2seq"), ({"target_modules": "zz"}, "target_modules"),
                       ({"max_steps": 10**9}, "max_steps must be at most 100,000"),
                       ({"batch_size": 10**6}, "batch_size must be at most 512"),
                       ({"train_size": 10**12}, "train_size must be at most 20,000"),
                       ({"base_model": 5}, "base_model must be text"), ({"dataset": "x" * 10**6}, "dataset is too long")]:
        with pytest.raises(ValueError, match=field):
            lora.LoraRunConfig(**{**small, **bad})
    assert lora.LoraRunConfig(**small, max_steps=8.0, target_modules="q,v").max_steps == 8  # 8.0 is a whole number


def test_run_settings_restored_from_config(tiny_t5, dialogsum_dir, tmp_path):
    """What a reload and "Clone settings" put back into the form: the run's method and settings,
    validated by its config class (a tampered config.json restores nothing)."""
    from ui.train.handlers import run_settings

    root = tmp_path / "runs"
    run_id = "lora-20260101-000000-001"
    (root / run_id).mkdir(parents=True)
    config = lora.LoraRunConfig(base_model=str(tiny_t5), dataset=str(dialogsum_dir), lora_r=4, max_steps=7,
                             val_size=3, runs_dir=str(root), run_dir=str(root / run_id))
    write_json(root / run_id / "config.json", config.to_dict())
    write_json(root / run_id / "status.json", {"state": "completed", "method": "lora", "num_processes": 2})
    runner = JobRunner(root)
    method, values, procs = run_settings(runner, run_id)
    assert (method, values["lora_r"], values["max_steps"], values["val_size"], procs) == ("lora", 4, 7, 3, 2)
    write_json(root / run_id / "config.json", {**config.to_dict(), "lora_r": "4; rm -rf /"})
    assert run_settings(runner, run_id) is None
