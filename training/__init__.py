"""Training runs: one module per method, the shared core, the registry and the job runner.

* ``python -m training.full``: full fine-tuning (every weight).
* ``python -m training.lora``: LoRA adapter (peft) on a frozen base.
* ``python -m training.ppo``: PPO detoxification of a LoRA adapter (trl), reward = the
  ``nothate`` logit of the toxicity classifier.
* ``training.registry``: the methods (``METHOD_MODULES``) and what each declares (``MethodSpec``).
* ``training.config``, ``ranks``, ``seq2seq``, ``run_life``: what the methods share (``common``
  gathers the names).
* ``training.jobs`` (with ``launch`` and ``run_actions``): starts runs as child processes, one at
  a time, FIFO queue on disk; resume, delete and export of finished runs.

Each method module exposes ``CONFIG`` (its config dataclass), ``SPEC``, ``train`` and ``main``.
"""
