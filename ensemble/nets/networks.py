"""Networks: a timm backbone, an optional attention block, a classifier for the competition's classes.

Attention goes on the backbone's final feature map, before pooling and the classifier (works
for every convolutional timm model), or with `attention_in_blocks` inside every residual block,
as the SE and CBAM papers place it (only for the timm families whose blocks take one).

Freezing works on timm's coarse parameter groups (`group_matcher(coarse=True)`: stem, each
stage, head). A frozen stage keeps its weights, and its BatchNorm layers keep their running
statistics and affine weights, even in train mode. The new parts (the attention blocks and the
head group holding the classifier) always train.
"""

from __future__ import annotations

import importlib

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ensemble.errors import EnsError
from ensemble.nets import weights
from ensemble.nets.attention import ATTENTION, start_as_identity

# timm modules whose blocks take `block_args=dict(attn_layer=...)`, and how to name them to a user.
IN_BLOCK_FAMILIES = {"timm.models.resnet": "ResNet/ResNeXt (resnet*, resnext*, seresnet*, ecaresnet*, wide_resnet*)"}


class HeadAttention(nn.Module):
    """backbone.forward_features -> attention block -> backbone.forward_head (pool, classifier)."""

    def __init__(self, backbone: nn.Module, attention: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.attention = attention
        self.pretrained_cfg = backbone.pretrained_cfg
        self.num_classes = backbone.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_features(x)
        if features.ndim != 4:
            raise EnsError(
                f"--attention needs (batch, channels, h, w) features; {type(self.backbone).__name__} gives "
                f"{features.ndim}-d ones; use a convolutional model or --attention none"
            )
        return self.backbone.forward_head(self.attention(features))


def _check_model(model_name: str) -> None:
    import timm

    if not timm.is_model(model_name):
        close = timm.list_models(f"*{model_name}*")[:8]
        hint = f"; close names: {', '.join(close)}" if close else "; `timm.list_models()` lists them"
        raise EnsError(f"unknown timm model {model_name!r}{hint}")


def _create_timm(model_name: str, size: int, pretrained: bool = False, **kwargs) -> nn.Module:
    """Transformers (ViT, Swin, EVA) fix their input size at construction: they are built for `size`."""
    import timm

    try:
        return timm.create_model(model_name, pretrained=pretrained, img_size=size, **kwargs)
    except TypeError:
        return timm.create_model(model_name, pretrained=pretrained, **kwargs)


def _in_block_layer(attention: str):
    """The attn_layer timm's blocks call as `layer(channels, device=..., dtype=...)`."""
    build = ATTENTION.get(attention)

    def layer(channels: int, device=None, dtype=None) -> nn.Module:
        block = build(channels)
        return block if device is None and dtype is None else block.to(device=device, dtype=dtype)

    return layer


def create_net(model_name: str, n_classes: int, size: int, attention: str = "none", attention_in_blocks: bool = False) -> nn.Module:
    """A timm model for `n_classes` at `size` x `size` input, with random weights and the attention asked for."""
    import timm

    _check_model(model_name)
    build = ATTENTION.get(attention)
    if not attention_in_blocks:
        net = _create_timm(model_name, size, num_classes=n_classes)
        return net if attention == "none" else HeadAttention(net, build(net.num_features))
    family = timm.models.model_entrypoint(model_name).__module__
    if family not in IN_BLOCK_FAMILIES:
        raise EnsError(
            f"--attention-in-blocks: {model_name!r} ({family}) has no blocks that take an attention layer; "
            f"families that do: {', '.join(IN_BLOCK_FAMILIES.values())}; or drop --attention-in-blocks "
            "to put the block on the final feature map"
        )
    net = _create_timm(model_name, size, num_classes=n_classes, block_args={"attn_layer": _in_block_layer(attention)})
    for _, block in added_modules(net):  # timm re-initialises every convolution in its blocks
        start_as_identity(block)
    return net


def backbone_of(net: nn.Module) -> nn.Module:
    return net.backbone if isinstance(net, HeadAttention) else net


def added_modules(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every attention block ens added, anywhere in the net."""
    return [(name, module) for name, module in net.named_modules() if getattr(module, "ens_added", False)]


def load_weights(net: nn.Module, model_name: str, size: int, source: str) -> weights.Mapping:
    """Pretrained backbone weights into `net`, in place; source: a file path or 'timm'."""
    backbone = backbone_of(net)
    plain = _timm_pretrained(model_name, size) if source == weights.TIMM else _create_timm(model_name, size)
    prefixes = tuple(name + "." for name, _ in added_modules(backbone))
    return weights.load_pretrained(backbone, plain, source, prefixes)


def parameter_groups(net: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(new parameters: attention blocks and the head group; backbone parameters), each in net order."""
    new = _new_parameter_ids(net)
    params = list(net.parameters())
    return [p for p in params if id(p) in new], [p for p in params if id(p) not in new]


def backbone_groups(net: nn.Module) -> list[list[str]]:
    """The backbone's parameter names per coarse timm group (stem, stages..., head last)."""
    from timm.models import group_parameters

    backbone = backbone_of(net)
    if not hasattr(backbone, "group_matcher"):
        raise EnsError(f"{type(backbone).__name__} has no timm group_matcher; --train-blocks cannot tell its stages apart")
    return list(group_parameters(backbone, backbone.group_matcher(coarse=True)).values())


def _new_parameter_ids(net: nn.Module) -> set[int]:
    ids = {id(p) for _, module in added_modules(net) for p in module.parameters()}
    backbone = backbone_of(net)
    named = dict(backbone.named_parameters())
    ids |= {id(named[name]) for name in backbone_groups(net)[-1]}
    return ids


def n_stages(net: nn.Module) -> int:
    """How many backbone groups --train-blocks counts (stem and stages, not the head)."""
    return len(backbone_groups(net)) - 1


def set_stage(net: nn.Module, train_blocks: int, head_only: bool, freeze_bn: bool) -> None:
    """Set which parameters train and which BatchNorm layers stay frozen, in place.

    train_blocks: how many of the last backbone stages train (-1: all, 0: none, a linear
    probe); head_only: only the new parts train (head warm-up); freeze_bn: every backbone
    BatchNorm keeps its statistics and affine weights, also in the stages that train.
    """
    groups = backbone_groups(net)
    stages = groups[:-1]
    n_train = 0 if head_only else (len(stages) if train_blocks < 0 else min(train_blocks, len(stages)))
    trainable = {name for group in stages[len(stages) - n_train:] for name in group} if n_train else set()
    backbone = backbone_of(net)
    new = _new_parameter_ids(net)
    for name, param in backbone.named_parameters():
        param.requires_grad_(id(param) in new or name in trainable)
    inside_added = {id(m) for _, block in added_modules(net) for m in block.modules()}
    for module in backbone.modules():
        if isinstance(module, _BatchNorm) and id(module) not in inside_added:
            frozen = freeze_bn or not any(p.requires_grad for p in module.parameters(recurse=False))
            module.ens_frozen = frozen
            for param in module.parameters(recurse=False):
                param.requires_grad_(param.requires_grad and not frozen)


def unfreeze(net: nn.Module) -> None:
    """Every parameter trains and every BatchNorm follows the net's mode again."""
    for param in net.parameters():
        param.requires_grad_(True)
    for module in net.modules():
        if getattr(module, "ens_frozen", False):
            module.ens_frozen = False


def train_mode(net: nn.Module) -> None:
    """net.train(), except frozen BatchNorm layers, which stay in eval mode (their statistics fixed)."""
    net.train()
    for module in net.modules():
        if getattr(module, "ens_frozen", False):
            module.eval()


IMAGENET_MEAN = (0.485, 0.456, 0.406)


def normalization(net: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel mean and std the backbone expects, shaped (1, 3, 1, 1), for 0..1 inputs.

    The mean colour, which fills the pixels that shift, scale and rotate bring in from outside
    the image (train-time transforms and TTA views alike), is this mean: the colour that is 0
    after normalisation (ImageNet's mean for a backbone that names none).
    """
    config = getattr(net, "pretrained_cfg", None) or {}
    mean = torch.tensor(config.get("mean", IMAGENET_MEAN), dtype=torch.float32)
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


def check_input_size(model_name: str, n_classes: int, size: int, attention: str = "none", attention_in_blocks: bool = False) -> nn.Module:
    """The network, built and run once at `size`, in eval mode; refuses an image size it cannot take.

    Deep backbones downsample 32x: below some size a layer's kernel outgrows its input.
    Transformers cut the image into patches: their size must be a multiple of the patch's.
    """
    net = None
    try:
        net = create_net(model_name, n_classes, size, attention, attention_in_blocks).eval()
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
    return net


def _download_errors() -> tuple[type[BaseException], ...]:
    """What a failed download raises: OSErrors (urllib's, huggingface_hub's own, its offline
    mode, requests'), and the hub's HTTP client's transport errors (a proxy, a cut connection),
    which are not OSErrors. The client is whichever huggingface_hub installed."""
    errors: list[type[BaseException]] = [OSError]
    for client in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(client).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _timm_pretrained(model_name: str, size: int) -> nn.Module:
    """The plain timm model with timm's pretrained weights, downloaded (or from the hub's cache)."""
    try:
        return _create_timm(model_name, size, pretrained=True)
    except _download_errors() as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise EnsError(
            f"--pretrained timm: cannot download {model_name}'s weights ({reason}); the hub is unreachable from here: "
            "download the weights file where it is reachable and give --pretrained FILE"
        ) from None
