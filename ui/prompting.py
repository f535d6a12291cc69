"""Prompting tab: build a zero-/one-/few-shot or raw prompt, see it exactly, summarize with the base.

Endpoints: ``/load_dialogue`` (split, number -> dialogue, references, which row) and
``/summarize`` (dialogue, mode, example indices, example count, the eight generation settings ->
prompt, token count and notes, summary, ROUGE table, ROUGE JSON). The summary streams into the
page token by token; API clients get the final values.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import gradio as gr

from summarizer.inference.generation import GenerationSettings, STRATEGIES
from summarizer.inference.pacing import StreamPacer
from summarizer.prompts import DEFAULT_SHOTS, Example, MAX_SHOTS, MODES, Prompt, build_prompt, shot_costs
from summarizer.tasks import TASKS, label, template
from summarizer.text import clean_dialogue, parse_indices, whole_number

from ui.access import for_students
from ui.common import (ChoiceRadio, RawNumber, TextField, dialogue_picker, judged_against, one_of, rouge_markdown,
                       rouge_report, user_errors)
from ui import uploads
from ui.context import GENERATION_CONCURRENCY, GENERATION_QUEUE, Studio

MAX_EXAMPLES = MAX_SHOTS  # the tab's name for it (the cap on example numbers and count)
EXAMPLES_FIELD = "Example dialogues"
COUNT_FIELD = "How many examples"
RESPONSE_MODES = ("zero-shot", "raw")  # one- and few-shot examples are solved summaries
SETTING_NAMES = ("max_new_tokens", "min_new_tokens", "strategy", "temperature", "top_k", "top_p",
                 "num_beams", "seed")


class ShortestTrain:
    """The default examples: the train dialogues whose shot blocks (dialogue + first reference)
    cost the fewest tokens, cheapest first, so that they fit beside the dialogue.

    The :data:`MAX_EXAMPLES` shortest rows by characters are found once (one pass over the train
    split's two columns, about a second, on first use), then ordered by their token cost in the
    base model's tokenizer (one batched call), since characters only approximate tokens.
    """

    def __init__(self, studio: Studio):
        self.studio, self._order = studio, None

    def first(self, n: int, tokenizer=None) -> list[int]:
        """Row numbers of the ``n`` cheapest shots (``n <= MAX_EXAMPLES``)."""
        if self._order is None:
            train = self.studio.split("train")
            dialogues, references = list(train["dialogue"]), list(train["references"])
            lengths = [len(d) + len(r[0]) for d, r in zip(dialogues, references)]
            order = sorted(range(len(lengths)), key=lengths.__getitem__)[:MAX_EXAMPLES]
            if tokenizer is not None:
                costs = shot_costs(tokenizer, [Example(dialogues[i], references[i][0]) for i in order])
                order = [i for _, i in sorted(zip(costs, order))]
            self._order = order
        return self._order[:n]


def example_indices(indices_text: str | None, n_train: int) -> list[int]:
    """The distinct train numbers listed in ``indices_text``, in order, at most :data:`MAX_EXAMPLES`.

    Raises:
        ValueError: a bad number (see :func:`parse_indices`), or more than MAX_EXAMPLES distinct ones.
    """
    indices = list(dict.fromkeys(parse_indices(indices_text, n_train, what=EXAMPLES_FIELD)))
    if len(indices) > MAX_EXAMPLES:
        raise ValueError(f"{EXAMPLES_FIELD}: at most {MAX_EXAMPLES} distinct train numbers, got "
                         f"{len(indices)}; list fewer (more than a few never fit the 512-token prompt).")
    return indices


def pick_examples(studio: Studio, mode: str, indices_text: str | None, count,
                  shortest: ShortestTrain | None = None) -> list[Example]:
    """Solved train dialogues for a one-/few-shot prompt (none for zero-shot and raw).

    ``indices_text`` lists train row numbers (``"40, 80"``; repeats count once). When blank, the
    ``count`` cheapest train dialogues in tokens are used (one for one-shot; see
    :class:`ShortestTrain`), so that they fit beside the dialogue. Each shot's summary is its first human reference; its source is ``"train #i"``.

    Raises:
        ValueError: bad or too many indices, or a count that is not a whole number 1..10.
    """
    if mode not in ("one-shot", "few-shot"):
        return []
    train = studio.split("train")
    indices = example_indices(indices_text, len(train))
    if not indices:
        n = 1 if mode == "one-shot" else whole_number(count, f"{COUNT_FIELD} ({mode}, when no numbers are given)",
                                                      1, MAX_EXAMPLES)
        indices = (shortest or ShortestTrain(studio)).first(n, studio.slots.tokenizer)
    return [Example(train[i]["dialogue"], train[i]["references"][0], f"train #{i}") for i in indices]


def describe_prompt(prompt: Prompt) -> str:
    """Token count, each kept example's token cost, and every note on what was dropped or cut."""
    lines = [f"{prompt.n_tokens} of {prompt.max_tokens} tokens; {prompt.shots_used} example(s) in the prompt."]
    lines += [f"example {source or f'#{k + 1}'}: {tokens} tokens" for k, (source, tokens) in enumerate(prompt.shot_tokens)]
    return "\n".join(lines + prompt.notes)


def prepare(studio: Studio, dialogue, mode, indices_text, count, values, shortest=None, progress=None,
            task: str = "summary") -> tuple[tuple[str, list[str] | None, str | None], Prompt, GenerationSettings]:
    """((text read, its references or None to look them up, which reference ROUGE is judged
    against), built prompt, settings) from the Summarize inputs.

    With the ``response`` task a DialogSum or uploaded dialogue, or its context as Load shows it,
    is cut after turn k and the reference is turn k+1 (:meth:`Studio.task_row`); the prompt asks
    for the next turn.

    Raises:
        ValueError: any bad input; the message names the field.
    """
    settings = GenerationSettings.from_dict(dict(zip(SETTING_NAMES, values)))
    mode = one_of(mode, "Prompt", MODES)
    task = one_of(task, "Task", TASKS)
    if task == "response" and mode not in RESPONSE_MODES:
        raise ValueError(f"Prompt: the response task takes {' or '.join(RESPONSE_MODES)} (the examples of one- "
                         f"and few-shot prompts are summaries); choose one of those or the summary task.")
    text = clean_dialogue(dialogue)
    references = against = None  # a summary's are looked up after generating, so a missing model is named first
    if task == "response":
        example = studio.task_row(task, text)
        if example is not None:
            text, references, against = example["dialogue"], list(example["references"]), judged_against(example, task)
        else:
            references = []  # a pasted conversation: read whole, no next turn to judge against
    examples = pick_examples(studio, mode, indices_text, count, shortest)
    if progress:
        progress(0, desc=studio.slots.loading_note())
    prompt = build_prompt(mode, text, examples, tokenizer=studio.slots.tokenizer, max_tokens=studio.max_input_tokens,
                          zero_shot_template=template(task))
    return (text, references, against), prompt, settings


def outputs(studio: Studio, read: tuple[str, list[str] | None, str | None], prompt: Prompt, summary: str) -> tuple:
    """The five Summarize outputs: prompt, prompt info, summary, ROUGE table, ROUGE JSON (whose
    ``against`` says which reference it was computed against)."""
    text, references, against = read
    if references is None:
        row = studio.task_row("summary", text)
        references, against = (list(row["references"]) if row else []), judged_against(row, "summary")
    report = rouge_report(summary, references, against)
    return prompt.text, describe_prompt(prompt), summary, rouge_markdown(report), report


def summarize(studio: Studio, dialogue: str, mode: str, indices_text: str, count: float,
              *settings_and_progress, shortest: ShortestTrain | None = None, task: str = "summary"):
    """Summarize without streaming (same inputs and outputs as :func:`summarize_streamed`)."""
    *values, progress = settings_and_progress
    with user_errors():
        refs, prompt, settings = prepare(studio, dialogue, mode, indices_text, count, values, shortest, progress, task)
        summary = studio.slots.answer(["base"], [prompt.text], settings)["base"][0]
    return outputs(studio, refs, prompt, summary)


PACER = StreamPacer()  # one per process: the updates of all its pages share one event loop


def summarize_streamed(studio: Studio, dialogue: str, mode: str, indices_text: str, count: float,
                       *settings_and_progress, shortest: ShortestTrain | None = None, task: str = "summary",
                       pacer: StreamPacer | None = None):
    """Handler of Summarize. Reads the dialogue box, mode, example indices and count, and the eight
    generation controls; updates prompt, prompt info, summary, ROUGE table and ROUGE JSON.

    A generator: first the prompt, then the summary as it grows token by token, then the final
    values, whose summary is exactly the non-streamed one: it is the same
    :meth:`~summarizer.inference.slots.ModelSlots.answer` request (batched with other sessions'
    requests), with a stream callback for its row. While a class streams, each page's updates
    are spaced by ``pacer`` (default :data:`PACER`; see :class:`StreamPacer`), each with the
    newest text. Beam search cannot stream, so it shows only the final summary. When the page stops reading (a reload, Gradio's cancel), the request is
    withdrawn; other sessions' requests in the same batch go on.
    """
    *values, progress = settings_and_progress
    with user_errors():
        refs, prompt, settings = prepare(studio, dialogue, mode, indices_text, count, values, shortest, progress, task)
    yield prompt.text, describe_prompt(prompt), "", "", None
    updates: queue.SimpleQueue = queue.SimpleQueue()
    cancel, result = threading.Event(), {}

    def generate():  # in its own thread, so that this generator can read the stream meanwhile
        try:
            result["summary"] = studio.slots.answer(["base"], [prompt.text], settings, cancel=cancel,
                                                    streams={0: updates.put})["base"][0]
        except Exception as err:  # handed to the generator below, which raises it for the user
            result["error"] = err
        finally:
            updates.put(None)  # also ends the stream when generating failed before streaming

    worker = threading.Thread(target=generate, daemon=True)
    worker.start()
    info = describe_prompt(prompt)
    try:
        with (pacer or PACER).streaming() as interval:
            for partial in _newest(updates, interval):
                yield prompt.text, info, partial, "", None
    finally:
        cancel.set()  # nothing once the answer is in; withdraws it when the page stopped reading
    worker.join()
    if "error" in result:
        with user_errors():
            raise result["error"]
    yield outputs(studio, refs, prompt, result["summary"])


def _newest(updates: queue.SimpleQueue, interval: Callable[[], float] = lambda: 0.0):
    """The texts of ``updates`` until ``None``, at most one per ``interval()`` seconds, each the
    newest text waiting (those it overtook are skipped).

    A summary grows by one token per decoding step; with a class sharing a batch, the batch writes
    them faster than the server can send every page each of them (:class:`StreamPacer`), so a
    page gets the newest text at its next turn and never falls behind the model. The text still
    waiting when the stream ends is not sent: the caller's final values follow at once.
    """
    last = float("-inf")  # when the previous text was handed out (time.monotonic)
    while True:
        text = updates.get()
        if text is None:
            return
        deadline = last + interval()
        while True:  # until the deadline, newer texts replace this one
            wait = deadline - time.monotonic()
            try:
                newer = updates.get(timeout=wait) if wait > 0 else updates.get_nowait()
            except queue.Empty:
                break
            if newer is None:
                return
            text = newer
        last = time.monotonic()
        yield text


def output_label(task: str) -> str:
    """The output box's label under ``task``: "Summary (base model)" or "Next turn (base model)"."""
    return f"{label(task, 'output')} (base model)"


def generation_controls() -> list[gr.components.Component]:
    """The eight generation controls, in :data:`SETTING_NAMES` order (defaults of GenerationSettings)."""
    d = GenerationSettings()
    with gr.Row():
        controls = [RawNumber(d.max_new_tokens, precision=0, label="Max new tokens (1..512)", elem_id="gen-max-new"),
                    RawNumber(d.min_new_tokens, precision=0, label="Min new tokens", elem_id="gen-min-new"),
                    ChoiceRadio(list(STRATEGIES), value=d.strategy, label="Strategy", elem_id="gen-strategy")]
    with gr.Row():
        controls += [RawNumber(d.temperature, label="Temperature (sampling)", elem_id="gen-temperature"),
                     RawNumber(d.top_k, precision=0, label="Top-k (sampling, 0 = off)", elem_id="gen-top-k"),
                     RawNumber(d.top_p, label="Top-p (sampling)", elem_id="gen-top-p"),
                     RawNumber(d.num_beams, precision=0, label="Beams (beam)", elem_id="gen-beams"),
                     RawNumber(d.seed, precision=0, label="Seed", elem_id="gen-seed")]
    return controls


def build(studio: Studio, task: gr.State | None = None) -> dict:
    """Build the Prompting tab; returns its ``summary`` component for the Toxicity tab."""
    task = task if task is not None else gr.State("summary")  # the page's task (ui.common.task_selector)
    gr.Markdown("Pick a DialogSum dialogue (or paste your own), choose a prompt, and see exactly "
                "what the **base** model reads and writes. Prompts longer than "
                f"{studio.max_input_tokens} tokens are shortened and the notes say how.")
    where = {}
    dialogue, refs, loaded = dialogue_picker(studio, "prompting", api_name="load_dialogue", task=task, parts=where)
    upload = uploads.panel(studio)
    with gr.Row():
        mode = ChoiceRadio(list(MODES), value="zero-shot", label="Prompt", elem_id="prompting-mode")
        indices = TextField("", label=f"{EXAMPLES_FIELD}: train numbers, e.g. 40, 80 (at most {MAX_EXAMPLES}; "
                                       "blank = the N shortest, which fit best)", elem_id="prompting-examples")
        count = RawNumber(DEFAULT_SHOTS, precision=0, minimum=1, maximum=MAX_EXAMPLES,
                          label=f"{COUNT_FIELD} (few-shot, when no numbers are given)", elem_id="prompting-count")
    with gr.Accordion("Generation settings", open=False, elem_id="prompting-settings"):
        controls = generation_controls()
    run = gr.Button("Summarize", variant="primary", elem_id="prompting-run")
    with gr.Row():
        with gr.Column():
            # A Textbox, not gr.Code: Code strips the template's trailing space ("Summary: ").
            prompt = gr.Textbox(label="The exact prompt (as the model reads it)", lines=8, max_lines=16,
                                interactive=False, buttons=["copy"], elem_id="prompting-prompt")
            info = gr.Textbox(label="Prompt length, example costs and notes", lines=4, interactive=False,
                              elem_id="prompting-prompt-info")
        with gr.Column():
            summary = TextField(label=output_label("summary"), lines=3, interactive=False,
                                 elem_id="prompting-summary")
            rouge_md = gr.Markdown(label="ROUGE table", elem_id="prompting-rouge")
    with gr.Accordion("ROUGE as JSON", open=False):
        rouge_json = gr.JSON(label="ROUGE", elem_id="prompting-rouge-json")

    shortest = ShortestTrain(studio)

    @for_students
    def summarize_clicked(dialogue, mode, example_indices, example_count, max_new_tokens, min_new_tokens,
                          strategy, temperature, top_k, top_p, num_beams, seed, task_now, request: gr.Request,
                          progress=gr.Progress()):
        """Summarize with the base model, streaming the summary (see :func:`summarize_streamed`);
        at most ``SESSION_LIMIT`` requests of one session wait at a time."""
        studio.activity.asked(request, "summarize", dialogue)  # the teacher's Class view
        with studio.limit.admit(request):
            yield from summarize_streamed(studio, dialogue, mode, example_indices, example_count, max_new_tokens,
                                          min_new_tokens, strategy, temperature, top_k, top_p, num_beams, seed,
                                          progress, shortest=shortest, task=task_now)

    @for_students
    def show_task_labels(task_now):
        """Reads the page's task; updates the output box's label ("Summary" or "Next turn")."""
        return gr.Textbox(label=output_label(task_now if task_now in TASKS else "summary"))

    task.change(show_task_labels, task, summary, api_visibility="private")
    run.click(summarize_clicked, [dialogue, mode, indices, count, *controls, task],
              [prompt, info, summary, rouge_md, rouge_json], api_name="summarize",
              concurrency_id=GENERATION_QUEUE, concurrency_limit=GENERATION_CONCURRENCY)
    # what a lesson (ui.lessons) saves and restores
    lesson_fields = {"dialogue": dialogue, "prompt_mode": mode, "examples": indices, "shots": count,
                     "controls": controls, "where": [where["split"], where["index"], refs, loaded]}
    return {"summary": summary, "teacher_only": [upload["box"]], "lesson_fields": lesson_fields}
