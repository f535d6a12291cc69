"""Evaluation: the labs' results table for chosen slots; ``python -m summarizer.evaluation``.

* ``evaluate``: generate every slot's summaries once and score them (:func:`evaluate`).
* ``rouge``, ``bleu``, ``stats``: the metrics and bootstrap confidence intervals.
* ``results``: the result schema and :class:`EvaluationResult`; ``predictions_file``: summaries
  produced elsewhere; ``parity``: CTranslate2 against PyTorch on the same prompts.
* ``__main__``: the command line.
"""
