"""Compare tab: ``tab`` (one dialogue through the four slots), ``results_json`` (the one check of a
``/compare`` JSON sent back), ``handout`` (the Markdown/CSV handout)."""
