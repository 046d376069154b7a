"""One fold of a frozen-features experiment (features.py), trained on the cached features of the
fold's training rows: a linear head on pooled features, or (--top-blocks N) the network's top N
stages and classifier on the frozen stages' maps. Its OOF and test logits, and the whole network
to save, which `ens predict`, TTA and export read like any fold's.

A linear head trains on the CPU whatever the device: it is one matrix, a few thousand rows, and
a fold takes seconds; the CPU keeps it bit for bit reproducible. Top stages train on the
experiment's device. A stopped fold starts again (there is no epoch state worth resuming).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from ensemble.config import TrainSettings
from ensemble.errors import EnsError
from ensemble.inference.scaling import SCALINGS
from ensemble.metrics import Metric
from ensemble.nets.devices import memory_format, resolve_device
from ensemble.nets.networks import set_stage, train_mode
from ensemble.nets.split import Split
from ensemble.training import losses
from ensemble.training.draws import batch_indices, seed_for
from ensemble.training.events import EpochEnd, Progress
from ensemble.training.features import Features, pretrained_net
from ensemble.training.losses import HELD_OUT_LOSS
from ensemble.training.optim import OPTIMIZERS, SCHEDULES, parameter_groups
from ensemble.training.recipe import CLASS_WEIGHTS
from ensemble.training.trainer import FoldData, FoldOutput, divergence

# A feature whose standard deviation over the fold's training rows is below this is only
# centred (scikit-learn's StandardScaler does the same): dividing by a near-zero spread would
# multiply its held-out values, and the folded classifier's weights, by millions.
TINY = 1e-6


def train_head_fold(data: FoldData, features: Features, settings: TrainSettings, fold: int, metric: Metric, progress: Progress | None = None) -> FoldOutput:
    """Train fold `fold`'s head (a linear head on pooled features, or the top stages on the frozen
    stages' maps) on the cached features; its logits and the network's weights."""
    if data.lesson:  # train_experiment refuses it before anything is written; a direct call too
        raise EnsError("train frozen_features: a student learns from its teacher through the ordinary trainer; train it without --frozen-features")
    settings = settings.resolved()
    rows = data.train_rows
    model = (TopStages if features.train.ndim == 4 else LinearHead)(features, rows, settings, data.n_classes, fold)
    loss = losses.for_task(settings.loss, data.task)
    scale = SCALINGS.get(loss.scaling).fit(data.targets[rows])  # never the held-out rows
    class_weights = CLASS_WEIGHTS.get(settings.class_weights)(data.targets[rows], data.n_classes)
    loss_of = loss.build(settings.label_smoothing, class_weights, model.device)
    targets = torch.from_numpy(scale.encode(data.targets)).to(model.device)
    optimizer = OPTIMIZERS.get(settings.optimizer)(model.groups(settings), settings)
    epochs = settings.total_epochs
    steps = len(batch_indices(len(rows), settings.batch_size, torch.Generator()))
    scheduler = SCHEDULES.get(settings.schedule)(optimizer, settings, epochs * steps)
    train_rows, history = torch.from_numpy(rows), []
    for epoch in range(epochs):
        started = time.perf_counter()
        epoch_seed = seed_for(settings.seed, fold, epoch)
        torch.manual_seed(epoch_seed)
        total, seen = 0.0, 0
        model.train()
        for batch in batch_indices(len(rows), settings.batch_size, torch.Generator().manual_seed(epoch_seed)):
            chosen = train_rows[batch]
            batch_loss = loss_of(model(model.inputs[chosen]), targets[chosen])
            optimizer.zero_grad(set_to_none=True)
            batch_loss.backward()
            if settings.clip_grad > 0:
                nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad)
            optimizer.step()
            scheduler.step()
            total += float(batch_loss.detach()) * len(chosen)
            seen += len(chosen)
        valid_logits = model.predict(model.inputs[data.valid_rows], scale, settings.batch_size)
        history.append(epoch_end(data, fold, epoch, epochs, total / max(seen, 1), valid_logits, metric, settings, time.perf_counter() - started))
        if progress:
            progress(history[-1])
    return FoldOutput(
        valid_logits=valid_logits,
        test_logits=model.predict(model.test_inputs, scale, settings.batch_size),
        state_dict=model.network_state(settings, data.n_classes),
        history=history,
        resumed_seconds=0.0,  # a stopped fold starts again; the features' time is the experiment's (scores.json)
        target_scale=scale.record(),
    )


class LinearHead(nn.Module):
    """A linear head on the pooled features, standardised by the fold's training rows."""

    def __init__(self, features: Features, rows: np.ndarray, settings: TrainSettings, n_classes: int, fold: int):
        super().__init__()
        self.mean = features.train[rows].mean(axis=0, dtype=np.float64)
        self.std = features.train[rows].std(axis=0, dtype=np.float64)
        self.std[self.std < TINY] = 1.0  # a feature (nearly) constant on the training rows: centred, not blown up
        self.inputs = torch.from_numpy(((features.train - self.mean) / self.std).astype(np.float32))
        self.test_inputs = torch.from_numpy(((features.test - self.mean) / self.std).astype(np.float32))
        torch.manual_seed(seed_for(settings.seed, fold))
        self.head = nn.Linear(self.inputs.shape[1], n_classes)
        self.device = torch.device("cpu")

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(inputs)

    def groups(self, settings: TrainSettings) -> list[dict]:
        return [{"params": list(self.head.parameters()), "weight_decay": settings.weight_decay}]

    def predict(self, inputs: torch.Tensor, scale, batch_size: int) -> np.ndarray:
        """float32 (n, n_classes): the head's logits (a regression's decoded values)."""
        self.eval()
        with torch.inference_mode():
            return np.asarray(scale.decode(self.head(inputs).numpy()), dtype=np.float32)

    def network_state(self, settings: TrainSettings, n_classes: int) -> dict:
        return network_state(self.head, self.mean, self.std, settings, n_classes)


class TopStages(nn.Module):
    """The pretrained network's last --top-blocks stages and its classifier, trained on the
    frozen stages' cached maps (nets/split.py); BatchNorm in them trains unless --freeze-bn."""

    def __init__(self, features: Features, rows: np.ndarray, settings: TrainSettings, n_classes: int, fold: int):
        super().__init__()
        self.net = pretrained_net(settings, n_classes)
        torch.manual_seed(seed_for(settings.seed, fold))
        self.net.reset_classifier(n_classes)  # each fold's classifier drawn from its own seed
        set_stage(self.net, settings.top_blocks, head_only=False, freeze_bn=settings.freeze_bn)
        self.split = Split(self.net, settings.top_blocks, settings.model)
        self.device = resolve_device(settings.device)
        self.layout = memory_format(self.device)
        self.net.to(self.device, memory_format=self.layout)
        self.inputs, self.test_inputs = torch.from_numpy(features.train), torch.from_numpy(features.test)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.split.top(maps.to(self.device, memory_format=self.layout))

    def train(self, mode: bool = True) -> "TopStages":
        if mode:
            train_mode(self.net)  # frozen BatchNorm layers keep their statistics
        else:
            self.net.eval()
        return self

    def groups(self, settings: TrainSettings) -> list[dict]:
        return parameter_groups(self.net, settings)

    def predict(self, maps: torch.Tensor, scale, batch_size: int) -> np.ndarray:
        """float32 (n, n_classes): the network's logits on the maps, a batch at a time."""
        self.eval()
        with torch.inference_mode():
            chunks = [self(maps[start : start + batch_size]).float().cpu().numpy() for start in range(0, len(maps), batch_size)]
        logits = np.concatenate(chunks) if chunks else np.empty((0, self.net.get_classifier().out_features), dtype=np.float32)
        return np.asarray(scale.decode(logits), dtype=np.float32)

    def network_state(self, settings: TrainSettings, n_classes: int) -> dict:
        net = self.net.to(memory_format=memory_format(torch.device("cpu")))  # as features.compute saves a linear head's
        return {name: tensor.detach().cpu() for name, tensor in net.state_dict().items()}


def epoch_end(data: FoldData, fold: int, epoch: int, epochs: int, train_loss: float, valid_logits: np.ndarray, metric: Metric, settings: TrainSettings, seconds: float) -> EpochEnd:
    """The epoch's event, as the ordinary trainer reports it; a diverged head is refused."""
    if not (np.isfinite(train_loss) and np.isfinite(valid_logits).all()):
        raise EnsError(f"fold {fold} diverged in epoch {epoch + 1} ({divergence(train_loss, valid_logits)}); lower --lr (now {settings.lr:g}) and train again with --force")
    outputs = data.task.outputs(valid_logits)
    targets = data.valid_targets
    return EpochEnd(
        fold=fold, epoch=epoch + 1, epochs=epochs, train_loss=train_loss, valid_loss=HELD_OUT_LOSS[data.task.name](targets, outputs),
        valid_score=metric.score(targets, outputs), metric=metric.name, seconds=seconds, size=int(settings.size),
    )


def network_state(head: nn.Linear, mean: np.ndarray, std: np.ndarray, settings: TrainSettings, n_classes: int) -> dict:
    """The pretrained network with the head as its classifier, the standardisation folded into
    it: W' = W / std, b' = b - W' . mean, so the network's logits on an image are the head's on
    its standardised features."""
    # Saved in the layout the features were computed in (features.compute: memory_format(device)),
    # the one the ordinary predict path, export and embeddings read off the saved weights: on 2 CPU
    # cores efficientnet-lite0 at 224 px ran 77 images a second channels-last, 40 contiguous.
    net = pretrained_net(settings, n_classes).to(memory_format=memory_format(torch.device("cpu")))
    classifier = net.get_classifier()
    weight = head.weight.detach().double() / torch.from_numpy(std)[None, :]
    bias = head.bias.detach().double() - weight @ torch.from_numpy(mean)
    with torch.no_grad():
        classifier.weight.copy_(weight.float())
        classifier.bias.copy_(bias.float())
    return {name: tensor.detach().cpu() for name, tensor in net.state_dict().items()}
