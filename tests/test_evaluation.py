"""The evaluation core and its CLI: hand-checked numbers, batched == one-at-a-time, files on disk."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from summarizer.evaluation.__main__ import parse_args
from summarizer.evaluation.evaluate import evaluate
from summarizer.evaluation.results import PREDICTION_COLUMNS, RESULT_COLUMN_ORDER
from summarizer.evaluation.evaluate import EvaluationCancelled, generate_summaries
from summarizer.inference.generation import GenerationSettings
from summarizer.inference.slots import ModelSlots
from summarizer.inference.slot_config import SlotConfig
from summarizer.prompts import zero_shot
from summarizer.toxicity import ToxicityScore

ROOT = Path(__file__).resolve().parents[1]
GREEDY = GenerationSettings(max_new_tokens=24)


class FakeSlots:
    """Stands in for ModelSlots: fixed summaries per slot, so every metric can be checked by hand."""

    device, dtype = "cpu", "float32"

    def __init__(self, summaries: dict[str, list[str]], tokenizer):
        self.summaries, self.tokenizer = summaries, tokenizer
        self.prompts = None

    def is_filled(self, slot):
        return slot in self.summaries

    def source(self, slot):
        return f"fake/{slot}"

    def load(self, slots):
        pass

    def generate(self, slots, prompts, settings, batch_size=8, on_batch=None):
        self.prompts = list(prompts)
        if on_batch:
            on_batch(len(prompts), len(prompts))
        return {s: self.summaries[s] for s in slots}

    def tokenizer_of(self, slot):
        return self.tokenizer

    def trainable_parameters(self, slot):
        return (100, 100) if slot == "base" else (5, 105)


class FakeScorer:
    """P(hate) 0.9 for texts with 'hate' in them, else 0.1; records what it was asked to score."""

    model_name = "fake-toxicity"

    def __init__(self):
        self.seen = []

    def score(self, texts):
        self.seen += list(texts)
        return [ToxicityScore(reward=-1.0 if "hate" in t else 2.0, p_hate=0.9 if "hate" in t else 0.1)
                for t in texts]


ROWS = [
    {"id": "a", "dialogue": "#Person1#: Where is the cat?\n#Person2#: On the mat.",
     "references": ["the cat is on the mat", "a dog ran away"], "topic": "pets"},
    {"id": "b", "dialogue": "#Person1#: Say x y.\n#Person2#: x y.", "references": ["x y"], "topic": "letters"},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_t5):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tiny_t5)


def test_hand_checked_table_single_and_multiple_references(tokenizer):
    slots = FakeSlots({"base": ["the cat sat on the mat", "x y"],
                       "detox": ["the cat sat on the mat", "I hate x y"]}, tokenizer)
    scorer = FakeScorer()
    result = evaluate(slots, scorer, ROWS, GREEDY, ["base", "detox"], n_resamples=200)
    base, detox = result.results
    # Row a: best over refs R1 = 5/6, mean = (5/6 + 0)/2; row b: single reference, R1 = 1.
    assert base["rouge1_best"] == pytest.approx(100 * (5 / 6 + 1) / 2)
    assert base["rouge1_mean"] == pytest.approx(100 * (5 / 12 + 1) / 2)
    assert base["rouge2_best"] == pytest.approx(100 * (3 / 5 + 1) / 2)
    assert base["rouge2_mean"] == pytest.approx(100 * (3 / 10 + 1) / 2)
    # "I hate x y" vs "x y": P = 2/4, R = 1 -> F = 2/3.
    assert detox["rouge1_best"] == pytest.approx(100 * (5 / 6 + 2 / 3) / 2)
    assert detox["rouge1_diff_vs_base"] == pytest.approx(100 * (2 / 3 - 1) / 2)
    # Toxicity of the summary alone: the scorer saw exactly the summaries, no prompt or dialogue.
    assert scorer.seen == slots.summaries["base"] + slots.summaries["detox"]
    assert slots.prompts[0] == zero_shot(ROWS[0]["dialogue"])
    assert (base["p_hate_mean"], base["hate_share"], base["reward_mean"]) == (pytest.approx(0.1), 0, 2.0)
    assert detox["p_hate_mean"] == pytest.approx(0.5) and detox["hate_share"] == 0.5
    assert detox["p_hate_max"] == pytest.approx(0.9) and detox["p_hate_std"] == pytest.approx(0.4)
    assert detox["p_hate_diff_vs_base"] == pytest.approx(0.4)
    assert math.isnan(base["p_hate_diff_vs_base"])  # no difference of base with itself
    assert detox["trainable_pct"] == pytest.approx(100 * 5 / 105)
    assert base["gen_words_mean"] == 4 and detox["gen_words_mean"] == 5
    assert base["ci_rule"] == "best" and list(base) == RESULT_COLUMN_ORDER
    pred = result.predictions[0]
    assert pred["human_summary_2"] == "a dog ran away" and result.predictions[1]["human_summary_2"] == ""
    assert pred["base_rouge1"] == pytest.approx(100 * 5 / 6)
    assert result.predictions[1]["detox_reward_change"] == pytest.approx(-3.0)
    # The 'mean' rule moves the intervals, differences and per-dialogue ROUGE-1 with it.
    mean = evaluate(slots, FakeScorer(), ROWS, GREEDY, ["base"], rule="mean", n_resamples=200)
    assert mean.predictions[0]["base_rouge1"] == pytest.approx(100 * 5 / 12)
    assert mean.results[0]["rouge1_ci_low"] <= mean.results[0]["rouge1_mean"] <= mean.results[0]["rouge1_ci_high"]


def test_perfect_summaries_score_100_rouge_and_bleu(tokenizer):
    refs = [r["references"] for r in ROWS]
    slots = FakeSlots({"base": [r[0] for r in refs]}, tokenizer)
    row = evaluate(slots, FakeScorer(), ROWS, GREEDY, ["base"], n_resamples=50).results[0]
    assert row["rouge1_best"] == pytest.approx(100) and row["bleu"] == pytest.approx(100)
    assert row["rouge1_mean"] < 100  # row a's second reference shares nothing


def test_bad_requests_say_what_to_do(tokenizer):
    slots = FakeSlots({"base": ["x"]}, tokenizer)
    with pytest.raises(ValueError, match="No dialogues"):
        evaluate(slots, FakeScorer(), [], GREEDY, ["base"])
    with pytest.raises(ValueError, match="no model yet"):
        evaluate(slots, FakeScorer(), ROWS[:1], GREEDY, ["lora"])
    with pytest.raises(ValueError, match="rule"):
        evaluate(slots, FakeScorer(), ROWS[:1], GREEDY, ["base"], rule="median")


@pytest.fixture(scope="module")
def real_rows(request):
    """Six real DialogSum test dialogues (three references each) if present, else built-in ones."""
    from summarizer.data import default_local_dataset, load_split

    folder = default_local_dataset()
    if folder is None:
        from tests.tiny_models import FALLBACK_DIALOGUES
        return [{"id": str(i), "dialogue": d, "references": [s]} for i, (d, s) in enumerate(FALLBACK_DIALOGUES)]
    return list(load_split(folder, "test", limit=6))


def test_batched_generation_equals_the_labs_one_at_a_time_loop(tiny_t5, random_adapter, real_rows):
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, GenerationConfig

    from summarizer.evaluation.evaluate import build_prompts

    slots = ModelSlots(SlotConfig(base=str(tiny_t5), lora=str(random_adapter)))
    prompts, _ = build_prompts(real_rows, slots.tokenizer)
    batched, _ = generate_summaries(slots, ["base", "lora"], prompts, GREEDY, batch_size=4)
    # The labs' loop: one prompt at a time, each model on its own copy of the base.
    tok = AutoTokenizer.from_pretrained(tiny_t5)
    models = {"base": AutoModelForSeq2SeqLM.from_pretrained(tiny_t5).eval(),
              "lora": PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(tiny_t5), random_adapter).eval()}
    config = GenerationConfig(max_new_tokens=GREEDY.max_new_tokens, num_beams=1, do_sample=False)
    for name, model in models.items():
        one_by_one = [tok.decode(model.generate(input_ids=tok(p, return_tensors="pt").input_ids,
                                                generation_config=config)[0], skip_special_tokens=True).strip()
                      for p in prompts]
        assert batched[name] == one_by_one, name
    assert batched["lora"] != batched["base"]  # the adapter really is applied


def test_identical_models_differ_by_exactly_zero_and_runs_repeat(tiny_t5, fresh_adapter, tiny_classifier, real_rows):
    from summarizer.toxicity import ToxicityScorer

    slots = ModelSlots(SlotConfig(base=str(tiny_t5), lora=str(fresh_adapter)))
    scorer = ToxicityScorer(str(tiny_classifier))
    runs = [evaluate(slots, scorer, real_rows[:4], GREEDY, ["base", "lora"], n_resamples=300) for _ in range(2)]
    lora = runs[0].results[1]
    for m in ("rouge1", "p_hate", "reward"):
        assert (lora[f"{m}_diff_vs_base"], lora[f"{m}_diff_ci_low"], lora[f"{m}_diff_ci_high"]) == (0, 0, 0)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds_per_summary"} for r in rows]
    assert json.dumps(strip(runs[0].results)) == json.dumps(strip(runs[1].results))  # same seed, same numbers
    assert runs[0].predictions == runs[1].predictions


def test_cancel_stops_between_batches(tiny_t5, real_rows):
    slots = ModelSlots(SlotConfig(base=str(tiny_t5)))
    calls = []

    def stop():
        calls.append(1)
        return True

    with pytest.raises(EvaluationCancelled):
        evaluate(slots, None, real_rows[:3], GREEDY, ["base"], batch_size=1, should_stop=stop)
    assert len(calls) == 1  # stopped after the first batch, before generating the rest


def test_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in ("--base-model", "--full-model", "--lora-model", "--detox-model", "--run", "--n", "--split",
                 "--dataset", "--strategy", "--max-new-tokens", "--rule", "--bootstrap", "--out", "--per-model-timing"):
        assert flag in text


@pytest.mark.parametrize("cli", ["summarizer.evaluation.__main__", "summarizer.prompt_lab.__main__"])
def test_help_shows_a_plain_percent_sign(cli, capsys):
    import importlib

    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(cli).main(["--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0 and "95% " in text and "%%" not in text


def _no_work(monkeypatch) -> list:
    """Make every path that generates or scores record itself and fail; returns the record."""
    import summarizer.evaluation.evaluate
    import summarizer.prompt_lab.__main__

    calls = []

    def refuse(name):
        return lambda *a, **k: calls.append(name) or pytest.fail(f"{name} ran")

    monkeypatch.setattr(summarizer.evaluation.evaluate, "evaluate", refuse("evaluate"))
    monkeypatch.setattr(summarizer.evaluation.evaluate, "score_predictions_file", refuse("score_predictions_file"))
    monkeypatch.setattr(summarizer.prompt_lab.__main__, "run_lab", refuse("run_lab"))
    return calls


@pytest.mark.parametrize("flags, named", [(["--bootstrap", "0"], "--bootstrap"), (["--bootstrap", "2.5"], "--bootstrap"),
                                          (["--confidence", "1"], "--confidence"), (["--confidence", "0"], "--confidence"),
                                          (["--confidence", "nan"], "--confidence")])
@pytest.mark.parametrize("predictions", [False, True])
def test_cli_refuses_bad_statistics_flags_before_any_work(flags, named, predictions, tmp_path, monkeypatch, capsys):
    from summarizer.evaluation.__main__ import main

    calls = _no_work(monkeypatch)
    file = tmp_path / "p.csv"
    file.write_text("id,mine\ntest_0,x\n")
    extra = ["--predictions", str(file), "--no-toxicity"] if predictions else ["--n", "4"]
    with pytest.raises(SystemExit) as exit_:
        main([*extra, "--dataset", str(tmp_path), *flags])
    assert exit_.value.code == 2 and f"argument {named}: must be" in capsys.readouterr().err
    assert calls == []


def test_prompt_lab_cli_refuses_bad_bootstrap_before_any_work(tmp_path, monkeypatch, capsys):
    from summarizer.prompt_lab.__main__ import main

    calls = _no_work(monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        main(["--preset", "zero-shot", "--n", "4", "--dataset", str(tmp_path), "--bootstrap", "0"])
    assert exit_.value.code == 2 and "argument --bootstrap: must be" in capsys.readouterr().err
    assert calls == []


def test_cli_names_a_tokenizer_that_cannot_load(tmp_path, monkeypatch, capsys):
    from summarizer.evaluation.__main__ import main

    calls = _no_work(monkeypatch)
    file = tmp_path / "p.csv"
    file.write_text("id,mine\ntest_0,x\n")
    missing = tmp_path / "nope"
    assert main(["--predictions", str(file), "--no-toxicity", "--tokenizer", str(missing), "--offline"]) == 2
    err = capsys.readouterr().err
    assert f"error: --tokenizer {missing}: cannot load a tokenizer" in err and "Traceback" not in err
    assert calls == []


def test_cli_writes_documented_files(tiny_t5, random_adapter, tiny_classifier, dialogsum_dir, tmp_path):
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "summarizer.evaluation", "--base-model", str(tiny_t5),
           "--lora-model", str(random_adapter), "--toxicity-model", str(tiny_classifier),
           "--dataset", str(dialogsum_dir), "--n", "5", "--max-new-tokens", "16", "--bootstrap", "200",
           "--out", str(out), "--offline", "--quiet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Toxicity is scored on the generated summary alone" in proc.stdout
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == RESULT_COLUMN_ORDER
    assert list(results["model"]) == ["base", "lora"] and (results["n_dialogues"] == 5).all()
    for k in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert results[f"{k}_best"].between(0, 100).all()
        assert (results[f"{k}_mean"] <= results[f"{k}_best"] + 1e-9).all()  # mean over refs <= best
    assert (results["rouge1_ci_low"] <= results["rouge1_best"]).all()
    assert (results["rouge1_best"] <= results["rouge1_ci_high"]).all()
    assert results["p_hate_mean"].between(0, 1).all() and results["hate_share"].between(0, 1).all()
    assert (results["p_hate_ci_low"] <= results["p_hate_mean"]).all()
    assert results.loc[1, "trainable_pct"] < 10 and results.loc[0, "trainable_pct"] == 100
    assert results.loc[0, "rouge1_diff_vs_base"] != results.loc[0, "rouge1_diff_vs_base"]  # NaN for base
    assert (results["gen_tokens_mean"] <= 16).all() and (results["seconds_per_summary"] > 0).all()
    preds = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert list(preds["id"]) == [f"test_{i}" for i in range(5)]
    expected = ["id", "topic", "dialogue", "human_summary_1", "human_summary_2", "human_summary_3",
                *[f"{m}_{c}" for m in ("base", "lora") for c in ("summary", "rouge1", "p_hate", "reward")],
                "lora_reward_change"]
    assert list(preds.columns) == expected
    assert (preds["human_summary_3"] != "").all()  # the official test split has three references
    meta = json.loads((out / "results.json").read_text())
    assert meta["split"] == "test" and meta["n_dialogues"] == 5 and meta["generation"]["strategy"] == "greedy"
    assert "best" in meta["multi_reference_rule"] and "summary alone" in meta["toxicity_protocol"]
    assert set(meta["results_columns"]) == set(RESULT_COLUMN_ORDER) and meta["predictions_columns"] == PREDICTION_COLUMNS
    assert [m["model"] for m in meta["models"]] == ["base", "lora"]


@pytest.mark.parametrize("make_source", [
    lambda tmp: tmp / "no-such-folder",  # a path that does not exist: FileNotFoundError (OSError)
    lambda tmp: tmp,  # a folder without DialogSum files: ValueError
    lambda tmp: "nobody-here/no-such-dialogsum",  # a hub id, offline: the hub loader's error
])
def test_cli_dataset_that_cannot_load_is_an_error_line_not_a_traceback(make_source, tiny_t5, tmp_path, capsys):
    from summarizer.evaluation.__main__ import main

    source = str(make_source(tmp_path))
    status = main(["--base-model", str(tiny_t5), "--dataset", source, "--n", "2", "--no-toxicity",
                   "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2
    assert f"error: --dataset {source}: cannot load its test split" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing half-written
