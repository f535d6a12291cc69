"""Training runs: one module per method over a shared Trainer loop, the registry, the job runner.

* ``python -m training.full``: full fine-tuning (every weight).
* ``python -m training.lora``: LoRA adapter (peft) on a frozen base.
* ``python -m training.ppo``: PPO detoxification of a LoRA adapter (trl), reward = the
  ``nothate`` logit of the toxicity classifier.
* ``training.registry``: the methods (``METHOD_MODULES``) and what each declares (``MethodSpec``).
* What the methods share: ``config`` (settings, command line), ``ranks`` (graceful stop, process
  ranks), ``seq2seq`` (the ``Seq2SeqTrainer`` loop, checkpoints), ``run_life`` (one run's life).
* ``training.runner``: the job runner the app uses (child processes, queue, checks, estimate).

Each method module exposes ``CONFIG`` (its config dataclass), ``SPEC``, ``train`` and ``main``.
"""
