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


@dataclass(frozen=True)
class FoldData:
    """One fold's view of the data; rows index into the shared arrays, which are never copied.

    images: uint8 (n_images, size, size, 3), every training image; targets: int64 (n_images,)
    class indices; train_rows, valid_rows: int64 row indices; test_images: uint8 (n_test, ...).
    The image arrays may be cache.CachedImages: rows are read a batch at a time.
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

    def to_input(self, images: torch.Tensor) -> torch.Tensor:
        """images: uint8 (n, h, w, 3) on the CPU -> float (n, 3, h, w) on the device."""
        if self.pin:
            images = images.pin_memory()
        images = images.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        return (images * self.scale - self.shift).contiguous(memory_format=self.memory_format)

    @torch.inference_mode()
    def predict(self, net: nn.Module, images: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Logits float32 (n, n_classes) for uint8 images (n_images, h, w, 3), or their `rows`.

        In eval mode and float32 even on CUDA: bf16 keeps about 3 significant digits, which
        would tie OOF probabilities that rank metrics and blending need to tell apart.
        """
        net.eval()
        rows = np.arange(len(images)) if rows is None else rows
        batches = np.split(rows, range(self.batch_size, len(rows), self.batch_size))
        outputs = [net(self.to_input(torch.from_numpy(images[batch]))).float().cpu() for batch in batches]
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
    torch.manual_seed(seed_for(settings.seed, fold))
    net = create_net(settings.model, data.n_classes, settings.size).to(device, memory_format=devices.memory_format(device))
    batches = Batches(net, device, settings.batch_size)
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = len(batch_indices(len(data.train_rows), settings.batch_size, torch.Generator()))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.lr, total_steps=settings.epochs * steps_per_epoch, pct_start=0.2
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
    all_targets = torch.from_numpy(data.targets)
    train_rows = torch.from_numpy(data.train_rows)
    for epoch in range(first_epoch, settings.epochs):
        started = time.perf_counter()
        epoch_seed = seed_for(settings.seed, fold, epoch)
        torch.manual_seed(epoch_seed)
        net.train()
        loss_sum = torch.zeros((), device=device)
        n_seen = 0
        for batch in batch_indices(len(train_rows), settings.batch_size, torch.Generator().manual_seed(epoch_seed)):
            rows = train_rows[batch]
            inputs = batches.to_input(torch.from_numpy(data.images[rows.numpy()]))
            targets = all_targets[rows].to(device, non_blocking=True)
            with devices.autocast(device):
                loss = F.cross_entropy(net(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum += loss.detach().float() * len(rows)
            n_seen += len(rows)

        valid_logits = batches.predict(net, data.images, data.valid_rows)
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
            epochs=settings.epochs,
            train_loss=train_loss,
            valid_loss=logloss(data.valid_targets, valid_probs),
            valid_score=metric.score(data.valid_targets, valid_probs),
            metric=metric.name,
            seconds=time.perf_counter() - started,
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
        store.save_torch(resume_path, state)
        if progress:
            progress(event)

    if valid_logits is None:
        valid_logits = batches.predict(net, data.images, data.valid_rows)
    return FoldOutput(
        valid_logits=valid_logits,
        test_logits=batches.predict(net, data.test_images),
        state_dict={name: tensor.cpu() for name, tensor in net.state_dict().items()},
        history=history,
        resumed_seconds=resumed_seconds,
    )
