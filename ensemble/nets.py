"""Networks: a timm backbone with a classifier for the competition's classes.

Weights are random (pretrained=False) until a later issue adds loading them from a file.
"""

from __future__ import annotations

import torch
from torch import nn

from ensemble.errors import EnsError


def create_net(model_name: str, n_classes: int, size: int) -> nn.Module:
    """A timm model for `n_classes` at `size` x `size` input.

    Transformers (ViT, Swin, EVA) fix their input size at construction: they are built for
    `size`. Convolutional nets take any size and have no such argument.
    """
    import timm

    if not timm.is_model(model_name):
        close = timm.list_models(f"*{model_name}*")[:8]
        hint = f"; close names: {', '.join(close)}" if close else "; `timm.list_models()` lists them"
        raise EnsError(f"unknown timm model {model_name!r}{hint}")
    try:
        return timm.create_model(model_name, pretrained=False, num_classes=n_classes, img_size=size)
    except TypeError:
        return timm.create_model(model_name, pretrained=False, num_classes=n_classes)


def normalization(net: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel mean and std the backbone expects, shaped (1, 3, 1, 1), for 0..1 inputs."""
    config = getattr(net, "pretrained_cfg", None) or {}
    mean = torch.tensor(config.get("mean", (0.485, 0.456, 0.406)), dtype=torch.float32)
    std = torch.tensor(config.get("std", (0.229, 0.224, 0.225)), dtype=torch.float32)
    return mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)


def patch_size(net: nn.Module) -> int | None:
    """The side of a transformer's square patches (timm's PatchEmbed), or None for other nets."""
    for module in net.modules():
        size = getattr(module, "patch_size", None)
        if isinstance(size, int):
            return size
        if isinstance(size, (tuple, list)) and size and all(isinstance(side, int) for side in size):
            return max(size)
    return None


def check_input_size(model_name: str, n_classes: int, size: int) -> None:
    """Refuse, before anything is written, an image size the network cannot take.

    Deep backbones downsample 32x: below some size a layer's kernel outgrows its input.
    Transformers cut the image into patches: their size must be a multiple of the patch's.
    """
    net = None
    try:
        net = create_net(model_name, n_classes, size).eval()
        with torch.inference_mode():
            net(torch.zeros(1, 3, size, size))
    except (RuntimeError, AssertionError, ValueError) as error:
        patch = patch_size(net) if net is not None else None
        if patch and size % patch:
            below, above = size - size % patch, size - size % patch + patch
            sizes = f"{below} or {above}" if below else f"{above}"
            hint = f"use a --size that is a multiple of its patch size {patch}, e.g. {sizes}"
        else:
            hint = "use a larger --size"
        raise EnsError(
            f"timm model {model_name!r} cannot take {size}x{size} images "
            f"({str(error).splitlines()[0]}); {hint}"
        ) from None
