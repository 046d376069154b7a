"""What a fold's training reports while it runs, and the pace its step events keep.

Events are plain frozen dataclasses: they cross process boundaries (--jobs) and reach the
CLI's progress display, which is the only place that draws them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

Progress = Callable[[object], None]


@dataclass(frozen=True)
class EpochEnd:
    """Progress event sent after each epoch.

    train_loss: the mean of the loss trained on (training/losses.py), in its own units (a
    regression's scaled targets), regularisers included. valid_loss: the held-out rows' loss
    in the space of the cached logits, the same whatever loss trained them, so experiments
    compare on it: log-loss of the probabilities (the mean binary one over tags), or the mean
    squared error of a regression's decoded values in the target's units.
    """

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


class Pace:
    """Step events at most every `interval` seconds (and always an epoch's last), with the
    time left at this run's pace so far."""

    def __init__(self, interval: float = 0.5):
        self.interval, self.last = interval, -float("inf")
        self.started, self.steps = time.perf_counter(), 0

    def throttle(self, last_step: bool) -> bool:
        now = time.perf_counter()
        if last_step or now - self.last >= self.interval:
            self.last = now
            return True
        return False

    def seconds_left(self, steps_left: int) -> float:
        return (time.perf_counter() - self.started) / self.steps * steps_left
