"""Losses, one family per task kind, chosen by `[train] loss` ("auto": the kind's default).

- single_label: cross_entropy (default), exactly the loop's call before losses had names
  (recipe.loss_function); label smoothing and class weights go into that one call.
- multi_label: bce (default), a binary cross-entropy with logits per tag, averaged over
  images and tags. class_weights = "balanced" weighs each tag's positives by its negatives /
  positives on the fold's training rows (torch's pos_weight); label smoothing moves every
  0/1 toward 0.5, y (1 - e) + e / 2: each tag is a two-outcome cross-entropy, smoothed as
  cross_entropy smooths its classes.
- regression: mse (default) and huber (delta 1, in standard deviations) on the target
  standardised with the fold's training rows' mean and std; bce on the target scaled to 0..1
  by their min and max through a sigmoid (the Pawpularity trick: the output can never leave
  the training range). Label smoothing and class weights mean nothing for a number and are
  refused (preflight.py). The scalings and their decoding: inference/scaling.py.

Torch is imported inside functions: the CLI lists the names at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from ensemble import metrics
from ensemble.errors import EnsError
from ensemble.registry import Registry
from ensemble.tasks import TASKS, Task
from ensemble.training.recipe import loss_function

if TYPE_CHECKING:
    import torch

# (label_smoothing, class_weights float32 (n_columns,) or None, device, reduction) -> (outputs, targets) -> loss:
# the mean, or with reduction "none" each row's (n,) or each row's and column's (n, n_columns)
Build = Callable[[float, "np.ndarray | None", "torch.device", str], Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]]


@dataclass(frozen=True)
class Loss:
    """One loss of one task kind.

    scaling: the targets it trains on (inference/scaling.py); takes: the recipe settings that
    shape its targets and apply to it (label_smoothing, class_weights)."""

    name: str
    task: str
    build: Build
    scaling: str = "none"
    takes: tuple[str, ...] = ()


# One registry per task kind: the same name may mean the kind's own form (bce of tags, bce of a scaled value).
LOSSES: dict[str, Registry[Loss]] = {kind: Registry(f"{kind} loss") for kind in TASKS.names()}
DEFAULTS: dict[str, str] = {}
# The recipe settings that reshape class targets, and the value that leaves them off.
TARGET_SETTINGS = {"label_smoothing": 0.0, "class_weights": "none"}


def register(task: str, name: str, build: Build, scaling: str = "none", takes: tuple[str, ...] = (), default: bool = False) -> None:
    LOSSES[task].register(name)(Loss(name, task, build, scaling, takes))
    if default:
        DEFAULTS[task] = name


def names() -> list[str]:
    """Every loss name of every kind, for help texts."""
    return sorted({name for registry in LOSSES.values() for name in registry.names()})


def for_task(name: str, task: Task) -> Loss:
    """The loss `name` ("auto": the kind's default) of `task`; one error line listing the kind's own
    losses when the name is another kind's or nobody's."""
    own = LOSSES[task.name]
    if name == "auto":
        return own.get(DEFAULTS[task.name])
    if name in own:
        return own.get(name)
    expected = ", ".join(["auto", *own.names()])
    if name in names():
        raise EnsError(f"train loss {name!r} does not apply to a {task.name} competition; expected one of: {expected}")
    raise EnsError(f"unknown train loss {name!r}; expected one of: {expected} (for a {task.name} competition)")


# --- the losses ---------------------------------------------------------------------------------

def binary_cross_entropy(label_smoothing: float, class_weights: np.ndarray | None, device, reduction: str = "mean"):
    """Per column BCE with logits; class_weights: each column's positive weight."""
    import torch
    import torch.nn.functional as F

    pos_weight = None if class_weights is None else torch.from_numpy(class_weights).to(device)

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if label_smoothing > 0:
            targets = targets * (1 - label_smoothing) + label_smoothing / 2
        return F.binary_cross_entropy_with_logits(logits.float(), targets, pos_weight=pos_weight, reduction=reduction)

    return loss


def squared_error(label_smoothing: float, class_weights: np.ndarray | None, device, reduction: str = "mean"):
    import torch.nn.functional as F

    return lambda outputs, targets: F.mse_loss(outputs.float(), targets, reduction=reduction)


def huber(label_smoothing: float, class_weights: np.ndarray | None, device, reduction: str = "mean"):
    """Squared within one standard deviation of the target, absolute beyond: outliers pull less."""
    import torch.nn.functional as F

    return lambda outputs, targets: F.huber_loss(outputs.float(), targets, delta=1.0, reduction=reduction)


register("single_label", "cross_entropy", loss_function, takes=tuple(TARGET_SETTINGS), default=True)
register("multi_label", "bce", binary_cross_entropy, takes=tuple(TARGET_SETTINGS), default=True)
register("regression", "mse", squared_error, scaling="standardise", default=True)
register("regression", "huber", huber, scaling="standardise")
register("regression", "bce", binary_cross_entropy, scaling="unit_range")


# --- what an epoch reports as valid_loss --------------------------------------------------------

def mean_squared_error(targets: np.ndarray, values: np.ndarray) -> float:
    return metrics.rmse(targets, values) ** 2


# The held-out rows' loss in the space the cached logits live in, whatever loss trained them,
# so experiments compare: the log-loss of the probabilities (mean binary for tags), the mean
# squared error of the values in the target's units.
HELD_OUT_LOSS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "single_label": metrics.logloss,
    "multi_label": metrics.logloss,
    "regression": mean_squared_error,
}
