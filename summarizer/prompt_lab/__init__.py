"""Prompt Lab: K prompt templates x N dialogues, ROUGE per template with bootstrap CIs.

* ``lab``: the run and its table; ``templates``: presets, checks, filling, fitting to the input
  limit; ``__main__``: ``python -m summarizer.prompt_lab``.
"""
