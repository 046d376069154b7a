"""Preflight: settings checked and settled, and the network built once and tried, before a run writes anything.

`resolve` checks every name against its registry (one error line listing the valid names),
and against the competition's task kind (its losses and TTA merges; label smoothing and class
weights only where there are classes), and settles each "auto"; `check_network` builds the net the folds will train, attention and all,
and refuses what would otherwise fail in the first fold: an image size, a stage size, or a
pretrained weights file the network cannot take.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from ensemble.config import TrainSettings, Workspace, auto_size
from ensemble.data.competition import Competition
from ensemble.data.images import median_side
from ensemble.errors import EnsError
from ensemble.inference import tta
from ensemble.nets.attention import ATTENTION
from ensemble.stages import plan_stages
from ensemble.tasks import Task
from ensemble.training import augment, features, losses
from ensemble.training.optim import OPTIMIZERS, SCHEDULES
from ensemble.training.recipe import CLASS_WEIGHTS


@dataclass(frozen=True)
class WeightsChecked:
    """Pretrained weights fit the network; summary says how they were matched."""

    summary: str


def validate(settings: TrainSettings, task: Task) -> TrainSettings:
    """A copy whose names are checked against their registries and the task kind, augment and
    TTA in their one spelling ('hflip, none' and 'hflip' are one experiment), the loss named
    ("auto" and the kind's default are one experiment)."""
    augment.parse(settings.augment)
    augment.FILLS.get(settings.augment_fill)
    CLASS_WEIGHTS.get(settings.class_weights)
    OPTIMIZERS.get(settings.optimizer)
    SCHEDULES.get(settings.schedule)
    ATTENTION.get(settings.attention)
    if settings.attention == "none" and settings.attention_in_blocks:
        raise EnsError(
            "--attention-in-blocks needs an attention block: --attention " + "|".join(n for n in ATTENTION.names() if n != "none")
        )
    # The warm-up trains the head alone: as long as the run, a random backbone never trains.
    # Checked here, not in config: a setting only training reads must not stop `ens blend`.
    if settings.unfreeze_after != "auto" and settings.unfreeze_after >= settings.total_epochs:
        raise EnsError(
            f"train unfreeze_after: --unfreeze-after {settings.unfreeze_after} is not below the run's {settings.total_epochs} epochs, "
            f"so the backbone would never train; give fewer than {settings.total_epochs} (or --train-blocks 0 for a head-only run)"
        )
    features.check(settings)
    loss = losses.for_task(settings.loss, task)
    check_target_settings(settings, loss)
    task.check_merge(settings.tta_merge)
    policy = tta.parse_policy(settings.tta, settings.tta_merge, task)
    return dataclasses.replace(settings, augment=augment.canonical(settings.augment), tta=policy.spec, tta_merge=policy.merge, loss=loss.name)


def check_target_settings(settings: TrainSettings, loss: losses.Loss) -> None:
    """Refuse label smoothing and class weights where the loss has no classes to smooth or weigh."""
    for name, off in losses.TARGET_SETTINGS.items():
        value = getattr(settings, name)
        if value != off and name not in loss.takes:
            raise EnsError(
                f"train {name} {value} does not apply to loss {loss.name} of a {loss.task} competition: its targets are not classes; "
                f"set it to {off} in ens.toml [train] or with --{name.replace('_', '-')} {off}"
            )


def resolve(workspace: Workspace, settings: TrainSettings, competition: Competition) -> TrainSettings:
    """Validated against the task kind, every "auto" settled (size from the training images'
    headers), and a weights file's path made absolute (ens.toml paths are relative to the
    workspace): the settings a run records and trains with."""
    if settings.size == "auto":
        side = median_side(competition.train_image_paths(), competition.train_ids)
        settings = dataclasses.replace(settings, size=auto_size(side))
    settings = validate(settings, competition.task).resolved()
    if settings.pretrained and settings.pretrained != "timm":
        settings = dataclasses.replace(settings, pretrained=str(workspace.path(settings.pretrained)))
    return settings


def check_network(settings: TrainSettings, n_classes: int, progress: Callable[[object], None] | None = None) -> None:
    """Build the network once, as the folds will, and refuse before anything is written an input
    size, a stage size or a weights file it cannot take."""
    from torch import nn

    from ensemble.nets.networks import check_input_size, load_weights

    net = check_input_size(settings.model, n_classes, settings.size, settings.attention, settings.attention_in_blocks)
    if settings.pretrained:
        mapping = load_weights(net, settings.model, settings.size, settings.pretrained)
        if progress:
            progress(WeightsChecked(mapping.summary()))
    check_stage_sizes(net, settings)
    if settings.frozen_features and not isinstance(net.get_classifier(), nn.Linear):
        raise EnsError(
            f"train frozen_features trains a linear classifier; timm model {settings.model!r} ends in a "
            f"{type(net.get_classifier()).__name__}: fine-tune it without --frozen-features"
        )
    if settings.frozen_features and settings.top_blocks > 0:  # the folds train the top stages on the frozen ones' maps
        import torch

        from ensemble.nets.split import Split

        torch.manual_seed(0)
        Split(net, settings.top_blocks, settings.model).check(torch.rand(2, 3, settings.size, settings.size), settings.model)


def check_stage_sizes(net, settings: TrainSettings) -> None:
    """Refuse a stage size the net (built for the last) cannot take. Convolutional nets take any
    size; transformers fix theirs at construction."""
    import torch

    plan = plan_stages(settings)
    for size in sorted({stage.size for stage in plan} - {plan[-1].size}):
        try:
            with torch.inference_mode():
                net(torch.zeros(1, 3, size, size))
        except (RuntimeError, AssertionError, ValueError) as error:
            raise EnsError(
                f"timm model {settings.model!r} built for {plan[-1].size}px cannot take the {size}px stage of "
                f"--sizes {settings.sizes} ({str(error).splitlines()[0]}); use one --size, or a convolutional model"
            ) from None
