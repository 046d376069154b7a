"""TTA for a frozen-features experiment: the shared backbone run once over each view of the
images, every fold's classifier applied in the same pass.

The folds of a frozen-features experiment (training/head.py) share the pretrained backbone bit
for bit and differ only in their linear classifiers. The ordinary path (checkpoints.fold_logits)
runs each fold's whole network over its held-out rows and over every test image, under every
view: the test set k times. Here the backbone runs once per view over the held-out rows of the
folds asked for and over the test images, and each pass's pooled features go through every
fold's classifier at once (one matrix of k x n_classes rows), so what is kept is k x n_classes
columns a row, not the backbone's thousand-odd features. A network whose folds do not share
their backbone (checked, weight for weight), or whose classifier is not linear, takes the
ordinary path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensemble.inference import scaling, tta
from ensemble.inference.checkpoints import check_finite, net_from_checkpoint
from ensemble.tasks import Task


@dataclass(frozen=True)
class FoldsLogits:
    """Every fold's logits under every view, before decoding and merging.

    train: float32 (n_views, len(rows), k x n_classes) for the training `rows` predicted;
    test: float32 (n_views, n_test, k x n_classes); columns: {fold: its classifier's columns}."""

    train: np.ndarray
    test: np.ndarray
    rows: np.ndarray
    columns: dict[int, slice]

    def prediction(self, fold: int, checkpoint: dict, path: Path, rows, policy: tta.Policy, task: Task) -> tta.Prediction:
        """Fold `fold`'s logits on the training `rows` (None: on the test images), decoded with its
        scale and merged over the policy's views."""
        views = self.test if rows is None else self.train[:, np.searchsorted(self.rows, rows)]
        views = scaling.from_record(checkpoint.get("target_scale")).decode(np.ascontiguousarray(views[:, :, self.columns[fold]]))
        check_finite(views, path)
        return tta.Prediction(policy.merged(views, task), views)


def shared_backbone_logits(
    settings: dict, checkpoints: dict[int, dict], path: Path, device, train_images, rows: np.ndarray, test_images, policy: tta.Policy
) -> FoldsLogits | None:
    """Every fold's logits on the training `rows` and the test images under each view, from one
    pass of the backbone the folds share; None when the experiment is not a frozen-features one,
    its folds' backbones differ, or its classifier is not linear. path: the first fold's
    checkpoint, named in errors."""
    if not settings["train"].get("frozen_features") or settings["train"].get("top_blocks", 0) > 0 or not checkpoints:
        return None  # top stages trained per fold (--top-blocks): their backbones differ
    import torch

    from ensemble.inference.batches import Batches
    from ensemble.inference.embeddings import pooled_features
    from ensemble.nets.devices import memory_format

    folds = sorted(checkpoints)
    layout = memory_format(device)  # the features' own (features.compute), whatever layout older weights were saved in
    net = net_from_checkpoint(checkpoints[folds[0]], path, device, layout)
    head = net.get_classifier()
    classifier = next((name for name, module in net.named_modules() if module is head), "")
    if not classifier or not isinstance(head, torch.nn.Linear) or not same_backbone(checkpoints, classifier):
        return None
    states = [checkpoints[fold]["state_dict"] for fold in folds]
    weight = torch.cat([state[f"{classifier}.weight"] for state in states]).float().to(device)
    bias = torch.cat([state[f"{classifier}.bias"] for state in states]).float().to(device)
    n_classes = len(states[0][f"{classifier}.bias"])
    batches = Batches(net, device, settings["train"]["batch_size"], layout)

    def every_folds_logits(inputs):
        return torch.nn.functional.linear(pooled_features(net, inputs).float(), weight, bias)

    return FoldsLogits(
        tta.view_outputs(every_folds_logits, batches, train_images, rows, policy),
        tta.view_outputs(every_folds_logits, batches, test_images, None, policy),
        np.asarray(rows),
        {fold: slice(index * n_classes, (index + 1) * n_classes) for index, fold in enumerate(folds)},
    )


def same_backbone(checkpoints: dict[int, dict], classifier: str) -> bool:
    """Whether every fold's weights, the classifier's aside, are the first fold's."""
    import torch

    states = [checkpoint["state_dict"] for _, checkpoint in sorted(checkpoints.items())]
    backbone = [key for key in states[0] if not key.startswith(f"{classifier}.")]
    return all(state.keys() == states[0].keys() and all(torch.equal(state[key], states[0][key]) for key in backbone) for state in states[1:])
