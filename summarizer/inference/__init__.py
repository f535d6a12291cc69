"""Inference: the model slots (base, full, LoRA, PPO detox) and the engines that run them.

* ``slots``: :class:`~summarizer.inference.slots.ModelSlots`, what every tab, CLI and test calls.
* ``torch_engine`` / ``ct2_engine``: the two engines behind one interface; ``ct2_convert``: the
  CTranslate2 conversion cache.
* ``slot_config`` (slot names, sources), ``model_sources`` (run folders, kind checks, safe
  weights), ``generation`` (settings, batched generation), ``devices``, ``meta_model`` (counts
  from a config alone).
"""
