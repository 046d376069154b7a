"""The training loop's regularisers: mixup/cutmix, the loss, class weights, and the weights' EMA.

- mixup (Zhang et al. 2017, arXiv:1710.09412) blends two images and their targets; cutmix
  (Yun et al. 2019, arXiv:1905.04899) pastes a box of one image into another, the targets
  mixed by the box's area. When both are on, each batch uses one of them, chosen at random.
  The partner of each image is a random permutation of the batch, so batches of any size,
  odd or of one image, work (timm's Mixup asserts an even batch).
- label smoothing (Szegedy et al. 2016) and class weights go into one cross-entropy call
  (the losses of the other task kinds: losses.py).
- EMA: an exponential moving average of the weights (Polyak averaging), with timm's warm-up
  of the decay, min(decay, (1 + step) / (10 + step)): small competitions train only tens of
  steps an epoch, and a fixed 0.999 would still remember the random start at the end.

Torch is imported inside functions so that the registries' names load without it.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Callable

import numpy as np

from ensemble.registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import nn


# --- class weights: train targets -> per-class loss weight, or None for plain ---------------

CLASS_WEIGHTS: Registry[Callable[[np.ndarray, int], "np.ndarray | None"]] = Registry("class weighting")


@CLASS_WEIGHTS.register("none")
def no_weights(targets: np.ndarray, n_classes: int) -> None:
    return None


@CLASS_WEIGHTS.register("balanced")
def balanced_weights(targets: np.ndarray, n_classes: int) -> np.ndarray:
    """Class indices int (n,): scikit-learn's 'balanced', n / (n_classes * count); a class
    absent from the rows gets 1. Tags 0/1 (n, n_tags): each tag's positive weight (the bce
    loss's pos_weight), negatives / positives; 1 for a tag the rows never or always have."""
    if np.ndim(targets) == 2:
        return tag_weights(targets)
    counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
    weights = np.ones(n_classes)
    present = counts > 0
    weights[present] = len(targets) / (np.count_nonzero(present) * counts[present])
    return weights.astype(np.float32)


def tag_weights(targets: np.ndarray) -> np.ndarray:
    positives = np.asarray(targets, dtype=np.float64).sum(axis=0)
    negatives = len(targets) - positives
    weights = np.ones(targets.shape[1])
    both = (positives > 0) & (negatives > 0)
    weights[both] = negatives[both] / positives[both]
    return weights.astype(np.float32)


# --- mixup and cutmix ------------------------------------------------------------------------

def mix_batch(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    n_classes: int,
    mixup: float,
    cutmix: float,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix a batch with a random permutation of itself.

    inputs: float (n, 3, h, w); targets: class indices int64 (n,), one-hot before mixing; or
    float (n, n_columns), mixed as they are (0/1 tags, a regression's scaled values). Returns
    (mixed inputs, float targets (n, n_columns)): for class indices, rows that sum to one.
    mixup, cutmix: Beta(A, A) parameters, 0 = off.
    """
    import torch
    import torch.nn.functional as F

    methods = [name for name, alpha in (("mixup", mixup), ("cutmix", cutmix)) if alpha > 0]
    method = methods[rng.integers(len(methods))] if len(methods) > 1 else methods[0]
    alpha = mixup if method == "mixup" else cutmix
    keep = float(rng.beta(alpha, alpha))
    partner = torch.from_numpy(rng.permutation(len(inputs))).to(inputs.device)
    if method == "mixup":
        mixed = inputs * keep + inputs[partner] * (1 - keep)
    else:
        height, width = inputs.shape[-2:]
        box_h, box_w = int(height * np.sqrt(1 - keep)), int(width * np.sqrt(1 - keep))
        top, left = int(rng.integers(0, height - box_h + 1)), int(rng.integers(0, width - box_w + 1))
        mixed = inputs.clone()
        mixed[:, :, top : top + box_h, left : left + box_w] = inputs[partner, :, top : top + box_h, left : left + box_w]
        keep = 1 - box_h * box_w / (height * width)  # the area really pasted
    soft = targets.float() if targets.is_floating_point() else F.one_hot(targets, n_classes).float()
    return mixed, soft * keep + soft[partner] * (1 - keep)


def loss_function(label_smoothing: float, class_weights: np.ndarray | None, device: torch.device, reduction: str = "mean"):
    """(logits, targets) -> mean loss, or each row's with reduction "none"; targets int64 (n,)
    or float (n, n_classes) soft targets."""
    import torch
    import torch.nn.functional as F

    weight = None if class_weights is None else torch.from_numpy(class_weights).to(device)

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if weight is None and label_smoothing == 0 and reduction == "mean":
            return F.cross_entropy(logits, targets)  # the loop before these options, call for call
        return F.cross_entropy(logits.float(), targets, weight=weight, label_smoothing=label_smoothing, reduction=reduction)

    return loss


# --- EMA of the weights ------------------------------------------------------------------------

class WeightsEma:
    """A copy of the net whose floating-point state follows the trained net's average.

    Buffers (BatchNorm's running statistics) are averaged too; integer buffers are copied.
    """

    def __init__(self, net: nn.Module, decay: float):
        self.net = copy.deepcopy(net).eval()
        for parameter in self.net.parameters():
            parameter.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    def update(self, net: nn.Module) -> None:
        import torch

        decay = self.current_decay()
        self.updates += 1
        with torch.no_grad():
            for mine, theirs in zip(self.net.state_dict().values(), net.state_dict().values()):
                if mine.dtype.is_floating_point:
                    mine.lerp_(theirs, 1 - decay)
                else:
                    mine.copy_(theirs)

    def state_dict(self) -> dict:
        return {"model": self.net.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["model"])
        self.updates = state["updates"]
