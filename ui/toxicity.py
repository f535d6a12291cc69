"""Toxicity tab: the hate-speech reward of any text, live as you type, and of the shown summaries.

Endpoints: ``/toxicity`` (text -> reward, P(hate)) and ``/score_shown`` (the Prompting summary
and the Compare JSON -> a table of reward and P(hate) per summary).
"""
from __future__ import annotations

import gradio as gr

from summarizer.text import MAX_SCORED_CHARS, clean_dialogue, clean_text

from .common import user_errors
from .context import MODEL_QUEUE, Studio

TABLE_HEADERS = ["source", "summary", "reward (nothate logit)", "P(hate)"]


def score_text(studio: Studio, text: str) -> tuple[float | None, float | None]:
    """(reward, P(hate)) of the cleaned ``text``; (None, None) for an empty box."""
    if not clean_text(text):
        return None, None
    with user_errors():
        score = studio.toxicity.score([clean_dialogue(text, MAX_SCORED_CHARS, what="text")])[0]
    return round(score.reward, 4), round(score.p_hate, 4)


def shown_summaries(prompting_summary: str | None, compare_results: dict | None) -> list[tuple[str, str]]:
    """(source, text) of the Prompting summary and the filled Compare slots' summaries on screen."""
    shown = [("Prompting (base)", prompting_summary)] if clean_text(prompting_summary) else []
    for row in (compare_results or {}).get("slots", []):
        if row.get("filled") and clean_text(row.get("summary")):
            shown.append((f"Compare: {row['label']}", row["summary"]))
    return shown


def score_shown(studio: Studio, prompting_summary: str | None, compare_results: dict | None) -> list[list]:
    """Rows of :data:`TABLE_HEADERS` for every summary currently shown.

    Raises:
        gr.Error: nothing has been summarized yet.
    """
    shown = shown_summaries(prompting_summary, compare_results)
    if not shown:
        raise gr.Error("No summaries shown yet: run Summarize (Prompting) or Compare first.",
                       print_exception=False)
    scores = studio.toxicity.score([text for _, text in shown])
    return [[src, text, round(s.reward, 4), round(s.p_hate, 4)] for (src, text), s in zip(shown, scores)]


def build(studio: Studio, prompting_summary: gr.Textbox | None = None,
          compare_results: gr.JSON | None = None) -> None:
    """Build the Toxicity tab; the two optional components are what "score the summaries" reads."""
    gr.Markdown("Reward = the `nothate` logit of the hate-speech classifier (the PPO reward; higher "
                "is less hateful). P(hate) = softmax probability of the `hate` class. Both update "
                "as you type.")
    text = gr.Textbox(label="Text", lines=4, placeholder="Type or paste any text", elem_id="toxicity-text")
    with gr.Row():
        reward = gr.Number(label="Reward (nothate logit)", interactive=False, elem_id="toxicity-reward")
        p_hate = gr.Number(label="P(hate)", interactive=False, elem_id="toxicity-p-hate")

    def text_changed(text, progress=gr.Progress()):
        """Reads the text box; updates reward and P(hate)."""
        return score_text(studio, text)

    text.input(text_changed, text, [reward, p_hate], api_name="toxicity", trigger_mode="always_last",
               concurrency_id=MODEL_QUEUE, concurrency_limit=1, show_progress="minimal")
    if prompting_summary is None or compare_results is None:
        return
    button = gr.Button("Score the summaries currently shown", elem_id="toxicity-score-shown")
    table = gr.Dataframe(headers=TABLE_HEADERS, datatype="str", interactive=False, wrap=True,
                         elem_id="toxicity-shown")

    def shown_clicked(prompting_summary, compare_results, progress=gr.Progress()):
        """Reads the Prompting summary and the Compare JSON; updates the table."""
        return score_shown(studio, prompting_summary, compare_results)

    button.click(shown_clicked, [prompting_summary, compare_results], table, api_name="score_shown",
                 concurrency_id=MODEL_QUEUE, concurrency_limit=1)
