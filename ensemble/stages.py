"""A fold's training as a list of stages, and the one learning-rate schedule over all of them.

A stage is a run of epochs at one image size, training some of the parameters, at a scale of
the learning rate. Progressive resizing (Howard's fast.ai DAWNBench recipe: small images
first, the inference size last) is a plan of stages at growing sizes; head warm-up and
unfreezing are stages that train part of the net. The model and optimiser carry across
stages, and one schedule (warm-up, then one-cycle or cosine decay) runs over every step of
every stage, each stage multiplying it by its `lr_scale`.

`plan_stages` is the one place that turns settings into stages. The plan is torch-free: the
experiment's identity records it (train.stages). What a stage's `trainable` name freezes, the
optimiser and the schedule live with training (training/optim.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
