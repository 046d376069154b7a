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
from ensemble.training.features import trains_stages
from ensemble.training.preflight import resolve
from ensemble.workflows.auto.plan import Speed
from ensemble.workflows.auto.portfolio import Candidate

# Two warm-up steps pay for memory allocation, kernel choice and thread start-up once; then at
# least MIN_STEPS and up to MAX_STEPS steps are timed, stopping after TIMED_SECONDS.
WARM_STEPS, MIN_STEPS, MAX_STEPS, TIMED_SECONDS = 2, 3, 12, 1.0


@dataclass(frozen=True)
class Probed:
    """Progress event: a candidate's speed, or why it cannot train here (speed None)."""

    key: str
    speed: Speed | None
    seconds: float
    error: str = ""


def candidate_settings(base: TrainSettings, candidate: Candidate, epochs: int, augment: str = "none", tta: str = "none") -> TrainSettings:
    """The train settings of a candidate's experiment: ens.toml's [train], with what auto chooses put in."""
    settings = override(
        base, model=candidate.model, size=candidate.size, sizes="", epochs=epochs, seed=candidate.seed, attention=candidate.attention,
        pretrained=candidate.pretrained, frozen_features=candidate.frozen, top_blocks=candidate.top_blocks, augment=augment, tta=tta,
    )
    if candidate.frozen:  # a head (or top stages) on the plain images' features: no train-time views, mixing or weights' average
        settings = override(settings, augment="none", tta="none", mixup=0.0, cutmix=0.0, ema=0.0)
    return settings


# What auto sets in every experiment; the rest comes from ens.toml (train_experiment's `given`).
CHOSEN = frozenset({"model", "size", "sizes", "epochs", "seed", "attention", "pretrained", "frozen_features", "top_blocks", "augment", "tta"})


def probe_speed(workspace: Workspace, competition: Competition, candidate: Candidate, base: TrainSettings, overhead: float, progress: Progress | None = None) -> Speed:
    """Measured speed of one candidate. overhead: measured seconds every fold pays outside the
    trainer (reading and checking the competition)."""
    from ensemble.training.trainer import FoldData, FoldTrainer

    settings = resolve(workspace, candidate_settings(base, candidate, epochs=1), competition)
    train_images, test_images, read = competition_images(workspace.root, competition, settings.size, competition_keys(competition))
    if progress:
        progress(read)
    batch = settings.batch_size
    rows = np.resize(np.arange(len(competition.train_ids)), batch * (WARM_STEPS + MAX_STEPS))  # repeats rows of a small set
    valid_rows = np.resize(np.arange(len(competition.train_ids)), batch * 8)
    data = FoldData(train_images, competition.targets, rows, valid_rows, test_images, len(competition.classes), competition.task)
    started = time.perf_counter()
    trainer = FoldTrainer(data, settings, 0, metrics.get(competition.metric))
    setup = time.perf_counter() - started
    if settings.frozen_features:  # a fold builds no trainer: the head's own set-up (its network saved) is the fold's
        rate, head_setup, head_predict = head_pace(settings, competition, head_input_shape(trainer, train_images, test_images, settings))
        return Speed(
            rate, predict_rate(trainer, train_images, valid_rows, settings), head_setup + overhead, features_once=True,
            trained_stages=trains_stages(settings), head_predict_rows_per_second=head_predict,
        )
    # The schedule counts the steps of `rows`: the warm-up steps and the timed ones are parts of its one epoch.
    trainer.data = dataclasses.replace(data, train_rows=rows[: batch * WARM_STEPS])
    trainer.train_epoch(0)
    steps, started = 0, time.perf_counter()
    while steps < MIN_STEPS or (steps < MAX_STEPS and time.perf_counter() - started < TIMED_SECONDS):
        start = batch * (WARM_STEPS + steps)
        trainer.data = dataclasses.replace(data, train_rows=rows[start : start + batch])
        trainer.train_epoch(0)
        steps += 1
    train_rate = batch * steps / (time.perf_counter() - started)
    return Speed(train_rate, predict_rate(trainer, train_images, valid_rows, settings), setup + overhead)


def predict_rate(trainer, images, rows: np.ndarray, settings: TrainSettings) -> float:
    """Images a second the trainer's network predicts, after one warm-up batch."""
    batch = settings.batch_size
    trainer.predict(images, rows[:batch], settings.size)
    predicted, started = 0, time.perf_counter()
    while predicted < len(rows) - batch and (predicted == 0 or time.perf_counter() - started < TIMED_SECONDS):
        trainer.predict(images, rows[batch + predicted : 2 * batch + predicted], settings.size)
        predicted += batch
    return predicted / (time.perf_counter() - started)


def head_input_shape(trainer, images, test_images, settings: TrainSettings) -> tuple[int, ...]:
    """One image's features as a frozen-features fold trains on them: the classifier's width, or
    the frozen stages' maps (channels, height, width) when the folds train the top stages; those
    checked as the run checks them (the split against the whole network, the maps' memory)."""
    if not trains_stages(settings):
        return (trainer.net.get_classifier().in_features,)
    from ensemble.training.features import checked_split, torch_pixels

    inputs = trainer.batches.to_input(torch_pixels(images[:2]), settings.size)
    return checked_split(trainer.net, settings, inputs, len(images) + len(test_images))[1]


def head_pace(settings: TrainSettings, competition: Competition, shape: tuple[int, ...]) -> tuple[float, float, float]:
    """(rows a second a frozen-features fold trains on, seconds a fold spends outside its epochs,
    rows a second its top stages predict, 0 for a linear head's): a fold's head (or top stages)
    trained for HEAD_EPOCHS epochs on stand-in features of each image's `shape` (their values do
    not change the pace), its epochs timed by itself (EpochEnd.seconds)."""
    from ensemble.training.features import Features
    from ensemble.training.head import train_head_fold
    from ensemble.training.trainer import FoldData

    n = len(competition.train_ids)
    if len(shape) > 1:  # top stages: a few batches tell their pace (a whole fold's rows would take a fold's time)
        n = min(n, STAGES_ROWS)
    features = Features(np.random.default_rng(0).standard_normal((n, *shape), dtype=np.float32), np.zeros((1, *shape), dtype=np.float32))
    cut = max(2, n * 4 // 5)
    data = FoldData(features.train, competition.targets, np.arange(cut), np.arange(cut, n) if n > cut else np.arange(cut), features.test, len(competition.classes), competition.task)
    started = time.perf_counter()
    output = train_head_fold(data, features, dataclasses.replace(settings, epochs=HEAD_EPOCHS), 0, metrics.get(competition.metric))
    epochs = sum(event.seconds for event in output.history)
    outside = max(time.perf_counter() - started - epochs, 0.0)
    return cut * HEAD_EPOCHS / epochs, outside, stages_predict_rate(features, settings, len(competition.classes)) if len(shape) > 1 else 0.0


def stages_predict_rate(features, settings: TrainSettings, n_classes: int) -> float:
    """Rows a second the top stages predict (a fold's OOF and test logits), after a warm-up batch."""
    from ensemble.inference.scaling import UNSCALED
    from ensemble.training.head import TopStages

    model = TopStages(features, np.arange(len(features.train)), settings.resolved(), n_classes, 0)
    batch = settings.batch_size
    model.predict(model.inputs[:batch], UNSCALED, batch)
    started = time.perf_counter()
    model.predict(model.inputs, UNSCALED, batch)
    return len(model.inputs) / (time.perf_counter() - started)


HEAD_EPOCHS = 3  # the probe's epochs of a stand-in head: the first pays for warm-up, three average it out
STAGES_ROWS = 160  # the stand-in rows of top stages: 128 train, 4 batches of 32 an epoch


def probe_all(
    workspace: Workspace, competition: Competition, candidates: list[Candidate], base: TrainSettings, overhead: float,
    progress: Progress | None = None, seconds: float = float("inf"),
) -> dict[str, Speed]:
    """{speed_key: Speed} for every candidate that builds and steps here, in the order given,
    until the probes have used `seconds`; the others are left out, and a Probed event says why."""
    speeds: dict[str, Speed] = {}
    probing = time.perf_counter()
    for candidate in candidates:
        key = candidate.speed_key
        if key in speeds:
            continue
        if time.perf_counter() - probing > seconds:
            if progress:
                progress(Probed(key, None, 0.0, f"not probed: the probes used their share of the budget ({seconds:.0f}s)"))
            continue
        started = time.perf_counter()
        try:
            speeds[key] = probe_speed(workspace, competition, candidate, base, overhead, progress)
            event = Probed(key, speeds[key], time.perf_counter() - started)
        except (EnsError, RuntimeError, ValueError) as error:  # an unknown timm name, a size the net refuses, weights that do not fit
            event = Probed(key, None, time.perf_counter() - started, "it cannot train here: " + (str(error).splitlines()[0] if str(error) else type(error).__name__))
        if progress:
            progress(event)
    first = candidates[0].speed_key if candidates else None
    if first in speeds:  # the first probe of a process also paid torch's one-time start-up: measured again, the faster kept
        again = probe_speed(workspace, competition, candidates[0], base, overhead)
        earlier = speeds[first]
        speeds[first] = dataclasses.replace(
            earlier, train_images_per_second=max(earlier.train_images_per_second, again.train_images_per_second),
            predict_images_per_second=max(earlier.predict_images_per_second, again.predict_images_per_second),
            setup_seconds=min(earlier.setup_seconds, again.setup_seconds),
        )
        if progress:
            progress(Probed(first, speeds[first], 0.0, "measured again"))
    return speeds
