"""Score summaries produced elsewhere: a CSV upload for the Evaluate tab (endpoint ``/score_predictions``).

The file (layout in :mod:`summarizer.evaluation.predictions_file`: an ``id`` or ``dialogue`` column and one
column per model) is matched against the chosen split and scored by
:func:`summarizer.evaluation.score_predictions`, the same code as the Evaluate CLI's ``--predictions``, without loading a
summarizer. The lead places :func:`build` inside the Evaluate tab.
"""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import gradio as gr

from summarizer.evaluation.results import TOXICITY_PROTOCOL
from summarizer.evaluation.evaluate import score_predictions
from summarizer.inference.slot_config import SLOTS
from summarizer.inference.slot_config import SlotError
from summarizer.evaluation.predictions_file import MAX_FILE_BYTES, PredictionsFileError
from summarizer.evaluation.rouge import LAB_PROTOCOL, PROTOCOLS_NOTE

from ui.access import teacher_only
from ui.context import MODEL_QUEUE, Studio
from ui.evaluate.tab import MAX_DIALOGUES, TAB_RULE, metric_figure, metrics_by_model, results_dir

# An upload holds the shared model queue; it may score as many summaries as an Evaluate run
# (MAX_DIALOGUES x every slot), no more. The CLI's --predictions has no such cap.
MAX_SUMMARIES = MAX_DIALOGUES * len(SLOTS)


def score_file(studio: Studio, path: str | os.PathLike | None, split: str, toxicity: bool):
    """(status, results table, chart, files, results rows) for the uploaded CSV at ``path``.

    Raises:
        ValueError: no file, a file over :data:`MAX_FILE_BYTES`, a file that cannot be matched, or
            one with more than :data:`MAX_SUMMARIES` dialogues x models (:class:`PredictionsFileError`,
            whose message names the column, row, ids or limit and what to do).
    """
    if not path:
        raise ValueError("Predictions file: upload a CSV with an 'id' (or 'dialogue') column and one "
                         "column of summaries per model.")
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise PredictionsFileError(f"Predictions file: {size:,} bytes, over the limit of {MAX_FILE_BYTES:,}.")
    tokenizer, why_not = _tokenizer(studio)
    result = score_predictions(Path(path).read_bytes(), studio.split(split), split,
                               studio.toxicity if toxicity else None, tokenizer, max_summaries=MAX_SUMMARIES,
                               rule=TAB_RULE)
    result.meta.update(dataset=str(studio.dataset), summaries_from=Path(path).name)
    out = results_dir() / f"predictions-{datetime.now():%Y%m%d-%H%M%S-%f}"
    paths = result.write(out)
    status = (f"**{result.meta['n_dialogues']} dialogues** of {studio.dataset} ({split}) matched; models from the file: "
              f"{', '.join(result.models)}. "
              + ("Summary tokens are counted with the base model's tokenizer. " if tokenizer is not None else
                 f"Summary tokens were not counted ({why_not}); choose a base model whose tokenizer "
                 "loads to count them. ")
              + f"Files in `{out}`.\n\n{PROTOCOLS_NOTE} {LAB_PROTOCOL} "
              + (TOXICITY_PROTOCOL if toxicity else "Toxicity not scored."))
    return (status, metrics_by_model(result.results), metric_figure(result.results, "ROUGE-1"),
            [str(p) for p in paths.values()], result.results)


def _tokenizer(studio: Studio) -> tuple[object | None, str]:
    """(the base slot's tokenizer, "") from the slots' cache, loaded at most once per base (no
    model load), or (None, why) when it cannot be read: the upload is scored without token counts."""
    try:
        return studio.slots.base_tokenizer(), ""
    except SlotError as err:
        return None, str(err)


def build(studio: Studio) -> dict:
    """Upload, split, toxicity switch and a Score button; results in their own table and chart."""
    with gr.Accordion("Score summaries produced elsewhere (CSV upload)", open=False):
        gr.Markdown("A CSV with an `id` column (DialogSum ids such as `test_0`; the hub CSV's `test_0_1` "
                    "also works) or a `dialogue` column, and one column per model holding its summaries "
                    "(the column name is the model name; the app's own `predictions.csv` works too). "
                    "Scored like an evaluation: same table, intervals and files; no summarizer is loaded. "
                    f"At most {MAX_SUMMARIES:,} summaries (dialogues x models) per file, as an Evaluate run; "
                    "for more, use `python -m summarizer.evaluation --predictions FILE.csv`.")
        with gr.Row():
            upload = gr.File(label="Predictions CSV", file_types=[".csv"], type="filepath",
                             elem_id="predictions-file")
            split = gr.Dropdown(["test", "validation", "train"], value="test", label="Split of the ids")
            toxicity = gr.Checkbox(True, label="Score toxicity (loads the classifier)")
        score_btn = gr.Button("Score the file", elem_id="predictions-score")
        status = gr.Markdown()
        table = gr.Dataframe(label="Results of the file", interactive=False, wrap=True,
                             elem_id="predictions-results")
        chart = gr.Plot(label="ROUGE-1 by model")
        files = gr.File(label="Download results (CSV, JSON)", file_count="multiple", interactive=False)
        results_state = gr.State([])

    @teacher_only
    def on_score(path, split_name, with_toxicity):
        """Reads the uploaded file, split and toxicity switch; updates status, table, chart, files."""
        try:
            return score_file(studio, path, split_name, bool(with_toxicity))
        except (ValueError, OSError) as err:
            raise gr.Error(f"Predictions file: {err}" if "Predictions file" not in str(err) else str(err),
                           print_exception=False) from err

    score_btn.click(on_score, [upload, split, toxicity], [status, table, chart, files, results_state],
                    api_name="score_predictions", concurrency_id=MODEL_QUEUE)
    return {"upload": upload, "table": table}
