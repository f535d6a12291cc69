"""DPO (training/dpo.py): eq. 7 against a hand computation, one encoder pass equal to two, the
reference = the base without adapters, and a tiny run on planted Arena votes that changes the
adapter and raises the chosen-over-rejected margin (checked with the models' own loss, not ours).
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from summarizer.arena.store import ArenaStore, ServedPair
from summarizer.prompts import zero_shot
from summarizer.runs import RunFolder
from tests.tiny_models import FALLBACK_DIALOGUES
from training import dpo, registry

BAD = ["#Person1# hates the weather.", "Nobody says anything.", "#Person2# is a cat.", "The end."]


def planted_store(path, n_pairs: int, ties: int = 0) -> ArenaStore:
    """An Arena store where every A/B vote prefers the human summary to a wrong one (on side A or B)."""
    store = ArenaStore(path)
    for i in range(n_pairs + ties):
        dialogue, good = FALLBACK_DIALOGUES[i % 4]
        dialogue += f"\n#Person1#: Thanks {i}."
        bad = BAD[i % len(BAD)]
        a, b, vote = (good, bad, "A") if i % 2 == 0 else (bad, good, "B")
        pair = ServedPair(f"p{i}", f"d{i}", dialogue, "base", "s1", "lora", "s2", a, b, prompt=zero_shot(dialogue))
        store.record_pair(pair, "browser")
        store.vote(pair.pair_id, "tie" if i >= n_pairs else vote, "browser")
    return store


def test_loss_equals_eq7_by_hand():
    pc, pr = torch.tensor([-3.0, -5.0, -2.0]), torch.tensor([-4.0, -4.5, -6.0])
    rc, rr = torch.tensor([-3.5, -4.0, -2.5]), torch.tensor([-3.0, -5.0, -5.0])
    beta = 0.5

    def by_hand(eps):
        total = 0.0
        for i in range(3):
            h = beta * ((pc[i] - rc[i]) - (pr[i] - rr[i])).item()
            sig = 1 / (1 + math.exp(-h))
            total += -(1 - eps) * math.log(sig) - eps * math.log(1 - sig)
        return total / 3

    for eps in (0.0, 0.1):
        loss, stats = dpo.dpo_loss(pc, pr, rc, rr, beta, eps)
        assert loss.item() == pytest.approx(by_hand(eps), rel=1e-6)
    # rewards beta*(policy - ref): chosen (0.25, -0.5, 0.25), rejected (-0.5, 0.25, -0.5)
    assert stats["reward_margin"] == pytest.approx((0.75 - 0.75 + 0.75) / 3)
    assert stats["reward_accuracy"] == pytest.approx(2 / 3)


def _batch(tokenizer, pairs):
    rows = [{"input_ids": tokenizer(p)["input_ids"],
             "chosen_labels": tokenizer(text_target=c)["input_ids"],
             "rejected_labels": tokenizer(text_target=r)["input_ids"]} for p, c, r in pairs]
    return dpo.PairCollator(tokenizer.pad_token_id)(rows)


def test_shared_encoding_equals_encoding_twice_and_reference_is_the_base(tiny_t5, random_adapter):
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_t5)
    model = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(tiny_t5), random_adapter).eval()
    pairs = [(zero_shot(d), s, BAD[i]) for i, (d, s) in enumerate(FALLBACK_DIALOGUES)]
    batch = _batch(tok, pairs)  # prompts of different lengths, answers padded to one length
    with torch.no_grad():
        shared, twice = dpo.pair_logps(model, batch), dpo.pair_logps_twice(model, batch)
        ref = dpo.reference_logps(model, batch)
    for a, b in zip(shared, twice):
        assert torch.allclose(a, b, atol=1e-5)
    assert dpo.dpo_loss(*shared, *ref, 0.1)[0].item() == pytest.approx(dpo.dpo_loss(*twice, *ref, 0.1)[0].item(), abs=1e-6)
    base = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5).eval()
    for i, (prompt, chosen, rejected) in enumerate(pairs):  # the model's own mean token loss, unpadded
        enc = tok(prompt, return_tensors="pt")
        for side, text in ((0, chosen), (1, rejected)):
            labels = tok(text_target=text, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                own = -base(**enc, labels=labels).loss.item() * labels.shape[1]
                policy = -model(**enc, labels=labels).loss.item() * labels.shape[1]
            assert ref[side][i].item() == pytest.approx(own, abs=1e-3)  # adapters disabled = the base
            assert shared[side][i].item() == pytest.approx(policy, abs=1e-3)
    assert not torch.allclose(shared[0], ref[0], atol=1e-3)  # the random adapter does change the policy


def _margins(model, tok, pairs) -> list[float]:
    """log p(chosen) - log p(rejected) per pair, from the model's own loss."""
    out = []
    for prompt, chosen, rejected in pairs:
        enc = tok(prompt, return_tensors="pt")
        logp = []
        for text in (chosen, rejected):
            labels = tok(text_target=text, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                logp.append(-model(**enc, labels=labels).loss.item() * labels.shape[1])
        out.append(logp[0] - logp[1])
    return out


def test_tiny_run_on_planted_votes_learns_the_preference(tiny_t5, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    store = planted_store(tmp_path / "arena.sqlite3", n_pairs=10, ties=3)
    run_dir = tmp_path / "runs" / "dpo-20260101-000000-001"
    argv = ["--base_model", str(tiny_t5), "--votes", str(store.path), "--run_dir", str(run_dir),
            "--max_steps", "12", "--batch_size", "5", "--learning_rate", "5e-3", "--lora_r", "4",
            "--lora_alpha", "8", "--beta", "0.5", "--save_steps", "0", "--no_gradient_checkpointing"]
    assert dpo.main(argv) == 0
    run = RunFolder(run_dir)
    status = run.status()
    assert status["state"] == "completed" and status["slot"] == "detox" and status["preference_pairs"] == 10
    assert status["left_out"] == {"tie": 3}
    weights = load_file(str(run.model_dir / "adapter_model.safetensors"))
    assert weights and all("lora_" in k for k in weights)  # the adapter only
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in weights.items())  # B started at 0
    rows = [r for r in run.metrics() if "reward_margin" in r]
    assert len(rows) == 12 and all(0 <= r["reward_accuracy"] <= 1 for r in rows)
    assert rows[-1]["reward_margin"] > rows[0]["reward_margin"]
    final = status["metrics"]
    assert final["logp_margin_after"] > final["logp_margin_before"]
    # Independently: the saved adapter, loaded as Compare loads it, ranks the planted pairs better.
    tok = AutoTokenizer.from_pretrained(tiny_t5)
    kept = [json.loads(line) for line in (run.path / dpo.PAIRS_FILE).read_text().splitlines()]
    pairs = [(k["prompt"], k["chosen"], k["rejected"]) for k in kept]
    base = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5).eval()
    before = _margins(base, tok, pairs)
    after = _margins(PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(tiny_t5), run.model_dir).eval(),
                     tok, pairs)
    assert sum(after) / len(after) > sum(before) / len(before) + 1.0
    assert final["logp_margin_after"] == pytest.approx(sum(after) / len(after), abs=1e-2)


def test_precomputed_reference_gives_the_same_first_step_and_the_runner_runs_it(tiny_t5, tmp_path):
    from training.runner.jobs import JobRunner

    root = tmp_path / "runs"
    planted_store(root / "arena.sqlite3", n_pairs=8)  # the app's store: the default votes of a run
    common = {"base_model": str(tiny_t5), "max_steps": 1, "batch_size": 8, "lora_r": 4, "save_steps": 0,
              "learning_rate": 1e-2}
    run_dir = root / "dpo-20260101-000000-000"
    assert dpo.main([*(f"--{k}={v}" for k, v in common.items()), "--runs_dir", str(root), "--run_dir", str(run_dir)]) == 0
    runner = JobRunner(root)  # as the Train tab starts it: config.json, a child process
    run_id = runner.submit("dpo", {**common, "precompute_reference": False})
    assert runner.wait(run_id, timeout=240)["state"] == "completed"
    losses = []
    for run in (RunFolder(run_dir), runner.run(run_id)):
        first = [r for r in run.metrics() if "loss" in r][0]
        losses.append((first["loss"], first["grad_norm"]))
    assert losses[0][0] == pytest.approx(math.log(2), abs=1e-5)  # a fresh adapter: policy = reference
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)  # same loss and same gradient
    note = registry.spec("dpo").data_note({"class_session": "current"}, root)  # the form's line
    assert "8 preference pair(s)" in note and "Not enough" not in note
    assert "no Arena votes yet" in registry.spec("dpo").data_note({}, tmp_path / "empty")


def test_refused_with_fewer_than_8_pairs_and_export(tiny_t5, tmp_path, capsys):
    store = planted_store(tmp_path / "arena.sqlite3", n_pairs=7, ties=5)
    with pytest.raises(ValueError, match=r"Invalid dpo config: Too few preference pairs.*7 preference pair.*5 ties.*at least 8"):
        dpo.DpoRunConfig(base_model=str(tiny_t5), votes=str(store.path))
    with pytest.raises(SystemExit):
        dpo.main(["--base_model", str(tiny_t5), "--votes", str(store.path)])
    assert "Too few preference pairs" in capsys.readouterr().err
    note = registry.spec("dpo").data_note({"votes": str(store.path)}, tmp_path)
    assert "7 preference pair(s)" in note and "5 ties" in note and "Not enough to start: at least 8" in note
    out = tmp_path / "prefs.jsonl"  # exporting is allowed whatever the count
    assert dpo.main(["--base_model", str(tiny_t5), "--votes", str(store.path), "--export-preferences", str(out)]) == 0
    import datasets

    loaded = datasets.load_dataset("json", data_files=str(out), split="train")
    assert len(loaded) == 7 and set(loaded.column_names) >= {"prompt", "chosen", "rejected"}
    assert loaded["prompt"][0] == zero_shot(FALLBACK_DIALOGUES[0][0] + "\n#Person1#: Thanks 0.")


def test_registered_with_its_form_and_chart():
    spec = registry.spec("dpo")
    assert spec.module == "training.dpo" and spec.adapter and spec.max_processes == 1
    assert {f.name for f in spec.fields} >= {"class_session", "beta", "max_steps", "learning_rate", "lora_r"}
    assert {k for p in spec.chart for k, _ in p.series} == {"loss", "reward_margin", "reward_accuracy"}
