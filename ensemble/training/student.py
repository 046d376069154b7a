"""What a student fold learns from a teacher (blend/teacher.py): soft targets for its training
rows (distillation), test images with pseudo-labels, and each row's weight in the loss.

The teacher's targets arrive in outputs space (probabilities, tags' probabilities, values),
as plain arrays made without the fold's held-out labels; this module turns them into the
fold's training rows. Row r < n_images is train image r; row n_images + i is the i-th
pseudo-labelled test image. The held-out rows are never among them: a student fold is
validated, and its OOF logits scored, on its true labels alone.

Each row's weight rides along as one more target column, so that mixup and cutmix mix it
with the same share as the targets (a train image mixed with a test image weighs between
the two), and the loss is the weighted mean of the rows' losses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ensemble.tasks import Task

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Lesson:
    """One fold's lesson. train_targets: float (n_images, n_columns) outputs-space targets of
    every train image (distillation), None: the true labels; test_rows: int64 (n_pseudo,) test
    images trained on; test_targets: float (n_pseudo, n_columns); test_weight: each test
    image's weight in the loss, a train image's being 1."""

    train_targets: np.ndarray | None = None
    test_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    test_targets: np.ndarray | None = None
    test_weight: float = 1.0

    def __post_init__(self):
        n_targets = 0 if self.test_targets is None else len(self.test_targets)
        if len(self.test_rows) != n_targets:
            raise ValueError(f"a lesson needs one target per test row: {len(self.test_rows)} rows, {n_targets} targets")

    def sha256(self) -> str:
        """What resume.pt records of the lesson: a resumed fold must go on learning the same one."""
        digest = hashlib.sha256()
        for array in (self.train_targets, self.test_rows, self.test_targets, np.float64(self.test_weight)):
            digest.update(b"-" if array is None else np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


@dataclass(frozen=True)
class Teaching:
    """A student experiment's teacher: record, what its settings.json keeps ({"pseudo": ..., "distill": ...});
    lessons: fold -> Lesson, for every fold this run may train; n_test: the competition's test images."""

    record: dict
    lessons: dict[int, Lesson]
    n_test: int

    def made(self) -> "LessonsMade":
        return LessonsMade(self.record, {fold: len(lesson.test_rows) for fold, lesson in self.lessons.items()}, self.n_test)


@dataclass(frozen=True)
class LessonsMade:
    """Progress: the teacher's lessons are ready. pseudo_rows: the test images each fold trains on."""

    record: dict
    pseudo_rows: dict[int, int]
    n_test: int


class StudentRows:
    """A fold's training rows when it has a lesson: train rows, then pseudo-labelled test images.

    rows: int64, every row trained on; weighted_targets: float32 (n_images + n_pseudo, n_columns + 1),
    the scaled targets with each row's weight last. A regression's teacher values are clipped to
    the fold's training range first (scale.bounded), as the fold's own outputs are."""

    def __init__(self, lesson: Lesson, task: Task, targets: np.ndarray, n_classes: int, train_rows: np.ndarray, scale):
        n_images = len(targets)
        train = task.as_outputs(targets, n_classes) if lesson.train_targets is None else lesson.train_targets
        test = np.zeros((0, train.shape[1])) if lesson.test_targets is None else lesson.test_targets
        encoded = np.asarray(scale.encode(scale.bounded(task.from_outputs(np.concatenate([train, test])))), dtype=np.float32)
        weights = np.concatenate([np.ones(n_images), np.full(len(test), lesson.test_weight)]).astype(np.float32)
        self.n_images = n_images
        self.test_rows = lesson.test_rows
        self.rows = np.concatenate([train_rows, n_images + np.arange(len(test))]).astype(np.int64)
        self.weighted_targets = np.concatenate([encoded.reshape(len(encoded), -1), weights[:, None]], axis=1)

    def images(self, rows: np.ndarray, images, test_images) -> np.ndarray:
        """uint8 (len(rows), size, size, 3): train images and test images, in the order of `rows`."""
        is_test = rows >= self.n_images
        if not is_test.any():
            return images[rows]
        pseudo = test_images[self.test_rows[rows[is_test] - self.n_images]]
        out = np.empty((len(rows), *pseudo.shape[1:]), dtype=pseudo.dtype)
        out[is_test] = pseudo
        out[~is_test] = images[rows[~is_test]]
        return out


def weighted_loss(row_loss):
    """(outputs, targets with each row's weight last) -> the weighted mean of the rows' losses;
    row_loss: a loss built with reduction "none" (losses.py), each row's (n,) or (n, n_columns)."""

    def loss(outputs: "torch.Tensor", weighted_targets: "torch.Tensor") -> "torch.Tensor":
        targets, weights = weighted_targets[:, :-1], weighted_targets[:, -1]
        per_row = row_loss(outputs, targets).reshape(len(outputs), -1).mean(dim=1)
        return (per_row * weights).sum() / weights.sum()

    return loss
