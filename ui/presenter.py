"""Presenter mode: larger text for a projector, with each tab's key output kept on screen.

A checkbox in the page header toggles the CSS class ``presenter`` on ``<body>`` in the browser
(no server round trip); ``python app.py --presenter`` starts with it ticked. The rules below
scale Gradio's text-size variables and keep wide outputs inside the page width of a 1400 px
projector: the Compare columns and the Evaluate tables wrap instead of scrolling sideways.

Gradio 6 takes ``css`` in ``launch()``, not in ``gr.Blocks()``: app.py passes :data:`CSS`.
"""
from __future__ import annotations

import gradio as gr

CLASS = "presenter"

# Gradio's theme variables (--text-*, --block-*-text-size, --input-text-size) drive most sizes;
# the textarea and table rules catch components that set their own.
CSS = f"""
body.{CLASS} .gradio-container {{
    --text-xxs: 14px; --text-xs: 16px; --text-sm: 18px; --text-md: 20px; --text-lg: 24px;
    --text-xl: 28px; --text-xxl: 32px;
    --block-label-text-size: 18px; --block-info-text-size: 17px; --block-title-text-size: 20px;
    --input-text-size: 20px; --button-large-text-size: 22px; --button-small-text-size: 18px;
    --section-header-text-size: 20px;
    font-size: 20px;
}}
body.{CLASS} .gradio-container textarea,
body.{CLASS} .gradio-container input {{ font-size: 20px !important; line-height: 1.4; }}
body.{CLASS} .gradio-container .prose {{ font-size: 20px; }}
body.{CLASS} .gradio-container table {{ font-size: 18px; }}
/* Keep key outputs inside the page: long cells wrap, the Compare columns share the width. */
body.{CLASS} .gradio-container table td,
body.{CLASS} .gradio-container table th {{ overflow-wrap: break-word; }}
body.{CLASS} #evaluate-results table {{ table-layout: auto; width: 100%; }}
/* The metric names (e.g. "ΔROUGE-1 vs base (lab-comparable) [95% CI]") wrap between words. */
body.{CLASS} #evaluate-results td, body.{CLASS} #evaluate-results td * {{ white-space: normal; }}
/* The four Compare summaries and score lines show whole at the larger size. */
body.{CLASS} [id^="compare-summary-"] textarea {{ min-height: 9.5em; }}
body.{CLASS} [id^="compare-scores-"] textarea {{ min-height: 4.4em; }}
/* Headers break between words only (a 1400 px screen fits the metric-by-model table). */
#evaluate-results th, #evaluate-results th * {{ word-break: normal; overflow-wrap: normal; hyphens: none; }}
"""

# Not presenter-specific, but app-wide CSS has one home: the Compare handout box stays small
# until it holds files (Gradio's empty file box is 236 px tall).
CSS += "#compare-handout .empty.large { min-height: 60px; height: 60px; }\n"

# Runs in the browser: ``on`` is the checkbox's value.
TOGGLE_JS = f"(on) => {{ document.body.classList.toggle('{CLASS}', Boolean(on)); return []; }}"


def toggle(on: bool = False) -> gr.Checkbox:
    """The header checkbox; call inside ``gr.Blocks`` and wire it with :func:`wire`."""
    return gr.Checkbox(value=on, label="Presenter mode (larger text for a projector)",
                       elem_id="presenter-toggle", container=False)


def wire(demo: gr.Blocks, checkbox: gr.Checkbox) -> None:
    """Apply the checkbox's state on every change and on every page load (``--presenter``)."""
    checkbox.change(None, checkbox, None, js=TOGGLE_JS, queue=False, api_visibility="private")
    demo.load(None, checkbox, None, js=TOGGLE_JS, queue=False, api_visibility="private")
