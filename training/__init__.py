"""Training runs: one shared core (``common``), one short module per method, and the job runner.

* ``python -m training.full``: full fine-tuning (every weight).
* ``python -m training.lora``: LoRA adapter (peft) on a frozen base.
* ``python -m training.ppo``: PPO detoxification of a LoRA adapter (trl), reward = the
  ``nothate`` logit of the toxicity classifier.
* ``training.jobs``: starts runs as child processes, one at a time, FIFO queue on disk.

Each method module exposes ``CONFIG`` (its config dataclass), ``train`` and ``main``.
"""

# method -> module that runs it (the job runner needs nothing else about a method).
METHOD_MODULES = {"full": "training.full", "lora": "training.lora", "ppo": "training.ppo"}
