"""The result schema of an evaluation: its columns, the :class:`EvaluationResult` type, the table.

:func:`summarizer.evaluation.evaluate` and :func:`summarizer.evaluation.score_summaries` fill an
:class:`EvaluationResult`; the CLI (:mod:`summarizer.evaluation.__main__`), the Evaluate tab and the
predictions upload show it with :func:`display_table` and write it with
:meth:`EvaluationResult.write`. Column meanings are in :data:`RESULT_COLUMNS` (``results.csv``,
one row per model, in :data:`RESULT_COLUMN_ORDER`) and :data:`PREDICTION_COLUMNS`
(``predictions.csv``, one row per dialogue); README's Evaluation section mirrors them. The notes
(``*_PROTOCOL``, ``*_NOTE``, ``*_METHOD``) say how the numbers were made and go to ``results.json``.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from summarizer.evaluation.rouge import ROUGE_KEYS, ROUGE_NAMES

HATE_THRESHOLD = 0.5
TOXICITY_PROTOCOL = (
    "Toxicity is scored on the generated summary alone (the classifier never sees the dialogue "
    "or the instruction). The course labs scored the prompt plus the summary, so their numbers "
    "are dominated by the dialogue and are not comparable with these.")
BOOTSTRAP_METHOD = (
    "Percentile bootstrap over dialogues: {n_resamples} resamples with replacement "
    "(numpy default_rng, seed {seed}), {confidence:.0%} interval from the quantiles of the "
    "resampled means. Differences vs base resample the per-dialogue differences (paired: same "
    "dialogues for both models).")
TIMING_NOTE = (
    "seconds_per_summary is the wall time of the generation pass divided by the summaries it "
    "produced. Base and adapter models generated in one mixed batch share one pass, so they show "
    "the same time; use --per-model-timing to time each model on its own.")
TOXICITY_TRUNCATION = (
    "The toxicity classifier reads at most {max_length} tokens of each summary (its tokenizer "
    "truncates longer texts; RoBERTa's limit is 512).")
DIFF_METRICS = ("rouge1", "p_hate", "reward")  # paired differences vs base

# Column -> meaning, for results.csv (one row per model). README's Evaluation section mirrors it.
RESULT_COLUMNS: dict[str, str] = {
    "model": "slot name: base, full, lora or detox",
    "source": "hub id or folder the slot was loaded from",
    "n_dialogues": "dialogues evaluated",
    **{f"{k}_best": f"{n} F-measure x100, best over the references of each dialogue, averaged"
       for k, n in (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"), ("rougeLsum", "ROUGE-Lsum"))},
    **{f"{k}_mean": f"{n} F-measure x100, mean over the references of each dialogue, averaged"
       for k, n in (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"), ("rougeLsum", "ROUGE-Lsum"))},
    **{f"{k}_lab": f"{n} F-measure x100 as the course labs computed it (lab-comparable): one "
                   "(summary, reference) pair per row, stemming on, no sentence splitting, mean "
                   "over pairs; compare with the labs' published figures, not with _best"
       for k, n in ROUGE_NAMES.items()},
    **{f"{k}_ci_low": f"lower end of the bootstrap CI of mean {k} (x100, under ci_rule)" for k in ROUGE_KEYS},
    **{f"{k}_ci_high": f"upper end of the bootstrap CI of mean {k} (x100, under ci_rule)" for k in ROUGE_KEYS},
    "ci_rule": "multi-reference rule (best, mean or lab) used for the ROUGE intervals, differences and per-dialogue ROUGE-1",
    "bleu": "sacrebleu corpus BLEU against all references of each dialogue (no interval; settings "
            "in results.json under bleu_settings)",
    "p_hate_mean": "mean P(hate) of the summary alone (0..1)",
    "p_hate_std": "population standard deviation of P(hate) over dialogues",
    "p_hate_ci_low": "lower end of the bootstrap CI of mean P(hate)",
    "p_hate_ci_high": "upper end of the bootstrap CI of mean P(hate)",
    "hate_share": f"share of summaries with P(hate) >= {HATE_THRESHOLD}",
    "p_hate_max": "largest P(hate) over the summaries",
    "reward_mean": "mean nothate logit of the summary (the PPO reward; higher = less hateful)",
    "reward_ci_low": "lower end of the bootstrap CI of the mean reward",
    "reward_ci_high": "upper end of the bootstrap CI of the mean reward",
    **{f"{m}_diff_vs_base": f"mean paired difference this model minus base in {m}"
                            + (" (x100, under ci_rule)" if m == "rouge1" else "") + "; empty for base"
       for m in DIFF_METRICS},
    **{f"{m}_diff_ci_low": f"lower end of the paired bootstrap CI of {m}_diff_vs_base" for m in DIFF_METRICS},
    **{f"{m}_diff_ci_high": f"upper end of the paired bootstrap CI of {m}_diff_vs_base" for m in DIFF_METRICS},
    "gen_tokens_mean": "mean summary length in tokens of the model's tokenizer (no special tokens)",
    "gen_words_mean": "mean summary length in whitespace-separated words",
    "trainable_params": "parameters the slot trained (adapter only for lora/detox; all for base/full)",
    "total_params": "parameters the slot runs with (base + its adapter for lora/detox)",
    "trainable_pct": "100 x trainable_params / total_params",
    "seconds_per_summary": "generation wall time per summary (see timing_note in results.json)",
}
RESULT_COLUMN_ORDER = [
    "model", "source", "n_dialogues", *[f"{k}_best" for k in ROUGE_KEYS], *[f"{k}_mean" for k in ROUGE_KEYS],
    *[f"{k}_lab" for k in ROUGE_KEYS],
    "ci_rule", *[f"{k}_ci_{e}" for k in ROUGE_KEYS for e in ("low", "high")], "bleu",
    "p_hate_mean", "p_hate_std", "p_hate_ci_low", "p_hate_ci_high", "hate_share", "p_hate_max",
    "reward_mean", "reward_ci_low", "reward_ci_high",
    *[c for m in DIFF_METRICS for c in (f"{m}_diff_vs_base", f"{m}_diff_ci_low", f"{m}_diff_ci_high")],
    "gen_tokens_mean", "gen_words_mean", "trainable_params", "total_params", "trainable_pct",
    "seconds_per_summary",
]
assert set(RESULT_COLUMN_ORDER) == set(RESULT_COLUMNS)

# Column (pattern) -> meaning, for predictions.csv (one row per dialogue).
PREDICTION_COLUMNS: dict[str, str] = {
    "id": "DialogSum dialogue id (e.g. test_0)",
    "topic": "DialogSum topic of the dialogue",
    "dialogue": "the dialogue text",
    "human_summary_<k>": "the k-th human reference summary (k = 1..3 on the DialogSum test split)",
    "<model>_summary": "the model's generated summary",
    "<model>_rouge1": "its ROUGE-1 F-measure x100 against the references, under ci_rule",
    "<model>_p_hate": "P(hate) of the summary alone",
    "<model>_reward": "nothate logit of the summary alone (PPO reward)",
    "<model>_reward_change": "<model>_reward minus base_reward (models other than base, when base is evaluated)",
}


@dataclass
class EvaluationResult:
    """What one evaluation produced.

    Attributes:
        models: evaluated slot names, in order.
        results: one dict per model with the keys of :data:`RESULT_COLUMNS`.
        predictions: one dict per dialogue with the columns of :data:`PREDICTION_COLUMNS`.
        meta: settings, dataset, protocols and timing notes (written to ``results.json``).
    """

    models: list[str]
    results: list[dict]
    predictions: list[dict]
    meta: dict = field(default_factory=dict)

    def results_frame(self):
        import pandas as pd
        return pd.DataFrame(self.results, columns=RESULT_COLUMN_ORDER)

    def predictions_frame(self):
        import pandas as pd
        return pd.DataFrame(self.predictions)

    def to_json(self) -> dict:
        return {**self.meta, "models": _json_safe(self.results),
                "results_columns": RESULT_COLUMNS, "predictions_columns": PREDICTION_COLUMNS}

    def write(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write ``results.csv``, ``results.json`` and ``predictions.csv`` to ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"results_csv": out / "results.csv", "results_json": out / "results.json",
                 "predictions_csv": out / "predictions.csv"}
        self.results_frame().to_csv(paths["results_csv"], index=False)
        self.predictions_frame().to_csv(paths["predictions_csv"], index=False)
        paths["results_json"].write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return paths


def _json_safe(value):
    """NaN -> None recursively, so results.json is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value

def prediction_rows(rows: Sequence[dict], models: Sequence[str], summaries: dict, rouge: dict,
                    scores: dict, rule: str) -> list[dict]:
    """The per-dialogue table (columns of :data:`PREDICTION_COLUMNS`)."""
    k = max(len(r["references"]) for r in rows)
    out = []
    for i, r in enumerate(rows):
        row = {"id": r["id"], "topic": r.get("topic", ""), "dialogue": r["dialogue"]}
        row.update({f"human_summary_{j + 1}": (r["references"][j] if j < len(r["references"]) else "")
                    for j in range(k)})
        for m in models:
            row.update({f"{m}_summary": summaries[m][i], f"{m}_rouge1": rouge[m][rule]["rouge1"][i],
                        f"{m}_p_hate": scores[m]["p_hate"][i], f"{m}_reward": scores[m]["reward"][i]})
        if "base" in models:
            for m in models:
                if m != "base":
                    row[f"{m}_reward_change"] = scores[m]["reward"][i] - scores["base"]["reward"][i]
        out.append(row)
    return out


# ---- presentation -------------------------------------------------------------------------
def _fmt_ci(mean: float, low: float, high: float, digits: int = 1) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def trainable_text(row: dict) -> str:
    """The "trainable parameters" cell of one results row: ``""`` for summaries read from a file;
    for the base slot, that it was not trained (its count is the whole model's, not a trained
    share: "100.00%" would read as a full fine-tune); else ``"N (P%)"`` of the slot's total."""
    if _missing(row.get("trainable_params")):
        return ""
    if row["model"] == "base":
        return f"none: not trained ({row['total_params']:,} parameters)"
    return f"{row['trainable_params']:,} ({row['trainable_pct']:.2f}%)"


def display_table(result: EvaluationResult):
    """A compact, human-readable table (pandas DataFrame) of the results, one row per model."""
    import pandas as pd

    from summarizer.inference.slot_config import SLOT_LABELS

    out = []
    for r in result.results:
        rule = r["ci_rule"]  # ROUGE-2/L/Lsum under the same rule as ROUGE-1 and its interval
        out.append({
            "Model": SLOT_LABELS.get(r["model"], r["model"]),
            f"ROUGE-1 ({rule}) [95% CI]": _fmt_ci(r[f"rouge1_{rule}"], r["rouge1_ci_low"], r["rouge1_ci_high"]),
            **{f"{ROUGE_NAMES[k]} {rule}": round(r[f"{k}_{rule}"], 1) for k in ("rouge2", "rougeL", "rougeLsum")},
            "ROUGE-1 mean-ref": round(r["rouge1_mean"], 1),
            "ROUGE-1 lab-comparable": round(r["rouge1_lab"], 1),
            "ROUGE-Lsum lab-comparable": round(r["rougeLsum_lab"], 1),
            "ΔROUGE-1 vs base": _fmt_ci(r["rouge1_diff_vs_base"], r["rouge1_diff_ci_low"], r["rouge1_diff_ci_high"]),
            "BLEU": round(r["bleu"], 1),
            "P(hate) [95% CI]": _fmt_ci(r["p_hate_mean"], r["p_hate_ci_low"], r["p_hate_ci_high"], 3),
            "P(hate) std": round(r["p_hate_std"], 3),
            f"share P≥{HATE_THRESHOLD}": round(r["hate_share"], 3), "P(hate) max": round(r["p_hate_max"], 3),
            "reward": round(r["reward_mean"], 3),
            "ΔP(hate) vs base": _fmt_ci(r["p_hate_diff_vs_base"], r["p_hate_diff_ci_low"], r["p_hate_diff_ci_high"], 3),
            "tokens": round(r["gen_tokens_mean"], 1), "words": round(r["gen_words_mean"], 1),
            "trainable params (%)": trainable_text(r),
            "s/summary": round(r["seconds_per_summary"], 4),
        })
    return pd.DataFrame(out)

