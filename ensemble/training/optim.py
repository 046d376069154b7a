"""What each stage trains, the optimiser, and the one learning-rate schedule over every step.

The stage plan itself is torch-free (ensemble/stages.py). Here: TRAINABLE, the one place that
knows what a stage's `trainable` name freezes; `parameter_groups`, the one place that builds
the optimiser's groups; OPTIMIZERS and SCHEDULES, whose names settings are checked against.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

from ensemble.registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from ensemble.config import TrainSettings

# torch and the networks are imported inside functions: the CLI lists these registries' names
# in its help, and `ens blend` must start without torch.

# What a stage trains: a function (net, settings) that sets requires_grad (and which BatchNorm
# layers stay frozen, nets.set_stage).
TRAINABLE: Registry[Callable[[nn.Module, TrainSettings], None]] = Registry("trainable part")


@TRAINABLE.register("all")
def train_all(net: nn.Module, settings: TrainSettings) -> None:
    """Every parameter, and every BatchNorm in train mode."""
    from ensemble.nets.networks import unfreeze

    unfreeze(net)


@TRAINABLE.register("head")
def train_head(net: nn.Module, settings: TrainSettings) -> None:
    """Only the new parts: the head (classifier) and ens's attention blocks; the backbone is frozen."""
    from ensemble.nets.networks import set_stage

    set_stage(net, settings.train_blocks, head_only=True, freeze_bn=settings.freeze_bn)


@TRAINABLE.register("blocks")
def train_chosen_blocks(net: nn.Module, settings: TrainSettings) -> None:
    """The last --train-blocks backbone stages and the new parts; BatchNorm frozen with --freeze-bn."""
    from ensemble.nets.networks import set_stage

    set_stage(net, settings.train_blocks, head_only=False, freeze_bn=settings.freeze_bn)


def parameter_groups(net: nn.Module, settings: TrainSettings) -> list[dict]:
    """The optimiser's parameter groups, built once for the whole plan.

    Every parameter is in the optimiser from the start, so its state carries across stages;
    a stage that freezes some leaves their gradients None, and the optimiser skips them.
    With a backbone lr scale other than 1 (discriminative learning rates), the backbone is a
    group of its own whose `lr_scale` multiplies the schedule's lr.
    """
    scale = settings.resolved().backbone_lr_scale
    if scale == 1:  # one group, as before: older runs' optimiser state still loads
        return [{"params": list(net.parameters()), "weight_decay": settings.weight_decay}]
    from ensemble.nets.networks import parameter_groups as new_and_backbone

    new, backbone = new_and_backbone(net)
    return [
        {"params": new, "weight_decay": settings.weight_decay},
        {"params": backbone, "weight_decay": settings.weight_decay, "lr_scale": float(scale)},
    ]


# --- the optimiser and the one learning-rate schedule over every step of the plan -------------

OPTIMIZERS: Registry[Callable] = Registry("optimizer")


@OPTIMIZERS.register("adamw")
def adamw(groups: list[dict], settings: TrainSettings):
    import torch

    return torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay)


@OPTIMIZERS.register("sgd")
def sgd(groups: list[dict], settings: TrainSettings):
    """Nesterov momentum 0.9, the usual ImageNet recipe; wants a higher --lr than AdamW (0.05-0.1)."""
    import torch

    return torch.optim.SGD(groups, lr=settings.lr, momentum=0.9, nesterov=True, weight_decay=settings.weight_decay)


# (optimizer, settings, total_steps) -> a scheduler whose lr is a closed form of the step, so a
# stage's lr_scale can multiply it without compounding.
SCHEDULES: Registry[Callable] = Registry("schedule")


@SCHEDULES.register("onecycle")
def onecycle(optimizer, settings: TrainSettings, total_steps: int):
    """Smith's one-cycle: cosine up to lr over the warm-up fraction, then down to lr/1e5 (momentum cycles)."""
    import torch

    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.lr, total_steps=total_steps, pct_start=onecycle_warmup(settings.warmup, total_steps)
    )


def onecycle_warmup(warmup: float, total_steps: int) -> float:
    """The warm-up fraction OneCycleLR is given: `warmup`, except where it makes exactly one step.

    OneCycleLR's warm-up runs from step 0 to step warmup * total_steps - 1, and divides by that
    length: one warm-up step (5 steps at 0.2) is a ZeroDivisionError. The fraction is raised by
    the least float that avoids it: the first step runs at the initial lr (lr / 25), as any
    longer warm-up starts, and the decay follows. Every other case is torch's, bit for bit.
    """
    while float(warmup * total_steps) == 1.0:
        warmup = math.nextafter(warmup, math.inf)
    return warmup


@SCHEDULES.register("cosine")
def cosine(optimizer, settings: TrainSettings, total_steps: int):
    """Linear warm-up from 0 over the warm-up fraction, then cosine decay to 0 (Loshchilov & Hutter, SGDR)."""
    import torch

    warmup_steps = max(1, round(settings.warmup * total_steps))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
