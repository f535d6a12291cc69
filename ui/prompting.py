"""Prompting tab: build a zero-/one-/few-shot or raw prompt, see it exactly, summarize with the base.

Endpoints: ``/load_dialogue`` (split, number -> dialogue, references, which row) and
``/summarize`` (dialogue, mode, example indices, example count, the eight generation settings ->
prompt, token count and notes, summary, ROUGE table, ROUGE JSON).
"""
from __future__ import annotations

import gradio as gr

from summarizer.generation import STRATEGIES, GenerationSettings
from summarizer.prompts import MODES, Example, Prompt, build_prompt
from summarizer.text import clean_dialogue, parse_indices

from .common import dialogue_picker, progress_callback, rouge_markdown, rouge_report, user_errors
from .context import MODEL_QUEUE, Studio

DEFAULT_SHOTS = 2
SETTING_NAMES = ("max_new_tokens", "min_new_tokens", "strategy", "temperature", "top_k", "top_p",
                 "num_beams", "seed")


def pick_examples(studio: Studio, mode: str, indices_text: str, count: float | None) -> list[Example]:
    """Solved train dialogues for a one-/few-shot prompt (none for zero-shot and raw).

    ``indices_text`` lists train row numbers (``"40, 80"``); when blank, the first ``count`` train
    dialogues are used (one for one-shot). Each shot's summary is its first human reference.

    Raises:
        ValueError: bad indices, or a count below 1 for a shot mode.
    """
    if mode not in ("one-shot", "few-shot"):
        return []
    train = studio.split("train")
    indices = parse_indices(indices_text, len(train))
    if not indices:
        n = 1 if mode == "one-shot" else int(count or 0)
        if not 1 <= n <= 10:
            raise ValueError(f"How many examples must be 1..10 for a {mode} prompt, got {count}.")
        indices = list(range(n))
    return [Example(train[i]["dialogue"], train[i]["references"][0]) for i in indices]


def describe_prompt(prompt: Prompt) -> str:
    """Token count, shots kept, and every note on what was dropped or cut to fit the limit."""
    lines = [f"{prompt.n_tokens} of {prompt.max_tokens} tokens; {prompt.shots_used} example(s) in the prompt."]
    return "\n".join(lines + prompt.notes)


def summarize(studio: Studio, dialogue: str, mode: str, indices_text: str, count: float,
              *settings_and_progress):
    """Handler of Summarize. Reads the dialogue box, mode, example indices and count, and the eight
    generation controls; updates prompt, prompt info, summary, ROUGE table and ROUGE JSON."""
    *values, progress = settings_and_progress
    with user_errors():
        settings = GenerationSettings.from_dict(dict(zip(SETTING_NAMES, values)))
        text = clean_dialogue(dialogue)
        progress(0, desc="loading the base model")
        prompt = build_prompt(mode, text, pick_examples(studio, mode, indices_text, count),
                              tokenizer=studio.slots.tokenizer, max_tokens=studio.max_input_tokens)
        summary = studio.slots.generate(["base"], [prompt.text], settings,
                                        on_batch=progress_callback(progress, "generating"))["base"][0]
    report = rouge_report(summary, studio.references_for(text))
    return prompt.text, describe_prompt(prompt), summary, rouge_markdown(report), report


def generation_controls() -> list[gr.components.Component]:
    """The eight generation controls, in :data:`SETTING_NAMES` order (defaults of GenerationSettings)."""
    d = GenerationSettings()
    with gr.Row():
        controls = [gr.Number(d.max_new_tokens, precision=0, label="Max new tokens (1..512)", elem_id="gen-max-new"),
                    gr.Number(d.min_new_tokens, precision=0, label="Min new tokens", elem_id="gen-min-new"),
                    gr.Radio(list(STRATEGIES), value=d.strategy, label="Strategy", elem_id="gen-strategy")]
    with gr.Row():
        controls += [gr.Number(d.temperature, label="Temperature (sampling)", elem_id="gen-temperature"),
                     gr.Number(d.top_k, precision=0, label="Top-k (sampling, 0 = off)", elem_id="gen-top-k"),
                     gr.Number(d.top_p, label="Top-p (sampling)", elem_id="gen-top-p"),
                     gr.Number(d.num_beams, precision=0, label="Beams (beam)", elem_id="gen-beams"),
                     gr.Number(d.seed, precision=0, label="Seed", elem_id="gen-seed")]
    return controls


def build(studio: Studio) -> dict:
    """Build the Prompting tab; returns its ``summary`` component for the Toxicity tab."""
    gr.Markdown("Pick a DialogSum dialogue (or paste your own), choose a prompt, and see exactly "
                "what the **base** model reads and writes. Prompts longer than "
                f"{studio.max_input_tokens} tokens are shortened and the notes say how.")
    dialogue, _, _ = dialogue_picker(studio, "prompting", api_name="load_dialogue")
    with gr.Row():
        mode = gr.Radio(list(MODES), value="zero-shot", label="Prompt", elem_id="prompting-mode")
        indices = gr.Textbox("", label="Example dialogues: train numbers, e.g. 40, 80 (blank = the first N)",
                             elem_id="prompting-examples")
        count = gr.Number(DEFAULT_SHOTS, precision=0, minimum=1, maximum=10,
                          label="How many examples (few-shot, when no numbers are given)", elem_id="prompting-count")
    with gr.Accordion("Generation settings", open=False, elem_id="prompting-settings"):
        controls = generation_controls()
    run = gr.Button("Summarize", variant="primary", elem_id="prompting-run")
    with gr.Row():
        with gr.Column():
            # A Textbox, not gr.Code: Code strips the template's trailing space ("Summary: ").
            prompt = gr.Textbox(label="The exact prompt (as the model reads it)", lines=8, max_lines=16,
                                interactive=False, buttons=["copy"], elem_id="prompting-prompt")
            info = gr.Textbox(label="Prompt length and notes", lines=2, interactive=False,
                              elem_id="prompting-prompt-info")
        with gr.Column():
            summary = gr.Textbox(label="Summary (base model)", lines=3, interactive=False,
                                 elem_id="prompting-summary")
            rouge_md = gr.Markdown(label="ROUGE table", elem_id="prompting-rouge")
    with gr.Accordion("ROUGE as JSON", open=False):
        rouge_json = gr.JSON(label="ROUGE", elem_id="prompting-rouge-json")

    def summarize_clicked(dialogue, mode, example_indices, example_count, max_new_tokens, min_new_tokens,
                          strategy, temperature, top_k, top_p, num_beams, seed, progress=gr.Progress()):
        """Summarize with the base model (see :func:`summarize`)."""
        return summarize(studio, dialogue, mode, example_indices, example_count, max_new_tokens,
                         min_new_tokens, strategy, temperature, top_k, top_p, num_beams, seed, progress)

    run.click(summarize_clicked, [dialogue, mode, indices, count, *controls],
              [prompt, info, summary, rouge_md, rouge_json], api_name="summarize",
              concurrency_id=MODEL_QUEUE, concurrency_limit=1)
    return {"summary": summary}
