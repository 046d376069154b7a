"""Image embeddings for `ens audit`: each image's pooled features, the input of a network's classifier.

From a trained experiment, or from a weights file loaded as `ens train-folds --pretrained` loads it.
What comes out is plain numpy (float32 (n_images, n_features) for train and for test), so the
audit that compares them (results/audit) never touches torch.

An experiment's embeddings are fold 0's model's. Each fold model has its own feature space
(trained from its own start on its own rows), so features cannot be averaged across folds; the
mean of the folds' cosine similarities could be, but it costs k forward passes over every image
for what one model already tells: near-copies are nearly the same input, and any fold model maps
them to nearly the same point (measured in benchmarks/RESULTS.md). Fold 0's model saw the other
folds' rows in training; that does not matter here, as no score is computed from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ensemble.artifacts.identity import images_changed
from ensemble.artifacts.scores import check_usable
from ensemble.artifacts.store import ExperimentDir, open_experiment
from ensemble.config import Workspace
from ensemble.data.cache import competition_images
from ensemble.data.competition import Competition
from ensemble.data.content import competition_keys
from ensemble.errors import EnsError
from ensemble.inference.batches import Batches
from ensemble.inference.checkpoints import checkpoint_owner, fold_checkpoints, net_from_checkpoint, settings_of
from ensemble.nets.networks import HeadAttention, backbone_of

FOLD = 0  # the fold whose model gives an experiment's embeddings (see the module docstring)
BATCH_SIZE = 256  # images per forward pass; features are small, so larger than training's batches


@dataclass(frozen=True)
class ImageEmbeddings:
    """train: float32 (n_train, n_features); test: float32 (n_test, n_features); source: how they
    were made, for audit.json (`kind` "experiment" or "pretrained", the model, size, ...)."""

    train: np.ndarray
    test: np.ndarray
    source: dict


def pooled_features(net: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """float (n, 3, size, size) -> float (n, n_features): timm's pooled features before the
    classifier (forward_head with pre_logits), after ens's attention block when the net has one."""
    backbone = backbone_of(net)
    features = backbone.forward_features(inputs)
    if isinstance(net, HeadAttention):
        features = net.attention(features)
    return backbone.forward_head(features, pre_logits=True).flatten(1)


def embed(net: nn.Module, batches: Batches, images, size: int | None = None) -> np.ndarray:
    """float32 (n_images, n_features) for uint8 images (n_images, h, w, 3) (an array or the image
    cache), a batch at a time, in eval mode and float32."""
    net.eval()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(images), batches.batch_size):
            pixels = torch.from_numpy(np.asarray(images[start : start + batches.batch_size]))
            chunks.append(pooled_features(net, batches.to_input(pixels, size)).float().cpu().numpy())
    if not chunks:
        n_features = pooled_features(net, torch.zeros(1, 3, size or 32, size or 32, device=batches.device)).shape[1]
        return np.empty((0, n_features), dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32)


def check_experiment(workspace: Workspace, competition: Competition, name: str) -> tuple[ExperimentDir, dict]:
    """The experiment `name` (finished, trained on these ids, labels and images) and its settings;
    refused in one line otherwise. Cheap: nothing is loaded yet."""
    experiment = open_experiment(workspace.models_dir, name)
    check_usable(experiment, competition)
    settings = settings_of(experiment)
    changed = images_changed(settings, competition_keys(competition))
    if changed:
        raise EnsError(
            f"{experiment.root}: trained on other {' and '.join(changed)} images (their content changed since); "
            f"its embeddings would describe other pictures: train it again with `ens train-folds --name {name} --force`"
        )
    return experiment, settings


def experiment_embeddings(
    workspace: Workspace, competition: Competition, name: str, device_name: str, progress: Callable[[object], None] | None = None
) -> ImageEmbeddings:
    """Fold 0's model's pooled features of every train and test image, at the size it was trained at."""
    from ensemble.nets.devices import memory_format, resolve_device

    experiment, settings = check_experiment(workspace, competition, name)
    if progress:
        progress(f"computing embeddings: fold {FOLD}'s model of {name}")
    owner = checkpoint_owner(workspace.models_dir, experiment)
    checkpoints, size = fold_checkpoints(owner, [FOLD], settings, competition.classes)
    device = resolve_device(device_name)
    path = owner.checkpoint_path(FOLD)
    layout = memory_format(device, checkpoints[FOLD]["state_dict"])
    net = net_from_checkpoint(checkpoints[FOLD], path, device, layout)
    train, test, _ = competition_images(workspace.root, competition, size)
    batches = Batches(net, device, BATCH_SIZE, layout)
    source = {"kind": "experiment", "experiment": name, "fold": FOLD, "checkpoint": str(path), "model": checkpoints[FOLD]["model"], "size": size}
    return ImageEmbeddings(embed(net, batches, train), embed(net, batches, test), source)


# Below this side a network pretrained at ImageNet's sizes has a final feature map of one pixel
# (stride 32) and its pooled features collapse: measured with the efficientnet-lite0 ImageNet
# weights on 2,300 40 px digit images (benchmarks/bench_audit_trained.py --data digit), at 32 px
# 5,704 of 22,918 candidate pairs of distinct images lay at relative distance <= 0.2, at 64 and
# 128 px none. Pretrained embeddings are computed at the training size, or this when larger.
MIN_PRETRAINED_SIZE = 64


def pretrained_embeddings(
    workspace: Workspace,
    competition: Competition,
    weights_file: Path,
    model_name: str,
    size: int,
    device_name: str,
    progress: Callable[[object], None] | None = None,
    floor: bool = True,
) -> ImageEmbeddings:
    """The pooled features of `model_name` with the backbone weights of `weights_file` (matched as
    train-folds matches them: by name, or by order and shape), at `size`, or MIN_PRETRAINED_SIZE
    when larger (floor=False: at `size` as given, for the benchmark that measures why)."""
    from ensemble.nets.devices import resolve_device
    from ensemble.nets.networks import check_input_size, load_weights

    size = max(size, MIN_PRETRAINED_SIZE) if floor else size
    if progress:
        progress(f"computing embeddings: {model_name} at {size} px with the weights of {weights_file}")
    net = check_input_size(model_name, 1, size)  # the classifier is never used: one output will do
    mapping = load_weights(net, model_name, size, str(weights_file))
    device = resolve_device(device_name)
    net = net.to(device, memory_format=torch.channels_last).eval()
    train, test, _ = competition_images(workspace.root, competition, size)
    batches = Batches(net, device, BATCH_SIZE)
    source = {"kind": "pretrained", "weights": str(weights_file), "model": model_name, "size": size, "matched": mapping.summary()}
    return ImageEmbeddings(embed(net, batches, train), embed(net, batches, test), source)
