"""A fold's training as a list of stages, and the one learning-rate schedule over all of them.

A stage is a run of epochs at one image size, training some of the parameters, at a scale of
the learning rate. Progressive resizing (Howard's fast.ai DAWNBench recipe: small images
first, the inference size last) is a plan of stages at growing sizes; head warm-up and
unfreezing are stages that train part of the net. The model and optimiser carry across
stages, and one schedule (warm-up, then one-cycle or cosine decay) runs over every step of
every stage, each stage multiplying it by its `lr_scale`.

`plan_stages` is the one place that turns settings into stages; `parameter_groups` the one
place that builds the optimiser's groups; TRAINABLE the one place that knows what a stage's
`trainable` name freezes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ensemble.registry import Registry

if TYPE_CHECKING:  # torch is imported by the training path only
    from torch import nn

    from ensemble.config import TrainSettings


@dataclass(frozen=True)
class Stage:
    """epochs at `size` x `size` pixels, training the parameters `trainable` names, at lr x lr_scale."""

    size: int
    epochs: int
    trainable: str = "all"
    lr_scale: float = 1.0


def plan_stages(settings: TrainSettings) -> tuple[Stage, ...]:
    """The fold's stages, in order; the last one's size is the inference size.

    With a head warm-up (unfreeze_after E), the first E epochs train only the new head and
    attention ("head"), the rest what --train-blocks/--freeze-bn leave trainable ("blocks").
    """
    settings = settings.resolved()
    trainable = "blocks" if settings.train_blocks >= 0 or settings.freeze_bn else "all"
    stages, head_epochs = [], settings.unfreeze_after
    for stage in size_stages(settings):
        head = min(head_epochs, stage.epochs)
        head_epochs -= head
        if head:
            stages.append(dataclasses.replace(stage, epochs=head, trainable="head"))
        if stage.epochs > head:
            stages.append(dataclasses.replace(stage, epochs=stage.epochs - head, trainable=trainable))
    return tuple(stages)


def size_stages(settings: TrainSettings) -> tuple[Stage, ...]:
    """One stage per image size, each training everything."""
    sizes = [int(size) for size in settings.sizes.split(",")] if settings.sizes else [settings.size]
    epochs = [int(count) for count in str(settings.epochs).split(",")]
    if len(epochs) == 1:
        epochs = epochs * len(sizes)
    return tuple(Stage(size=size, epochs=count) for size, count in zip(sizes, epochs))


def stage_record(plan: tuple[Stage, ...]) -> list[dict]:
    """The plan as settings.json keeps it (train.stages)."""
    return [dataclasses.asdict(stage) for stage in plan]


def legacy_stages(record: dict) -> list[dict]:
    """train.stages for a settings.json written before stages existed: one stage at its size."""
    return stage_record((Stage(size=record["train"]["size"], epochs=record["train"]["epochs"]),))


def total_epochs(plan: tuple[Stage, ...]) -> int:
    return sum(stage.epochs for stage in plan)


def stage_of_epoch(plan: tuple[Stage, ...], epoch: int) -> int:
    """Index of the stage that trains `epoch` (0-based over the whole plan)."""
    for index, stage in enumerate(plan):
        if epoch < stage.epochs:
            return index
        epoch -= stage.epochs
    raise IndexError(f"epoch {epoch} is past the plan's last stage")


# What a stage trains: a function (net, settings) that sets requires_grad (and which BatchNorm
# layers stay frozen, nets.set_stage).
TRAINABLE: Registry[Callable[[nn.Module, TrainSettings], None]] = Registry("trainable part")


@TRAINABLE.register("all")
def train_all(net: nn.Module, settings: TrainSettings) -> None:
    """Every parameter, and every BatchNorm in train mode."""
    from ensemble.nets import unfreeze

    unfreeze(net)


@TRAINABLE.register("head")
def train_head(net: nn.Module, settings: TrainSettings) -> None:
    """Only the new parts: the head (classifier) and ens's attention blocks; the backbone is frozen."""
    from ensemble.nets import set_stage

    set_stage(net, settings.train_blocks, head_only=True, freeze_bn=settings.freeze_bn)


@TRAINABLE.register("blocks")
def train_chosen_blocks(net: nn.Module, settings: TrainSettings) -> None:
    """The last --train-blocks backbone stages and the new parts; BatchNorm frozen with --freeze-bn."""
    from ensemble.nets import set_stage

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
    from ensemble.nets import parameter_groups as new_and_backbone

    new, backbone = new_and_backbone(net)
    return [
        {"params": new, "weight_decay": settings.weight_decay},
        {"params": backbone, "weight_decay": settings.weight_decay, "lr_scale": float(scale)},
    ]


def check_stage_sizes(settings: TrainSettings, n_classes: int) -> None:
    """Refuse, before anything is written, a stage size the net (built for the last) cannot take.

    Convolutional nets take any size; transformers fix theirs at construction.
    """
    import torch

    from ensemble.errors import EnsError
    from ensemble.nets import create_net

    plan = plan_stages(settings)
    smaller = sorted({stage.size for stage in plan} - {plan[-1].size})
    if not smaller:
        return
    net = create_net(settings.model, n_classes, plan[-1].size).eval()
    for size in smaller:
        try:
            with torch.inference_mode():
                net(torch.zeros(1, 3, size, size))
        except (RuntimeError, AssertionError, ValueError) as error:
            raise EnsError(
                f"timm model {settings.model!r} built for {plan[-1].size}px cannot take the {size}px stage of "
                f"--sizes {settings.sizes} ({str(error).splitlines()[0]}); use one --size, or a convolutional model"
            ) from None


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

    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, total_steps=total_steps, pct_start=settings.warmup)


@SCHEDULES.register("cosine")
def cosine(optimizer, settings: TrainSettings, total_steps: int):
    """Linear warm-up from 0 over the warm-up fraction, then cosine decay to 0 (Loshchilov & Hutter, SGDR)."""
    import math

    import torch

    warmup_steps = max(1, round(settings.warmup * total_steps))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
