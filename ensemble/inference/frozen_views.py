"""TTA for a frozen-features experiment: the backbone's features under each view computed once
for every image, then each fold's classifier applied to them.

The folds of a frozen-features experiment (training/head.py) share the pretrained backbone bit
for bit and differ only in their linear classifiers. The ordinary path (checkpoints.fold_logits)
runs each fold's whole network over its held-out rows and over every test image, under every
view: the test set k times. Here the backbone runs over the training and the test images once
per view, and each fold's classifier is one matrix product. A network whose folds do not share
their backbone (checked, weight for weight) takes the ordinary path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensemble.errors import EnsError
from ensemble.inference import scaling, tta
from ensemble.tasks import Task


@dataclass(frozen=True)
class ViewFeatures:
    """train: float32 (n_views, n_train, n_features); test: float32 (n_views, n_test, n_features);
    classifier: the state_dict prefix of the networks' classifier ("classifier", "fc", ...)."""

    train: np.ndarray
    test: np.ndarray
    classifier: str

    def prediction(self, checkpoint: dict, path: Path, part: str, rows, policy: tta.Policy, task: Task) -> tta.Prediction:
        """A fold's logits on the `part` ("train" or "test") images, or their `rows`, under the
        policy: its classifier on each view's features, decoded with its scale, then merged."""
        features = self.train if part == "train" else self.test
        if rows is not None:
            features = features[:, rows]
        state = checkpoint["state_dict"]
        weight = state[f"{self.classifier}.weight"].float().numpy()
        bias = state[f"{self.classifier}.bias"].float().numpy()
        views = scaling.from_record(checkpoint.get("target_scale")).decode((features @ weight.T + bias).astype(np.float32))
        if not np.isfinite(views).all():
            raise EnsError(f"{path}: the model's logits hold NaN or infinity")
        return tta.Prediction(policy.merged(views, task), views)


def shared_view_features(settings: dict, checkpoints: dict[int, dict], path: Path, device, train_images, test_images, policy: tta.Policy) -> ViewFeatures | None:
    """Every view's features of the training and test images, from the backbone every fold
    shares; None when the experiment is not a frozen-features one, its folds' backbones differ,
    or the folds asked for would pass over fewer images one by one (a single fold).
    path: the first fold's checkpoint, named in errors."""
    if not settings["train"].get("frozen_features") or len(checkpoints) < 2:
        return None
    from ensemble.inference.batches import Batches
    from ensemble.inference.checkpoints import net_from_checkpoint
    from ensemble.inference.embeddings import pooled_features
    from ensemble.nets.devices import memory_format

    first = checkpoints[min(checkpoints)]
    layout = memory_format(device, first["state_dict"])
    net = net_from_checkpoint(first, path, device, layout)
    classifier = next((name for name, module in net.named_modules() if module is net.get_classifier()), "")
    if not classifier or not same_backbone(checkpoints, classifier):
        return None
    batches = Batches(net, device, settings["train"]["batch_size"], layout)

    def features(inputs):
        return pooled_features(net, inputs)

    return ViewFeatures(
        tta.view_outputs(features, batches, train_images, None, policy),
        tta.view_outputs(features, batches, test_images, None, policy),
        classifier,
    )


def same_backbone(checkpoints: dict[int, dict], classifier: str) -> bool:
    """Whether every fold's weights, the classifier's aside, are the first fold's."""
    import torch

    states = [checkpoint["state_dict"] for _, checkpoint in sorted(checkpoints.items())]
    backbone = [key for key in states[0] if not key.startswith(f"{classifier}.")]
    return all(state.keys() == states[0].keys() and all(torch.equal(state[key], states[0][key]) for key in backbone) for state in states[1:])
