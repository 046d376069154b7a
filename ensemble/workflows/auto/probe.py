"""ens auto's probe: how fast each candidate trains and predicts on this device, measured.

A few training steps and a few prediction batches of the candidate's own network, on the
competition's own images at its size, through the same trainer that trains the folds: a
throw-away fold whose weights are never written. Nothing is guessed from model names. The
first step (and the first prediction) is a warm-up left out of the rate: it pays for memory
allocation and kernel choice once.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from ensemble import metrics
from ensemble.config import TrainSettings, Workspace, override
from ensemble.data.cache import competition_images
from ensemble.data.competition import Competition
from ensemble.data.content import competition_keys
from ensemble.errors import EnsError
from ensemble.training.events import Progress
from ensemble.training.preflight import resolve
from ensemble.workflows.auto.plan import Speed
from ensemble.workflows.auto.portfolio import Candidate

TIMED_STEPS = 3  # training steps timed after the warm-up one


@dataclass(frozen=True)
class Probed:
    """Progress event: a candidate's speed, or why it cannot train here (speed None)."""

    key: str
    speed: Speed | None
    seconds: float
    error: str = ""


def candidate_settings(base: TrainSettings, candidate: Candidate, epochs: int, augment: str = "none", tta: str = "none") -> TrainSettings:
    """The train settings of a candidate's experiment: ens.toml's [train], with what auto chooses put in."""
    return override(
        base, model=candidate.model, size=candidate.size, sizes="", epochs=epochs, seed=candidate.seed,
        attention=candidate.attention, pretrained=candidate.pretrained, augment=augment, tta=tta,
    )


# What auto sets in every experiment; the rest comes from ens.toml (train_experiment's `given`).
CHOSEN = frozenset({"model", "size", "sizes", "epochs", "seed", "attention", "pretrained", "augment", "tta"})


def probe_speed(workspace: Workspace, competition: Competition, candidate: Candidate, base: TrainSettings, overhead: float, progress: Progress | None = None) -> Speed:
    """Measured speed of one candidate. overhead: measured seconds every fold pays outside the
    trainer (reading and checking the competition)."""
    from ensemble.training.trainer import FoldData, FoldTrainer

    settings = resolve(workspace, candidate_settings(base, candidate, epochs=1), competition)
    train_images, test_images, read = competition_images(workspace.root, competition, settings.size, competition_keys(competition))
    if progress:
        progress(read)
    batch = settings.batch_size
    rows = np.resize(np.arange(len(competition.train_ids)), batch * (1 + TIMED_STEPS))  # repeats rows of a small set
    valid_rows = np.resize(np.arange(len(competition.train_ids)), batch * 4)
    data = FoldData(train_images, competition.targets, rows, valid_rows, test_images, len(competition.classes), competition.task)
    started = time.perf_counter()
    trainer = FoldTrainer(data, settings, 0, metrics.get(competition.metric))
    setup = time.perf_counter() - started
    # The schedule counts the steps of `rows`: the warm-up step and the timed ones are its one epoch, in two parts.
    trainer.data = dataclasses.replace(data, train_rows=rows[:batch])
    trainer.train_epoch(0)
    trainer.data = dataclasses.replace(data, train_rows=rows[batch:])
    started = time.perf_counter()
    trainer.train_epoch(0)
    train_rate = batch * TIMED_STEPS / (time.perf_counter() - started)
    trainer.predict(train_images, valid_rows[:batch], settings.size)
    started = time.perf_counter()
    trainer.predict(train_images, valid_rows[batch:], settings.size)
    predict_rate = len(valid_rows[batch:]) / (time.perf_counter() - started)
    return Speed(train_rate, predict_rate, setup + overhead)


def probe_all(workspace: Workspace, competition: Competition, candidates: list[Candidate], base: TrainSettings, overhead: float, progress: Progress | None = None) -> dict[str, Speed]:
    """{speed_key: Speed} for every candidate that builds and steps here; the others are left
    out, and a Probed event says why."""
    speeds: dict[str, Speed] = {}
    for candidate in candidates:
        key = candidate.speed_key
        if key in speeds:
            continue
        started = time.perf_counter()
        try:
            speeds[key] = probe_speed(workspace, competition, candidate, base, overhead, progress)
            event = Probed(key, speeds[key], time.perf_counter() - started)
        except (EnsError, RuntimeError, ValueError) as error:  # an unknown timm name, a size the net refuses, weights that do not fit
            event = Probed(key, None, time.perf_counter() - started, str(error).splitlines()[0] if str(error) else type(error).__name__)
        if progress:
            progress(event)
    return speeds
