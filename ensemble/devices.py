"""Where tensors run, and at what precision.

On CUDA: bf16 autocast where the card has it (no loss scaling needed), fp16 with a gradient
scaler where it does not, and channels_last memory layout. On the CPU: plain float32.
"""

from __future__ import annotations

import contextlib

import torch

from ensemble.errors import EnsError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EnsError(f"device {name!r} asked for, but torch sees no CUDA device; use --device cpu")
    return torch.device(name)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device):
    dtype = amp_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """A scaler that is a no-op unless fp16 needs one."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(device) == torch.float16)


def memory_format(device: torch.device) -> torch.memory_format:
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format
