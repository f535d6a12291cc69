"""Toxicity tab: the hate-speech reward of any text, live as you type, and of the shown summaries.

Endpoints: ``/toxicity`` (text -> reward, P(hate), a note on what was read) and ``/score_shown``
(the Prompting summary and the Compare JSON -> a table of reward, P(hate) and tokens read per
summary). The classifier reads at most its first 512 tokens of a text; both say when it did.
"""
from __future__ import annotations

import gradio as gr

from summarizer.text import MAX_SCORED_CHARS, clean_dialogue, clean_text, excerpt
from summarizer.toxicity import ToxicityScore

from ui.access import for_students
from ui.common import TextField, user_errors
from ui.compare.results_json import read_results
from ui.context import MODEL_QUEUE, Studio

TABLE_HEADERS = ["source", "summary", "reward (nothate logit)", "P(hate)", "tokens read"]
# Summary gets the most room, but the three short columns always stay on screen (1400 px window).
COLUMN_WIDTHS = ["15%", "45%", "15%", "10%", "15%"]
NOT_SCORED = "Not scored yet: type or paste a text."
REFUSED = "Not scored: the text was refused (see the message)."
TEXT_FIELD = "Text"
SCORER_LIMIT = ("the toxicity scorer takes texts up to that length and reads only their first 512 "
                "tokens (about 2,000 characters): paste a shorter text.")


def read_note(score: ToxicityScore) -> str:
    """A sentence saying how much of the text the classifier read (all, or the first 512 tokens)."""
    if score.truncated:
        return (f"Scored the first {score.tokens_read} of {score.n_tokens} tokens: the classifier "
                f"reads at most {score.tokens_read}, the rest of the text was not read.")
    return f"Scored the whole text ({score.n_tokens} tokens; the classifier reads up to 512)."


def tokens_read_cell(score: ToxicityScore) -> str:
    """The "tokens read" cell: ``"37"``, or ``"first 512 of 900"`` when the text was cut."""
    return f"first {score.tokens_read} of {score.n_tokens}" if score.truncated else str(score.n_tokens)


def score_text(studio: Studio, text: str | None) -> tuple[float | None, float | None, str]:
    """(reward, P(hate), note) of the cleaned ``text``; (None, None, not scored) for an empty box.

    Raises:
        gr.Error: ``text`` is not text, or is over :data:`MAX_SCORED_CHARS` characters (the
            message names the "Text" field, the limit and the scorer's 512-token reading).
    """
    with user_errors():
        if text is not None and not isinstance(text, str):
            raise ValueError(f"{TEXT_FIELD} must be text, got a {type(text).__name__} ({excerpt(text)}).")
        if not clean_text(text):
            return None, None, NOT_SCORED
        cleaned = clean_dialogue(text, MAX_SCORED_CHARS, what=TEXT_FIELD.lower(), why_limit=SCORER_LIMIT)
        score = studio.toxicity.score([cleaned])[0]
    return round(score.reward, 4), round(score.p_hate, 4), read_note(score)


def shown_scores(reward: float | None, p_hate: float | None, note: str) -> tuple[str, str, str]:
    """What the tab's boxes show: the numbers as text, or empty boxes (no ``0``) when not scored."""
    return ("" if reward is None else f"{reward:.4f}", "" if p_hate is None else f"{p_hate:.4f}", note)


def shown_summaries(prompting_summary: str | None, compare_results) -> list[tuple[str, str]]:
    """(source, cleaned text) of the Prompting summary and the filled Compare slots' summaries.

    ``compare_results`` is the ``/compare`` JSON, object or JSON text, checked by
    :func:`ui.compare.results_json.read_results` (the check the handout export uses); ``None`` or an
    empty one gives no Compare rows. A slot's source is its own label, not one from the JSON.

    Raises:
        ValueError: malformed Compare results (naming the field), or a Prompting summary over
            :data:`MAX_SCORED_CHARS` characters.
    """
    shown = []
    if clean_text(prompting_summary):
        shown.append(("Prompting (base)", clean_dialogue(prompting_summary, MAX_SCORED_CHARS,
                                                          what="Prompting summary", why_limit=SCORER_LIMIT)))
    checked = read_results(compare_results)
    for row in checked["slots"] if checked else []:
        if row["filled"] and row["summary"]:  # an empty slot's summary is its how-to-fill note
            shown.append((f"Compare: {row['label']}", clean_dialogue(
                row["summary"], MAX_SCORED_CHARS, what=f"Compare summary of {row['label']}", why_limit=SCORER_LIMIT)))
    return shown


def score_shown(studio: Studio, prompting_summary: str | None, compare_results) -> list[list]:
    """Rows of :data:`TABLE_HEADERS` for every summary currently shown.

    Raises:
        gr.Error: nothing has been summarized yet, or malformed input (see :func:`shown_summaries`).
    """
    with user_errors():
        shown = shown_summaries(prompting_summary, compare_results)
        if not shown:
            raise ValueError("No summaries shown yet: run Summarize (Prompting) or Compare first.")
        scores = studio.toxicity.score([text for _, text in shown])
    return [[src, text, round(s.reward, 4), round(s.p_hate, 4), tokens_read_cell(s)]
            for (src, text), s in zip(shown, scores)]


def build(studio: Studio, prompting_summary: gr.Textbox | None = None,
          compare_results: gr.JSON | None = None) -> None:
    """Build the Toxicity tab; the two optional components are what "score the summaries" reads."""
    gr.Markdown("Reward = the `nothate` logit of the hate-speech classifier (the PPO reward; higher "
                "is less hateful). P(hate) = softmax probability of the `hate` class. Both update "
                "as you type. The classifier reads **at most the first 512 tokens** of a text "
                "(about 2,000 characters); the note beside the numbers says when the rest was not "
                f"read. Texts over {MAX_SCORED_CHARS:,} characters are refused.", elem_id="toxicity-intro")
    text = TextField(label=TEXT_FIELD, lines=4, placeholder="Type or paste any text", elem_id="toxicity-text")
    with gr.Row():
        # Text boxes, not gr.Number: a Number shows 0 before anything is scored, which reads as a score.
        reward = gr.Textbox("", label="Reward (nothate logit)", placeholder="not scored yet",
                            interactive=False, elem_id="toxicity-reward")
        p_hate = gr.Textbox("", label="P(hate)", placeholder="not scored yet", interactive=False,
                            elem_id="toxicity-p-hate")
        note = gr.Textbox(NOT_SCORED, label="What was scored", interactive=False, elem_id="toxicity-note")

    @for_students
    def text_changed(text, progress=gr.Progress()):
        """Reads the text box; updates the reward, P(hate) and note boxes."""
        return shown_scores(*score_text(studio, text))

    scored = text.input(text_changed, text, [reward, p_hate, note], api_visibility="private",
                        trigger_mode="always_last", concurrency_id=MODEL_QUEUE, concurrency_limit=1,
                        show_progress="minimal")
    # Emptying the box (select all, delete) may not fire "input" at once in the browser; "change"
    # does, and clears the numbers without queueing model work.
    text.change(for_students(lambda t: shown_scores(None, None, NOT_SCORED) if not clean_text(t) else (gr.skip(),) * 3),
                text, [reward, p_hate, note], api_visibility="private", queue=False)
    # A refused text must not leave the previous text's numbers on screen.
    scored.failure(for_students(lambda: shown_scores(None, None, REFUSED)), None, [reward, p_hate, note],
                   api_visibility="private", queue=False)

    @for_students
    def toxicity(text: str) -> tuple[float | None, float | None, str]:
        """Score ``text``: (reward = nothate logit, P(hate), a note on how many tokens were read);
        (None, None, note) for an empty text. The classifier reads at most 512 tokens."""
        return score_text(studio, text)

    # The API keeps numbers (the boxes above show text), so it is its own endpoint.
    gr.api(toxicity, api_name="toxicity", concurrency_id=MODEL_QUEUE, concurrency_limit=1)
    if prompting_summary is None or compare_results is None:
        return
    button = gr.Button("Score the summaries currently shown", elem_id="toxicity-score-shown")
    table = gr.Dataframe(headers=TABLE_HEADERS, datatype="str", interactive=False, wrap=True,
                         column_widths=COLUMN_WIDTHS, elem_id="toxicity-shown")

    @for_students
    def shown_clicked(prompting_summary, compare_results, progress=gr.Progress()):
        """Reads the Prompting summary and the Compare JSON; updates the table."""
        return score_shown(studio, prompting_summary, compare_results)

    button.click(shown_clicked, [prompting_summary, compare_results], table, api_name="score_shown",
                 concurrency_id=MODEL_QUEUE, concurrency_limit=1)
