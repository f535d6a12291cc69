"""Shared model core of Dialogue Summarization Studio (no gradio here).

The app (``app.py``), the training runs (``training/``), the CLIs and the tests all call it.

* ``inference/``: the four model slots and their engines (PyTorch, CTranslate2), generation.
* ``evaluation/``: metrics (ROUGE, BLEU, bootstrap), the evaluation, results and predictions files;
  ``python -m summarizer.evaluation``.
* ``prompt_lab/``: prompt templates measured against each other; ``python -m summarizer.prompt_lab``.
* ``arena/``: the class Arena's vote store and leaderboard.
* Shared by every part: ``data`` (DialogSum), ``prompts`` (zero/one/few-shot), ``text`` (cleaning
  of typed text), ``toxicity`` (the PPO reward), ``runs`` (the run folder contract), ``preflight``
  (where models come from at first start), ``cli`` (flags shared by the command lines).
"""
