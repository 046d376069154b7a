"""What `ens auto` reports while it runs: plain frozen dataclasses the CLI draws, each choice with its reason."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ensemble.data.folds import FoldsResult
from ensemble.workflows.auto.look import Look
from ensemble.workflows.auto.plan import Plan


class Clock:
    """The budget: wall time from this invocation's start (image decoding, probes, TTA and blends included)."""

    def __init__(self, budget: float, started: float | None = None):
        self.budget = budget
        self.started = time.perf_counter() if started is None else started

    def used(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float:
        return self.budget - self.used()


@dataclass(frozen=True)
class Looked:
    look: Look
    folds: FoldsResult | None  # the folds made now; None when they existed
    k: int
    resumed: bool  # a record of an earlier run was found
    have_folds: bool = True  # False in a dry run without folds: they would be made


@dataclass(frozen=True)
class Planned:
    plan: Plan
    prefix: str
    seconds_left: float


@dataclass(frozen=True)
class Status:
    """Before each step: where the plan stands."""

    done: int
    running: str
    left: int
    seconds_left: float
    what: str  # the step, and why


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


@dataclass(frozen=True)
class ExperimentDone:
    name: str
    epochs: int
    augment: str
    seconds: float
    estimated: float
    oof_score: float | None
    metric: str


@dataclass(frozen=True)
class BlendScored:
    method: str
    oof_score: float | None  # out of fold; None when refused
    reason: str = ""
