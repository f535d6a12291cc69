"""What a method module uses, gathered in one place (each name lives in the module of its concern).

A method module (``training/full.py``, ``lora.py``, ``ppo.py``) defines a config dataclass that
extends :class:`RunConfig` (or :class:`Seq2SeqRunConfig`), a ``train(config, run, stop)``
function and a ``SPEC`` (``training.registry.MethodSpec``), and ends with
``main = partial(common.main, Config, train)``.

* ``training.config``: the shared settings and the command line (flags, ``--config file.json``).
* ``training.ranks``: graceful stop (signal or cancel file, agreed by every process) and ranks.
* ``training.seq2seq``: DialogSum rows and the ``Seq2SeqTrainer`` loop (full, LoRA), checkpoints.
* ``training.run_life``: one run's life: running → completed / cancelled / failed, model card.
* ``summarizer.runs``: the run folder (layout in its docstring), shared with the app.
"""
from __future__ import annotations

from summarizer.runs import FINAL_STATES, RunFolder, new_run_id, read_json, write_json
from training.config import RunConfig, parse_config, parser_for
from training.ranks import StopFlag, agreed_stop, cpu_only, is_main_process, log, world_size
from training.run_life import failure_cause, finalize, main, model_card, prepare_run
from training.seq2seq import Seq2SeqRunConfig, load_rows, rouge_on_sample, tokenize_pairs, train_seq2seq

__all__ = ["FINAL_STATES", "RunFolder", "new_run_id", "read_json", "write_json", "RunConfig", "parse_config",
           "parser_for", "StopFlag", "agreed_stop", "cpu_only", "is_main_process", "log", "world_size",
           "failure_cause", "finalize", "main", "model_card", "prepare_run", "Seq2SeqRunConfig", "load_rows",
           "rouge_on_sample", "tokenize_pairs", "train_seq2seq"]
