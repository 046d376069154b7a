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
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ensemble import devices, torch_files, tta
from ensemble.config import TrainSettings
from ensemble.errors import EnsError
from ensemble.metrics import Metric, logloss, softmax
from ensemble.nets import create_net, load_weights, normalization, train_mode
from ensemble.augment import Augment
from ensemble.recipe import CLASS_WEIGHTS, WeightsEma, loss_function, mix_batch
from ensemble.stages import OPTIMIZERS, SCHEDULES, TRAINABLE, parameter_groups, plan_stages, stage_of_epoch, total_epochs


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
    stage: int = 1  # 1-based; events saved before stages existed had one
    stages: int = 1
    size: int = 0  # the stage's image size; 0 in events saved before stages existed


@dataclass(frozen=True)
class StepEnd:
    """Progress event sent after a training step, at most a few times a second."""

    fold: int
    epoch: int  # 1-based, over every stage
    epochs: int
    stage: int  # 1-based
    stages: int
    size: int
    step: int  # 1-based, within the epoch
    steps: int
    loss: float  # mean training loss of the epoch so far
    images_per_second: float
    seconds_left: float  # this fold's, at this run's pace so far


# Stream numbers for seed_for(seed, fold, epoch, stream): each random consumer its own.
AUGMENT_STREAM, MIX_STREAM = 1, 2


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

    def __init__(self, net: nn.Module, device: torch.device, batch_size: int, memory_format: torch.memory_format = torch.channels_last):
        mean, std = normalization(net)
        self.device = device
        self.batch_size = batch_size
        self.scale = (1.0 / (255.0 * std)).to(device)
        self.shift = (mean / std).to(device)
        self.memory_format = memory_format
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

    def predict(
        self,
        net: nn.Module,
        images: np.ndarray,
        rows: np.ndarray | None = None,
        size: int | None = None,
        policy: tta.Policy = tta.NO_TTA,
    ) -> np.ndarray:
        """Logits float32 (n, n_classes) for uint8 images (n_images, h, w, 3), or their `rows`,
        at `size`, merged over the TTA policy's views (see tta.predict).

        In eval mode and float32 even on CUDA: bf16 keeps about 3 significant digits, which
        would tie OOF probabilities that rank metrics and blending need to tell apart.
        """
        return tta.predict(net, self, images, rows, policy, size).logits


def batch_indices(n_rows: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A shuffled epoch in batches; a last batch of one row is dropped (BatchNorm cannot train on it)."""
    batches = list(torch.randperm(n_rows, generator=generator).split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


def seed_everything(seed: int) -> None:
    """Every global random source (torch: dropout, drop-path; numpy; Python) from one seed."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class Throttle:
    """Lets a step event through at most every `interval` seconds, and always the epoch's last."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.last = -float("inf")

    def __call__(self, last_step: bool) -> bool:
        now = time.perf_counter()
        if last_step or now - self.last >= self.interval:
            self.last = now
            return True
        return False


def train_fold(
    data: FoldData,
    settings: TrainSettings,
    fold: int,
    metric: Metric,
    resume_path: Path,
    progress: Progress | None = None,
) -> FoldOutput:
    settings = settings.resolved()
    device = devices.resolve_device(settings.device)
    plan = plan_stages(settings)
    epochs = total_epochs(plan)
    torch.manual_seed(seed_for(settings.seed, fold))
    net = create_net(settings.model, data.n_classes, plan[-1].size, settings.attention, settings.attention_in_blocks)
    if settings.pretrained:
        load_weights(net, settings.model, plan[-1].size, settings.pretrained)
    state = torch.load(resume_path, map_location=device, weights_only=True) if resume_path.is_file() else None
    layout = devices.memory_format(device, state["model"] if state else None)
    net = net.to(device, memory_format=layout)
    batches = Batches(net, device, settings.batch_size, layout)
    optimizer = OPTIMIZERS.get(settings.optimizer)(parameter_groups(net, settings), settings)
    steps_per_epoch = len(batch_indices(len(data.train_rows), settings.batch_size, torch.Generator()))
    # One schedule over every step of every stage; each stage scales it by its lr_scale.
    scheduler = SCHEDULES.get(settings.schedule)(optimizer, settings, epochs * steps_per_epoch)
    scaler = devices.grad_scaler(device)
    ema = WeightsEma(net, settings.ema) if settings.ema > 0 else None
    augment = Augment(settings.augment)
    class_weights = CLASS_WEIGHTS.get(settings.class_weights)(data.targets[data.train_rows], data.n_classes)
    loss_of = loss_function(settings.label_smoothing, class_weights, device)
    mixing = settings.mixup > 0 or settings.cutmix > 0
    history: list[EpochEnd] = []
    first_epoch = 0
    if state:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:  # empty when the run began where no scaler was needed
            scaler.load_state_dict(state["scaler"])
        if ema:
            ema.load_state_dict(state["ema"])
        history = [EpochEnd(**event) for event in state["history"]]
        first_epoch = state["epoch"]
    resumed_seconds = sum(event.seconds for event in history)
    # With EMA on, the averaged weights are the ones scored, cached and saved; never the best epoch.
    evaluated = ema.net if ema else net

    valid_logits = None  # stays None when a resumed fold had already finished every epoch
    all_targets = torch.from_numpy(data.targets)
    train_rows = torch.from_numpy(data.train_rows)
    throttle = Throttle()
    run_started, run_steps = time.perf_counter(), 0
    for epoch in range(first_epoch, epochs):
        started = time.perf_counter()
        stage_index = stage_of_epoch(plan, epoch)  # a resumed run restarts inside its stage
        stage = plan[stage_index]
        TRAINABLE.get(stage.trainable)(net, settings)
        epoch_seed = seed_for(settings.seed, fold, epoch)
        seed_everything(epoch_seed)
        # Own streams for augmentation and mixing, so turning one on leaves the others' draws alone.
        augment_generator = torch.Generator().manual_seed(seed_for(settings.seed, fold, epoch, AUGMENT_STREAM))
        mix_rng = np.random.default_rng(seed_for(settings.seed, fold, epoch, MIX_STREAM))
        train_mode(net)  # frozen BatchNorm layers stay in eval mode
        loss_sum = torch.zeros((), device=device)
        n_seen = 0
        epoch_batches = batch_indices(len(train_rows), settings.batch_size, torch.Generator().manual_seed(epoch_seed))
        for step, batch in enumerate(epoch_batches):
            rows = train_rows[batch]
            images = batches.to_device(torch.from_numpy(data.images[rows.numpy()]))
            if augment:
                images = augment(images, augment_generator)
            inputs = batches.normalise(images, stage.size)
            targets = all_targets[rows].to(device, non_blocking=True)
            if mixing:
                inputs, targets = mix_batch(inputs, targets, data.n_classes, settings.mixup, settings.cutmix, mix_rng)
            for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr()):
                group["lr"] = lr * stage.lr_scale * group.get("lr_scale", 1.0)
            with devices.autocast(device):
                loss = loss_of(net(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if settings.clip_grad > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(net.parameters(), settings.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if ema:
                ema.update(net)
            loss_sum += loss.detach().float() * len(rows)
            n_seen += len(rows)
            run_steps += 1
            if progress and throttle(step == len(epoch_batches) - 1):
                elapsed = time.perf_counter() - run_started
                steps_left = (epochs - epoch) * len(epoch_batches) - step - 1
                progress(StepEnd(
                    fold=fold, epoch=epoch + 1, epochs=epochs, stage=stage_index + 1, stages=len(plan),
                    size=stage.size, step=step + 1, steps=len(epoch_batches), loss=float(loss_sum) / n_seen,
                    images_per_second=n_seen / (time.perf_counter() - started),
                    seconds_left=elapsed / run_steps * steps_left,
                ))

        valid_logits = batches.predict(evaluated, data.images, data.valid_rows, stage.size)
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
            "ema": ema.state_dict() if ema else None,
            "history": [dataclasses.asdict(item) for item in history],
        }
        torch_files.save_torch(resume_path, state)
        if progress:
            progress(event)

    # Epochs are validated on the identity view alone; the OOF logits kept get the test's policy.
    policy = tta.parse_policy(settings.tta, settings.tta_merge)
    if valid_logits is None or policy.n_views > 1:
        valid_logits = batches.predict(evaluated, data.images, data.valid_rows, plan[-1].size, policy)
    return FoldOutput(
        valid_logits=valid_logits,
        test_logits=batches.predict(evaluated, data.test_images, size=plan[-1].size, policy=policy),
        state_dict={name: tensor.cpu() for name, tensor in evaluated.state_dict().items()},
        history=history,
        resumed_seconds=resumed_seconds,
    )
