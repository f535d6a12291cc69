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
import warnings

# peft 0.21.2's PeftModel reads ``model.is_gradient_checkpointing``, which transformers 5 keeps
# only as a deprecated alias warning on every read: one FutureWarning per adapter made, which
# filled the training log's tail. Not our call site and nothing for a user to change: ignored
# once here, for this one message, in every process that imports the core.
warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
