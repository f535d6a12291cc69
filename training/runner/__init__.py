"""The job runner: the app's side of training runs (it never trains itself).

* ``jobs``: :class:`JobRunner`, one child process at a time, FIFO queue and history on disk;
  ``watcher``: the thread that ticks it; ``liveness``: the ``<run>/.alive`` lock.
* ``launch``: the child's command line (argument list, ``accelerate launch`` for N processes).
* ``settings``: checks of a run's settings from a request; ``estimate``: how long it will take.
* ``run_files``: run folders read as untrusted data; ``run_actions``: resume, delete, export;
  ``status_texts``: what the runner tells users.
"""
