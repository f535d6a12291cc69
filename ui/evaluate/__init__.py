"""Evaluate tab: ``tab`` (the labs' results table for chosen slots) and ``predictions_upload``
(scoring summaries produced elsewhere)."""
