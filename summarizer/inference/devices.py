"""Device and dtype choice shared by the app, training and evaluation."""
from __future__ import annotations

import os

import torch


def pick_device(requested: str | None = None) -> torch.device:
    """``requested`` (e.g. ``"cpu"``, ``"cuda:1"``), else ``$STUDIO_DEVICE``, else CUDA, else CPU.

    Raises:
        ValueError: a CUDA device was requested but CUDA is not available.
    """
    name = requested or os.environ.get("STUDIO_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device {name!r} was requested but CUDA is not available; use 'cpu'.")
    return device


def pick_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on GPUs that support it, else float32.

    Never float16: T5 activations overflow in fp16 (see the transformers T5 docs and
    huggingface/transformers#10830), while bf16 keeps fp32's range.
    """
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32
