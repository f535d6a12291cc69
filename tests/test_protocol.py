"""The evaluation protocol: the lab-comparable ROUGE, scoring a predictions file, recorded settings."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rouge_score import rouge_scorer, scoring

from summarizer.evaluation.evaluate import evaluate
from summarizer.evaluation.results import RESULT_COLUMNS
from summarizer.evaluation.evaluate import score_predictions_file, score_summaries
from summarizer.inference.generation import GenerationSettings
from summarizer.evaluation.predictions_file import PredictionsFileError, load_predictions
from summarizer.evaluation.rouge import ROUGE_KEYS, score_lab, score_one
from tests.test_evaluation import ROWS, FakeScorer, FakeSlots

ROOT = Path(__file__).resolve().parents[1]

# Hand-made rows of the hub CSV layout: one (summary, reference) pair per row. Two sentences in
# the second pair, so sentence splitting (the project's Lsum) would change ROUGE-Lsum.
PAIRS = [("The cats were running home.", "The cat runs home."),
         ("He paid the bill. She left early.", "She left early. He paid."),
         ("Nothing in common", "a dog barked")]


def evaluate_rouge_the_labs_way(predictions, references):
    """evaluate's rouge ``_compute`` (evaluate/metrics/rouge/rouge.py) as the labs called it:
    ``RougeScorer(rouge_types, use_stemmer=True)``, ``scorer.score(ref, pred)`` per row (single
    references), then the BootstrapAggregator's ``mid.fmeasure``; also the plain mean of fmeasure."""
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    aggregator, per = scoring.BootstrapAggregator(), []
    for ref, pred in zip(references, predictions):
        score = scorer.score(ref, pred)
        aggregator.add_scores(score)
        per.append(score)
    np.random.seed(0)  # the aggregator resamples with numpy's global generator
    mid = {k: v.mid.fmeasure for k, v in aggregator.aggregate().items()}
    mean = {k: float(np.mean([s[k].fmeasure for s in per])) for k in ROUGE_KEYS}
    return mean, mid


def test_lab_figure_equals_rouge_score_with_the_labs_options():
    preds, refs = [p for p, _ in PAIRS], [r for _, r in PAIRS]
    lab = score_lab(preds, [[r] for r in refs])
    mean, mid = evaluate_rouge_the_labs_way(preds, refs)
    for k in ROUGE_KEYS:
        assert lab[k] == pytest.approx(100 * mean[k], abs=1e-9)
        assert lab[k] == pytest.approx(100 * mid[k], abs=10)  # the aggregator's mid: a bootstrap median
    # Stemming on: "cats were running" matches "cat runs" (run/running, cat/cats).
    assert lab["rouge1"] > 0 and score_lab(["cats running"], [["cat runs"]])["rouge1"] == pytest.approx(100)
    # No sentence splitting: Lsum is L, while the project's sentence-split Lsum is higher here.
    assert lab["rougeLsum"] == pytest.approx(lab["rougeL"])
    split_lsum = score_one(PAIRS[1][0], [PAIRS[1][1]])["best"]["rougeLsum"]
    assert 100 * split_lsum > score_lab([PAIRS[1][0]], [[PAIRS[1][1]]])["rougeLsum"]


def test_lab_figure_weights_every_reference_row_like_the_hub_csv(tokenizer):
    """Multi-reference dialogues count once per reference (the hub CSV repeats them)."""
    slots = FakeSlots({"base": ["the cat sat on the mat", "x y"]}, tokenizer)
    row = evaluate(slots, FakeScorer(), ROWS, GenerationSettings(max_new_tokens=8), ["base"],
                   n_resamples=50).results[0]
    # Pairs: (a, ref1) 5/6, (a, ref2) 0, (b, ref) 1 -> mean over 3 rows, not over 2 dialogues.
    assert row["rouge1_lab"] == pytest.approx(100 * (5 / 6 + 0 + 1) / 3)
    assert row["rouge1_mean"] == pytest.approx(100 * (5 / 12 + 1) / 2)
    assert row["rouge1_best"] > row["rouge1_lab"]
    assert "lab-comparable" in RESULT_COLUMNS["rouge1_lab"]


@pytest.fixture(scope="module")
def tokenizer(tiny_t5):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tiny_t5)


def test_results_json_records_bleu_and_toxicity_settings(tokenizer, tmp_path):
    slots = FakeSlots({"base": ["the cat sat on the mat", "x y"]}, tokenizer)
    scorer = FakeScorer()
    scorer.max_length = 512
    result = evaluate(slots, scorer, ROWS, GenerationSettings(max_new_tokens=8), ["base"], n_resamples=50)
    meta = json.loads(result.write(tmp_path)["results_json"].read_text())
    bleu = meta["bleu_settings"]
    assert bleu["tokenizer"] == "13a" and bleu["level"] == "corpus" and bleu["case"].startswith("mixed")
    assert bleu["references_per_dialogue"] == [1, 2] and "nrefs:var" in bleu["signature"]
    import sacrebleu
    assert bleu["version"] == sacrebleu.__version__
    assert meta["toxicity_max_tokens"] == 512 and "512 tokens" in meta["toxicity_truncation"]
    assert "use_stemmer=True" in meta["lab_protocol"]


def test_predictions_file_matches_ids_dialogues_and_refuses_unknown_ones():
    rows = [dict(r) for r in ROWS]
    by_id = "id,base,lora\na,s1,t1\nb,s2,t2\n"
    matched, summaries = load_predictions(by_id, rows, "test")
    assert [r["id"] for r in matched] == ["a", "b"] and summaries == {"base": ["s1", "s2"], "lora": ["t1", "t2"]}
    # The hub CSV's one-row-per-reference ids (a_1, a_2) name dialogue a; repeats collapse.
    hub = "id,base\na_1,s1\na_2,s1\n"
    assert load_predictions(hub, rows, "test")[1] == {"base": ["s1"]}
    with pytest.raises(PredictionsFileError, match="different summaries"):
        load_predictions("id,base\na_1,s1\na_2,other\n", rows, "test")
    by_dialogue = pd.DataFrame({"dialogue": [ROWS[1]["dialogue"]], "mine": ["x y"]}).to_csv(index=False)
    assert load_predictions(by_dialogue, rows, "test")[1] == {"mine": ["x y"]}
    with pytest.raises(PredictionsFileError, match=r"3 ids .* not in the test split: 'zz1', 'zz2', 'zz3'"):
        load_predictions("id,base\nzz1,s\nzz2,s\nzz3,s\n", rows, "test")
    with pytest.raises(PredictionsFileError, match="'id' or a 'dialogue' column"):
        load_predictions("name,base\na,s\n", rows, "test")
    with pytest.raises(PredictionsFileError, match="Column 'bad name!'"):
        load_predictions("id,bad name!\na,s\n", rows, "test")
    with pytest.raises(PredictionsFileError, match="no summary column"):
        load_predictions("id,topic\na,t\n", rows, "test")


def test_predictions_file_scoring_equals_in_process_scoring(tiny_t5, tiny_classifier, dialogsum_dir, tmp_path):
    from summarizer.data import load_split
    from summarizer.inference.slots import ModelSlots
    from summarizer.inference.slot_config import SlotConfig
    from summarizer.toxicity import ToxicityScorer

    slots = ModelSlots(SlotConfig(base=str(tiny_t5)))
    scorer = ToxicityScorer(str(tiny_classifier))
    rows = list(load_split(dialogsum_dir, "test", limit=4))
    stats = dict(n_resamples=300, bootstrap_seed=3)
    in_process = evaluate(slots, scorer, rows, GenerationSettings(max_new_tokens=12), ["base"], **stats)
    paths = in_process.write(tmp_path / "run")
    from_file = score_predictions_file(paths["predictions_csv"], dialogsum_dir, "test", scorer,
                                       slots.tokenizer, **stats)
    slot_only = {"source", "trainable_params", "total_params", "trainable_pct", "seconds_per_summary"}
    a, b = in_process.results[0], from_file.results[0]
    same = lambda row: json.dumps({k: v for k, v in row.items() if k not in slot_only}, sort_keys=True)
    assert same(a) == same(b)  # every score, interval and length (NaN differences of base too)
    assert a["rouge1_lab"] > 0 and a["p_hate_mean"] == b["p_hate_mean"]
    assert from_file.meta["ids"] == [r["id"] for r in rows]


def test_cli_scores_a_predictions_file_and_refuses_unknown_ids(dialogsum_dir, tmp_path):
    good = tmp_path / "good.csv"
    pd.DataFrame({"id": ["test_0", "test_1"], "mine": ["A man talks.", "Two people talk about a party."]}).to_csv(good, index=False)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"id": ["test_0", "nope_7"], "mine": ["a", "b"]}).to_csv(bad, index=False)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    base = [sys.executable, "-m", "summarizer.evaluation", "--dataset", str(dialogsum_dir), "--no-toxicity",
            "--bootstrap", "100", "--offline"]
    ok = subprocess.run(base + ["--predictions", str(good), "--out", str(tmp_path / "out")], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    from summarizer.data import load_split
    rows = list(load_split(dialogsum_dir, "test", limit=2))
    expected = score_summaries(rows, {"mine": ["A man talks.", "Two people talk about a party."]}, None,
                               n_resamples=100)
    assert list(results["model"]) == ["mine"]
    assert results.loc[0, "rouge1_lab"] == pytest.approx(expected.results[0]["rouge1_lab"])
    assert results.loc[0, "rouge1_best"] == pytest.approx(expected.results[0]["rouge1_best"])
    assert np.isnan(results.loc[0, "p_hate_mean"])  # --no-toxicity
    refused = subprocess.run(base + ["--predictions", str(bad)], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode == 2 and "'nope_7'" in refused.stderr and "--predictions" in refused.stderr


def test_predictions_file_cap_is_the_callers_choice():
    """The app passes a cap of dialogues x models; the CLI passes none and scores a whole split."""
    rows = [{"id": f"train_{i}", "dialogue": f"d {i}", "references": ["r"]} for i in range(30)]
    data = "id,a,b\n" + "".join(f"train_{i},x,y\n" for i in range(30))
    matched, summaries = load_predictions(data, rows, "train")
    assert len(matched) == 30 and set(summaries) == {"a", "b"}
    assert len(load_predictions(data, rows, "train", max_summaries=60)[0]) == 30
    with pytest.raises(PredictionsFileError, match="30 dialogues x 2 model columns = 60 summaries.*at most 59"):
        load_predictions(data, rows, "train", max_summaries=59)


@pytest.mark.parametrize("data, message", [
    # A duplicated header: pandas renamed the second column "base.1", scored as a model.
    ("id,base,base\na,s1,s2\n", r"Header: column 'base' appears twice \(columns 2 and 3\)"),
    # A row with an extra field: pandas read 'a' as an index, so the id became 's1' ("unknown id").
    ("id,base\na,s1,extra\n", r"header has 2 fields but row 2 has 3.*double quotes"),
    ("id,base\na,s1\nb,s2,x\n", r"header has 2 fields but row 3 has 3"),
    # A missing field: pandas filled "", scored as ROUGE 0.
    ("id,base,lora\na,s1\nb,s2,t2\n", r"header has 3 fields but row 2 has 2"),
    # An empty summary cell.
    ("id,base,lora\na,s1,\nb,s2,t2\n", r"Column 'lora' has no summary for 1 of 2 dialogues \('a'\).*ROUGE 0"),
    # A human-summary column, by name (would be model "human" with ROUGE 100) ...
    ("id,base,human_summary\na,s1,the cat is on the mat\nb,s2,x y\n", r"Column 'human_summary' looks like the human reference"),
    # ... and by content, whatever its name.
    ("id,base,mine\na,s1,The cat is on the mat\nb,s2,x y\n", r"Column 'mine' equals a human reference summary of the split on 2 of 2"),
    ("id,base,\na,s1,s2\n", r"Header: column 3 has no name"),
])
def test_predictions_file_refuses_what_it_used_to_score_silently(data, message):
    rows = [dict(r) for r in ROWS]
    with pytest.raises(PredictionsFileError, match=message):
        load_predictions(data, rows, "test")


def test_predictions_file_keeps_quoted_commas_blank_lines_and_a_byte_order_mark():
    rows = [dict(r) for r in ROWS]
    data = '\ufeffid,base\n"a","one, two"\n\nb,s2\n'
    matched, summaries = load_predictions(data, rows, "test")
    assert [r["id"] for r in matched] == ["a", "b"] and summaries == {"base": ["one, two", "s2"]}
    # A model that matches one reference of two dialogues (under half) is still a model.
    assert load_predictions("id,m\na,the cat is on the mat\nb,other\n", rows, "test")[1]["m"][1] == "other"
