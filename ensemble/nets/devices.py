"""Where tensors run, and at what precision.

On CUDA: bf16 autocast where the card has it (no loss scaling needed), fp16 with a gradient
scaler where it does not. On the CPU: plain float32. Everywhere the channels_last memory
layout, unless a fold saved by an older ens says otherwise (memory_format): on the CPU too it
pays (measured on 2 loaded cores, one thread, batch 64 at 32 px, training: efficientnet_b0
34 -> 71 images/s, resnet10t 103 -> 105).
"""

from __future__ import annotations

import contextlib

import torch

from ensemble.errors import EnsError


def resolve_device(name: str) -> torch.device:
    """auto, cpu, cuda or cuda:N -> a device torch can use, or an EnsError saying why not."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise EnsError(f"device {name!r} asked for, but torch sees no CUDA device; use --device cpu")
    index = name.partition(":")[2] or "0"
    if not index.isdigit() or int(index) >= torch.cuda.device_count():
        raise EnsError(f"device {name!r}: torch sees {torch.cuda.device_count()} CUDA device(s), cuda:0 and up")
    return torch.device("cuda", int(index))


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on cards with bf16 units (compute capability 8.0+), fp16 on older ones, None on the CPU.

    Not torch.cuda.is_bf16_supported(): it also says yes where bf16 is only emulated
    (T4, V100), which is slow there.
    """
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16


def autocast(device: torch.device):
    dtype = amp_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """A scaler that is a no-op unless fp16 needs one."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(device) == torch.float16)


def memory_format(device: torch.device, saved: dict | None = None) -> torch.memory_format:
    """channels_last; on the CPU, the layout of `saved` (the state dict a fold resumes or predicts
    from) when it tells one.

    The layout orders float sums differently. ens once kept the CPU contiguous: a fold saved
    then resumes, and its checkpoint predicts, in that layout, so resume stays bit-identical.
    Saved tensors keep their strides, so the file itself says which layout made it.
    """
    if device.type == "cuda" or saved is None:
        return torch.channels_last
    for tensor in saved.values():
        # A convolution's weight with more than one input channel and a kernel over 1x1 is
        # contiguous in exactly one of the two layouts.
        if isinstance(tensor, torch.Tensor) and tensor.dim() == 4 and tensor.shape[1] > 1 and tensor.shape[2] * tensor.shape[3] > 1:
            return torch.contiguous_format if tensor.is_contiguous() else torch.channels_last
    return torch.channels_last


@contextlib.contextmanager
def out_of_memory_as_error(batch_size: int, where: str):
    """Turn running out of GPU memory into one line naming the batch size and what to change.

    Anything else keeps its traceback: only an exhausted card has an obvious remedy.
    """
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise EnsError(
            f"{where}: out of GPU memory at batch size {batch_size}; "
            f"use a smaller --batch-size (e.g. {max(2, batch_size // 2)})"
        ) from None


def library_versions() -> dict:
    """The versions settings.json notes (not part of the identity)."""
    import timm

    return {"torch": torch.__version__, "timm": timm.__version__}
