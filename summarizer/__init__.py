"""Shared model core of Dialogue Summarization Studio.

The app (``app.py``), the training runs (``training/``), the evaluation CLI and the tests all
call these modules; nothing here imports gradio.

Modules: ``data`` (DialogSum loading), ``prompts`` (zero/one/few-shot templates), ``devices``
(device and dtype), ``models`` (the four model slots sharing one base), ``generation``
(batched generation), ``toxicity`` (hate-speech reward), ``rouge`` (ROUGE-1/2/L/Lsum).
"""
