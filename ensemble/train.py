"""One fold's training: fit on the other folds, then predict the held-out fold and the test set.

The fold's OOF logits come from the weights after the last epoch, never from an epoch picked
by its validation score: picking on the held-out fold would leak it into the OOF score that
blending later trusts.

Reproducible and resumable: every random draw of an epoch (shuffle order, dropout) is seeded
from (seed, fold, epoch), and the training state is saved after each epoch, so a run killed
mid-fold resumes at its last finished epoch and ends with the same weights (bit for bit on
the CPU) as one never stopped.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ensemble import devices, store
from ensemble.config import TrainSettings
from ensemble.errors import EnsError
from ensemble.metrics import Metric, logloss, softmax
from ensemble.nets import create_net, normalization
from ensemble.stages import TRAINABLE, parameter_groups, plan_stages, stage_of_epoch, total_epochs


@dataclass(frozen=True)
class FoldData:
    """One fold's view of the data; rows index into the shared arrays, which are never copied.

    images: uint8 (n_images, size, size, 3), every training image; targets: int64 (n_images,)
    class indices; train_rows, valid_rows: int64 row indices; test_images: uint8 (n_test, ...).
    """

    images: np.ndarray
    targets: np.ndarray
    train_rows: np.ndarray
    valid_rows: np.ndarray
    test_images: np.ndarray
    n_classes: int

    @property
    def valid_targets(self) -> np.ndarray:
        return self.targets[self.valid_rows]


@dataclass(frozen=True)
class EpochEnd:
    """Progress event sent after each epoch."""

    fold: int
    epoch: int  # 1-based
    epochs: int
    train_loss: float
    valid_loss: float
    valid_score: float
    metric: str
    seconds: float
    stage: int = 1  # 1-based; events saved before stages existed had one
    stages: int = 1
    size: int = 0  # the stage's image size; 0 in events saved before stages existed


@dataclass(frozen=True)
class FoldOutput:
    """valid_logits: float32 (n_valid, n_classes); test_logits: float32 (n_test, n_classes).

    resumed_seconds: time spent by earlier runs on the epochs this one resumed from.
    """

    valid_logits: np.ndarray
    test_logits: np.ndarray
    state_dict: dict
    history: list[EpochEnd]
    resumed_seconds: float


Progress = Callable[[object], None]


def seed_for(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


class Batches:
    """Moves uint8 image batches to the device and turns them into normalised float input."""

    def __init__(self, net: nn.Module, device: torch.device, batch_size: int):
        mean, std = normalization(net)
        self.device = device
        self.batch_size = batch_size
        self.scale = (1.0 / (255.0 * std)).to(device)
        self.shift = (mean / std).to(device)
        self.memory_format = devices.memory_format(device)
        self.pin = device.type == "cuda"

    def to_device(self, images: torch.Tensor) -> torch.Tensor:
        """images: uint8 (n, h, w, 3) on the CPU -> uint8 (n, 3, h, w) on the device."""
        if self.pin:
            images = images.pin_memory()
        return images.to(self.device, non_blocking=True).permute(0, 3, 1, 2)

    def normalise(self, images: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """uint8 (n, 3, h, w) on the device -> float input (n, 3, size, size).

        Images are decoded once at the largest stage size; smaller stages shrink each batch
        here, antialiased so that a 2x smaller image is an average, not a subsample.
        """
        inputs = images.float() * self.scale - self.shift
        if size is not None and size != inputs.shape[-1]:
            inputs = F.interpolate(inputs, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return inputs.contiguous(memory_format=self.memory_format)

    def to_input(self, images: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """images: uint8 (n, h, w, 3) on the CPU -> float (n, 3, size, size) on the device."""
        return self.normalise(self.to_device(images), size)

    @torch.inference_mode()
    def predict(self, net: nn.Module, images: np.ndarray, rows: np.ndarray | None = None, size: int | None = None) -> np.ndarray:
        """Logits float32 (n, n_classes) for uint8 images (n_images, h, w, 3), or their `rows`, at `size`.

        In eval mode and float32 even on CUDA: bf16 keeps about 3 significant digits, which
        would tie OOF probabilities that rank metrics and blending need to tell apart.
        """
        net.eval()
        pixels = torch.from_numpy(images)
        rows = torch.arange(len(pixels)) if rows is None else torch.from_numpy(rows)
        outputs = [net(self.to_input(pixels[batch], size)).float().cpu() for batch in rows.split(self.batch_size)]
        return torch.cat(outputs).numpy()


def batch_indices(n_rows: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A shuffled epoch in batches; a last batch of one row is dropped (BatchNorm cannot train on it)."""
    batches = list(torch.randperm(n_rows, generator=generator).split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


def train_fold(
    data: FoldData,
    settings: TrainSettings,
    fold: int,
    metric: Metric,
    resume_path: Path,
    progress: Progress | None = None,
) -> FoldOutput:
    device = devices.resolve_device(settings.device)
    plan = plan_stages(settings)
    epochs = total_epochs(plan)
    torch.manual_seed(seed_for(settings.seed, fold))
    net = create_net(settings.model, data.n_classes, plan[-1].size).to(device, memory_format=devices.memory_format(device))
    batches = Batches(net, device, settings.batch_size)
    optimizer = torch.optim.AdamW(parameter_groups(net, settings), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = len(batch_indices(len(data.train_rows), settings.batch_size, torch.Generator()))
    # One schedule over every step of every stage; each stage scales it by its lr_scale.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.lr, total_steps=epochs * steps_per_epoch, pct_start=0.2
    )
    scaler = devices.grad_scaler(device)
    history: list[EpochEnd] = []
    first_epoch = 0
    if resume_path.is_file():
        state = torch.load(resume_path, map_location=device, weights_only=True)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:  # empty when the run began where no scaler was needed
            scaler.load_state_dict(state["scaler"])
        history = [EpochEnd(**event) for event in state["history"]]
        first_epoch = state["epoch"]
    resumed_seconds = sum(event.seconds for event in history)

    valid_logits = None  # stays None when a resumed fold had already finished every epoch
    pixels = torch.from_numpy(data.images)
    all_targets = torch.from_numpy(data.targets)
    train_rows = torch.from_numpy(data.train_rows)
    for epoch in range(first_epoch, epochs):
        started = time.perf_counter()
        stage_index = stage_of_epoch(plan, epoch)  # a resumed run restarts inside its stage
        stage = plan[stage_index]
        TRAINABLE.get(stage.trainable)(net)
        epoch_seed = seed_for(settings.seed, fold, epoch)
        torch.manual_seed(epoch_seed)
        net.train()
        loss_sum = torch.zeros((), device=device)
        n_seen = 0
        for batch in batch_indices(len(train_rows), settings.batch_size, torch.Generator().manual_seed(epoch_seed)):
            rows = train_rows[batch]
            inputs = batches.to_input(pixels[rows], stage.size)
            targets = all_targets[rows].to(device, non_blocking=True)
            for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr()):
                group["lr"] = lr * stage.lr_scale
            with devices.autocast(device):
                loss = F.cross_entropy(net(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum += loss.detach().float() * len(rows)
            n_seen += len(rows)

        valid_logits = batches.predict(net, data.images, data.valid_rows, stage.size)
        train_loss = float(loss_sum) / max(n_seen, 1)
        if not (np.isfinite(train_loss) and np.isfinite(valid_logits).all()):
            # Stop before the state is saved: a NaN fold must never be resumed or marked done.
            raise EnsError(
                f"fold {fold} diverged in epoch {epoch + 1} (train loss {train_loss:.4g}); "
                "lower --lr and train again with --force"
            )
        valid_probs = softmax(valid_logits)
        event = EpochEnd(
            fold=fold,
            epoch=epoch + 1,
            epochs=epochs,
            train_loss=train_loss,
            valid_loss=logloss(data.valid_targets, valid_probs),
            valid_score=metric.score(data.valid_targets, valid_probs),
            metric=metric.name,
            seconds=time.perf_counter() - started,
            stage=stage_index + 1,
            stages=len(plan),
            size=stage.size,
        )
        history.append(event)
        state = {
            "epoch": epoch + 1,
            "model": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "history": [dataclasses.asdict(item) for item in history],
        }
        with store.atomic_path(resume_path) as temporary:
            torch.save(state, temporary)
        if progress:
            progress(event)

    if valid_logits is None:
        valid_logits = batches.predict(net, data.images, data.valid_rows, plan[-1].size)
    return FoldOutput(
        valid_logits=valid_logits,
        test_logits=batches.predict(net, data.test_images, size=plan[-1].size),
        state_dict={name: tensor.cpu() for name, tensor in net.state_dict().items()},
        history=history,
        resumed_seconds=resumed_seconds,
    )
