"""Gradio tabs of the studio, each built over :class:`ui.context.Studio`.

One module per small tab (``prompting``, ``toxicity``, ``prompt_lab``, ``arena``, ``backend``,
``presenter``), one package per large one (``compare/``, ``train/``, ``evaluate/``, each with its
``tab`` builder); ``common`` holds the pieces tabs share and ``context`` the shared state.
"""
