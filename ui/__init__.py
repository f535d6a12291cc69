"""Gradio tabs of the studio; each module builds one tab over :class:`ui.context.Studio`."""
