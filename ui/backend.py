"""The inference-engine selector: PyTorch or CTranslate2 (and its compute type) for every tab.

``build(studio)`` adds a backend dropdown, a compute-type dropdown, an Apply button and a status
line; Apply is also the API endpoint ``/set_backend``. The choice lives on ``studio.slots``, so
Prompting, Compare, Evaluate and the API all use it without knowing which engine runs.
"""
from __future__ import annotations

import gradio as gr

from summarizer.inference.slots import BACKENDS
from summarizer.inference.ct2_engine import COMPUTE_TYPES

from ui.access import teacher_only
from ui.common import user_errors
from ui.context import MODEL_QUEUE, Studio

HELP = ("**torch** runs the exact PyTorch models. **ct2** converts each slot once to CTranslate2 "
        "(cached; the first use of a slot takes a while) and generates faster on CPU; "
        "float32 gives the same greedy summaries as torch, int8 is faster and smaller but can "
        "change some words.")


def describe_backend(studio: Studio) -> str:
    """One line: the engine and compute type now in use."""
    slots = studio.slots
    return "torch (transformers)" if slots.backend == "torch" else f"ct2 (CTranslate2, {slots.compute_type})"


def set_backend(studio: Studio, backend: str, compute_type: str, progress) -> str:
    """Switch every slot to ``backend``/``compute_type`` and convert/load the filled slots now.

    On any failure to convert or load a slot the previous engine stays in use.

    Raises:
        gr.Error: unknown backend or compute type (the message names the field), or a slot that
            fails to convert or load (it names the slot and says the engine did not change).
    """
    slots = studio.slots
    previous = (slots.backend, slots.compute_type)
    with user_errors():
        slots.set_backend(backend, compute_type or "auto")
    progress(0, desc=f"loading models with {backend}")
    try:
        slots.load()
    except Exception as err:  # any failure (ctranslate2 raises RuntimeError too) keeps the old engine
        slots.set_backend(*previous)
        raise gr.Error(f"Engine not changed, still {describe_backend(studio)}: {err}",
                       print_exception=False) from err
    return describe_backend(studio)


def build(studio: Studio) -> dict:
    """The selector. Returns its components: ``backend``, ``compute_type``, ``apply``, ``status``."""
    gr.Markdown(HELP)
    with gr.Row():
        backend = gr.Dropdown(list(BACKENDS), value=studio.slots.backend, label="Inference engine",
                              elem_id="backend-engine", scale=1)
        compute = gr.Dropdown(list(COMPUTE_TYPES), value=studio.slots.compute_type,
                              label="Compute type (ct2 only)", elem_id="backend-compute", scale=1)
        apply = gr.Button("Apply", elem_id="backend-apply", scale=0)
        status = gr.Textbox(describe_backend(studio), label="Engine now", interactive=False,
                            elem_id="backend-status", scale=2)

    @teacher_only
    def apply_clicked(engine: str, compute_type: str, progress=gr.Progress()):
        """Reads engine and compute type; updates the "Engine now" line."""
        return set_backend(studio, engine, compute_type, progress)

    apply.click(apply_clicked, [backend, compute], status, api_name="set_backend",
                concurrency_id=MODEL_QUEUE)
    return {"backend": backend, "compute_type": compute, "apply": apply, "status": status}
