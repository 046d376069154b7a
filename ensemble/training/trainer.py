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

import numpy as np
import torch
from torch import nn

from ensemble.config import TrainSettings
from ensemble.errors import EnsError
from ensemble.inference import tta
from ensemble.inference.batches import Batches
from ensemble.inference.scaling import SCALINGS
from ensemble.metrics import Metric
from ensemble.nets import devices, torch_files
from ensemble.nets.networks import create_net, load_weights, normalization, train_mode
from ensemble.stages import plan_stages, stage_of_epoch, total_epochs
from ensemble.tasks import SINGLE_LABEL, Task
from ensemble.training import losses
from ensemble.training.augment import Augment
from ensemble.training.draws import AUGMENT_STREAM, MIX_STREAM, batch_indices, seed_everything, seed_for
from ensemble.training.events import EpochEnd, Pace, Progress, StepEnd
from ensemble.training.losses import HELD_OUT_LOSS
from ensemble.training.optim import OPTIMIZERS, SCHEDULES, TRAINABLE, parameter_groups
from ensemble.training.recipe import CLASS_WEIGHTS, WeightsEma, mix_batch
from ensemble.training.student import Lesson, StudentRows, weighted_loss


@dataclass(frozen=True)
class FoldData:
    """One fold's view of the data; rows index into the shared arrays, which are never copied.

    images: uint8 (n_images, size, size, 3), every training image; targets: the task's
    (tasks.py): int64 (n_images,) class indices, 0/1 float32 (n_images, n_tags) or float64
    (n_images,) values; train_rows, valid_rows: int64 row indices; test_images: uint8
    (n_test, ...); n_classes: the network's outputs (1 for a regression).
    The image arrays may be cache.CachedImages: rows are read a batch at a time.
    lesson: what a teacher gives this fold; the held-out rows keep their true targets.
    """

    images: np.ndarray
    targets: np.ndarray
    train_rows: np.ndarray
    valid_rows: np.ndarray
    test_images: np.ndarray
    n_classes: int
    task: Task = SINGLE_LABEL
    lesson: Lesson | None = None  # a student fold's: soft targets, pseudo-labelled test images (student.py)

    @property
    def valid_targets(self) -> np.ndarray:
        return self.targets[self.valid_rows]


@dataclass(frozen=True)
class FoldOutput:
    """valid_logits: float32 (n_valid, n_classes); test_logits: float32 (n_test, n_classes);
    a regression's are values in the target's units, decoded and clipped (inference/scaling.py).

    resumed_seconds: time spent by earlier runs on the epochs this one resumed from.
    target_scale: the fold's scale record that decodes its outputs (None: none), for its checkpoint.
    """

    valid_logits: np.ndarray
    test_logits: np.ndarray
    state_dict: dict
    history: list[EpochEnd]
    resumed_seconds: float
    target_scale: dict | None = None


class FoldTrainer:
    """One fold's training state: the network, optimiser, schedule, scaler and EMA, built the
    same way whether the fold starts or resumes (the seeded draws happen in one order).

    `restore` puts a saved state back; `train_epoch` runs one epoch of steps; `validate`
    scores the held-out rows; `state` is what resume.pt keeps; `output` the fold's logits.
    What a task kind changes lives in `loss` (losses.py: the loss and its target scaling),
    `scale` (fitted on the fold's training rows alone), `loss_of` and `targets` (scaled).
    """

    def __init__(self, data: FoldData, settings: TrainSettings, fold: int, metric: Metric, saved: dict | None = None):
        settings = settings.resolved()
        self.data, self.settings, self.fold, self.metric = data, settings, fold, metric
        self.device = devices.resolve_device(settings.device)
        self.plan = plan_stages(settings)
        self.epochs = total_epochs(self.plan)
        torch.manual_seed(seed_for(settings.seed, fold))
        net = create_net(settings.model, data.n_classes, self.plan[-1].size, settings.attention, settings.attention_in_blocks)
        if settings.pretrained:
            load_weights(net, settings.model, self.plan[-1].size, settings.pretrained)
        # A resumed fold keeps the layout its saved weights were trained in (their strides).
        layout = devices.memory_format(self.device, saved["model"] if saved else None)
        self.net = net.to(self.device, memory_format=layout)
        self.batches = Batches(self.net, self.device, settings.batch_size, layout)
        self.optimizer = OPTIMIZERS.get(settings.optimizer)(parameter_groups(self.net, settings), settings)
        n_pseudo = len(data.lesson.test_rows) if data.lesson else 0
        self.steps_per_epoch = len(batch_indices(len(data.train_rows) + n_pseudo, settings.batch_size, torch.Generator()))
        # One schedule over every step of every stage; each stage scales it by its lr_scale.
        self.scheduler = SCHEDULES.get(settings.schedule)(self.optimizer, settings, self.epochs * self.steps_per_epoch)
        self.scaler = devices.grad_scaler(self.device)
        self.ema = WeightsEma(self.net, settings.ema) if settings.ema > 0 else None
        mean = normalization(self.net)[0].flatten().tolist()
        self.augment = Augment(settings.augment, settings.augment_fill, tuple(mean))
        self.loss = losses.for_task(settings.loss, data.task)
        train_targets = data.targets[data.train_rows]
        self.scale = SCALINGS.get(self.loss.scaling).fit(train_targets)  # never the held-out rows
        class_weights = CLASS_WEIGHTS.get(settings.class_weights)(train_targets, data.n_classes)
        self.lesson_sha256 = data.lesson.sha256() if data.lesson else None
        if data.lesson:  # a student: its rows' weighted targets, the weighted mean of their losses
            self.student = StudentRows(data.lesson, data.task, data.targets, data.n_classes, data.train_rows, self.scale)
            self.loss_of = weighted_loss(self.loss.build(settings.label_smoothing, class_weights, self.device, "none"))
            self.targets = torch.from_numpy(self.student.weighted_targets)
        else:
            self.student = None
            self.loss_of = self.loss.build(settings.label_smoothing, class_weights, self.device)
            self.targets = torch.from_numpy(self.scale.encode(data.targets))
        self.history: list[EpochEnd] = []
        self.first_epoch = 0
        self.valid_logits: np.ndarray | None = None  # the last validation's; None until an epoch ran here

    @property
    def train_rows(self) -> np.ndarray:
        """int64: the rows an epoch trains on (a student's pseudo-labelled test images among them)."""
        return self.student.rows if self.student else self.data.train_rows

    @property
    def evaluated(self) -> nn.Module:
        """With EMA on, the averaged weights are the ones scored, cached and saved; never the best epoch."""
        return self.ema.net if self.ema else self.net

    def restore(self, saved: dict) -> None:
        """Continue from resume.pt's state: the next epoch is the one after its last. A student
        fold goes on only with the lesson its saved epochs learnt (student.Lesson.sha256)."""
        if saved.get("lesson") != self.lesson_sha256:
            raise EnsError(f"fold {self.fold}: its teacher's targets differ from those its saved epochs learnt; train it again with --force")
        self.net.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        if saved["scaler"]:  # empty when the run began where no scaler was needed
            self.scaler.load_state_dict(saved["scaler"])
        if self.ema:
            self.ema.load_state_dict(saved["ema"])
        self.history = [EpochEnd(**event) for event in saved["history"]]
        self.first_epoch = saved["epoch"]

    def train_epoch(self, epoch: int, progress: Progress | None = None, pace: "Pace | None" = None) -> float:
        """One epoch (0-based over the whole plan) of steps; returns its mean training loss."""
        settings, data, device = self.settings, self.data, self.device
        pace = pace or Pace()
        stage_index = stage_of_epoch(self.plan, epoch)  # a resumed run restarts inside its stage
        stage = self.plan[stage_index]
        TRAINABLE.get(stage.trainable)(self.net, settings)
        epoch_seed = seed_for(settings.seed, self.fold, epoch)
        seed_everything(epoch_seed)
        # Own streams for augmentation and mixing, so turning one on leaves the others' draws alone.
        augment_generator = torch.Generator().manual_seed(seed_for(settings.seed, self.fold, epoch, AUGMENT_STREAM))
        mix_rng = np.random.default_rng(seed_for(settings.seed, self.fold, epoch, MIX_STREAM))
        train_mode(self.net)  # frozen BatchNorm layers stay in eval mode
        train_rows = torch.from_numpy(self.train_rows)
        loss_sum, n_seen, started = torch.zeros((), device=device), 0, time.perf_counter()
        epoch_batches = batch_indices(len(train_rows), settings.batch_size, torch.Generator().manual_seed(epoch_seed))
        for step, batch in enumerate(epoch_batches):
            rows = train_rows[batch]
            images = self.batches.to_device(torch.from_numpy(self.read_images(rows.numpy())))
            if self.augment:
                images = self.augment(images, augment_generator)
            inputs = self.batches.normalise(images, stage.size)
            targets = self.targets[rows].to(device, non_blocking=True)
            if settings.mixup > 0 or settings.cutmix > 0:
                inputs, targets = mix_batch(inputs, targets, data.n_classes, settings.mixup, settings.cutmix, mix_rng)
            loss = self.step(inputs, targets, stage.lr_scale)
            loss_sum += loss.detach().float() * len(rows)
            n_seen += len(rows)
            pace.steps += 1
            if progress and pace.throttle(step == len(epoch_batches) - 1):
                progress(StepEnd(
                    fold=self.fold, epoch=epoch + 1, epochs=self.epochs, stage=stage_index + 1, stages=len(self.plan),
                    size=stage.size, step=step + 1, steps=len(epoch_batches), loss=float(loss_sum) / n_seen,
                    images_per_second=n_seen / (time.perf_counter() - started),
                    seconds_left=pace.seconds_left((self.epochs - epoch) * len(epoch_batches) - step - 1),
                ))
        return float(loss_sum) / max(n_seen, 1)

    def read_images(self, rows: np.ndarray) -> np.ndarray:
        """uint8 (len(rows), size, size, 3): the training images of `rows`, a student's test images among them."""
        if self.student:
            return self.student.images(rows, self.data.images, self.data.test_images)
        return self.data.images[rows]

    def step(self, inputs: torch.Tensor, targets: torch.Tensor, lr_scale: float) -> torch.Tensor:
        """One optimiser step on a batch; returns its loss."""
        for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_last_lr()):
            group["lr"] = lr * lr_scale * group.get("lr_scale", 1.0)
        with devices.autocast(self.device):
            loss = self.loss_of(self.net(inputs), targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.settings.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.settings.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema:
            self.ema.update(self.net)
        return loss

    def validate(self, epoch: int, train_loss: float, started: float) -> EpochEnd:
        """Score the held-out rows after `epoch` on the identity view; refuses a diverged fold.
        started: when the epoch began (time.perf_counter)."""
        stage_index = stage_of_epoch(self.plan, epoch)
        stage = self.plan[stage_index]
        valid_logits = self.predict(self.data.images, self.data.valid_rows, stage.size)
        if not (np.isfinite(train_loss) and np.isfinite(valid_logits).all()):
            # Stop before the state is saved: a NaN fold must never be resumed or marked done.
            raise EnsError(f"fold {self.fold} diverged in epoch {epoch + 1} ({divergence(train_loss, valid_logits)}); lower --lr (now {self.settings.lr:g}) and train again with --force")
        task, valid_targets = self.data.task, self.data.valid_targets
        valid_outputs = task.outputs(valid_logits)
        event = EpochEnd(
            fold=self.fold, epoch=epoch + 1, epochs=self.epochs, train_loss=train_loss,
            valid_loss=HELD_OUT_LOSS[task.name](valid_targets, valid_outputs), valid_score=self.metric.score(valid_targets, valid_outputs),
            metric=self.metric.name, seconds=time.perf_counter() - started, stage=stage_index + 1, stages=len(self.plan), size=stage.size,
        )
        self.history.append(event)
        self.valid_logits = valid_logits
        return event

    def state(self, epoch: int) -> dict:
        """What resume.pt keeps after `epoch` (0-based) is done."""
        return {
            "epoch": epoch + 1,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "history": [dataclasses.asdict(item) for item in self.history],
            **({"lesson": self.lesson_sha256} if self.lesson_sha256 else {}),
        }

    def output(self, resumed_seconds: float) -> FoldOutput:
        """The fold's OOF and test logits under the experiment's TTA policy, and its weights."""
        # Epochs are validated on the identity view alone; the OOF logits kept get the test's policy.
        policy = tta.parse_policy(self.settings.tta, self.settings.tta_merge, self.data.task)
        size = self.plan[-1].size
        valid_logits = self.valid_logits  # None when a resumed fold had finished every epoch
        if valid_logits is None or policy.n_views > 1:
            valid_logits = self.predict(self.data.images, self.data.valid_rows, size, policy)
        return FoldOutput(
            valid_logits=valid_logits,
            test_logits=self.predict(self.data.test_images, None, size, policy),
            state_dict={name: tensor.cpu() for name, tensor in self.evaluated.state_dict().items()},
            history=self.history,
            resumed_seconds=resumed_seconds,
            target_scale=self.scale.record(),
        )

    def predict(self, images: np.ndarray, rows: np.ndarray | None, size: int, policy: tta.Policy = tta.NO_TTA) -> np.ndarray:
        """The evaluated net's logits (a regression's decoded values) under `policy`, float32 (n, n_classes)."""
        return self.batches.predict(self.evaluated, images, rows, size, policy, self.data.task, self.scale)


def train_fold(
    data: FoldData,
    settings: TrainSettings,
    fold: int,
    metric: Metric,
    resume_path: Path,
    progress: Progress | None = None,
) -> FoldOutput:
    """Train one fold, resuming from `resume_path` when a stopped run left it there, saving it
    after every epoch; the fold's logits and weights at the end."""
    saved = torch_files.load_resume(resume_path) if resume_path.is_file() else None
    trainer = FoldTrainer(data, settings, fold, metric, saved)
    if saved:
        trainer.restore(saved)
    resumed_seconds = sum(event.seconds for event in trainer.history)
    pace = Pace()
    for epoch in range(trainer.first_epoch, trainer.epochs):
        started = time.perf_counter()
        train_loss = trainer.train_epoch(epoch, progress, pace)
        event = trainer.validate(epoch, train_loss, started)
        torch_files.save_resume(resume_path, trainer.state(epoch))
        if progress:
            progress(event)
    return trainer.output(resumed_seconds)


def divergence(train_loss: float, valid_logits: np.ndarray) -> str:
    """Which number went non-finite. The epoch's mean loss can be finite while the held-out
    logits are not: the step after the last loss was summed broke the weights."""
    if not np.isfinite(train_loss):
        return f"train loss {train_loss}"
    rows = int((~np.isfinite(valid_logits)).any(axis=1).sum())
    value = valid_logits[~np.isfinite(valid_logits)].flat[0]
    return f"validation logits {value} in {rows} of {len(valid_logits)} held-out rows; the train loss was still {train_loss:.4g}"
