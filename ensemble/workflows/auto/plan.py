"""ens auto's plan: which candidates to train, in what order, with how many epochs, in the time left.

Pure and torch-free: it works on measured speeds (probe.py) and a budget in seconds, so it is
tested without training anything and gives the same plan for the same numbers. The rules:
- every fold of an experiment must fit: an experiment that cannot finish in the time left is
  not started (a fold is never half-counted, and an unfinished experiment is never blended);
- a reserve is kept for TTA, blending and the report;
- the base candidate goes first (its OOF decides which views keep labels), experiments already
  started next (finishing them is cheapest), then by expected value per second;
- at the default epochs while candidates fit; the first experiment of a run is given fewer epochs
  (down to the minimum) rather than none, a later one a few fewer (down to TRIM_FLOOR of the
  default, with a margin); time left over raises every new experiment's epochs (up to the
  maximum), but only STRETCH_SHARE of it: the probes' speeds are a few batches', and a plan
  that fills every second loses a whole experiment when its last fold runs a few seconds over
  (measured on the digits at 3 minutes: 19 epochs planned at 140 s, 4 folds took 119 s, the
  fifth no longer fitted and the experiment was thrown away).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ensemble.workflows.auto.portfolio import Candidate


@dataclass(frozen=True)
class Speed:
    """What the probe measured for a candidate: images per second training and predicting, and
    the fixed seconds of a fold (building the net, reading the cache, writing the fold).

    features_once: a frozen-features candidate (training/features.py): the backbone runs once
    over every training and test image (at the predict rate), and each fold trains only a
    head (at the train rate, in rows a second)."""

    train_images_per_second: float
    predict_images_per_second: float
    setup_seconds: float
    features_once: bool = False
    trained_stages: bool = False  # features_once, and each fold trains the top stages: the folds' backbones differ
    head_predict_rows_per_second: float = 0.0  # the top stages' pace predicting a fold's OOF and test logits (0: a linear head's, free)


@dataclass(frozen=True)
class Shape:
    n_train: int
    n_test: int
    k: int


@dataclass(frozen=True)
class Epochs:
    default: int = 10
    low: int = 3
    high: int = 30


def scaled_speed(speed: Speed, scale: float) -> Speed:
    """`speed` as the folds measured so far say it is: every time estimate multiplied by `scale`."""
    return dataclasses.replace(
        speed, train_images_per_second=speed.train_images_per_second / scale,
        predict_images_per_second=speed.predict_images_per_second / scale, setup_seconds=speed.setup_seconds * scale,
        head_predict_rows_per_second=speed.head_predict_rows_per_second / scale,
    )


def epoch_seconds(speed: Speed, shape: Shape) -> float:
    """One fold's epoch: training on the other folds, then scoring the held-out one (a head's
    scoring is on features it has: nothing to predict)."""
    n_valid = shape.n_train / shape.k
    scoring = 0.0 if speed.features_once else n_valid / speed.predict_images_per_second
    return (shape.n_train - n_valid) / speed.train_images_per_second + scoring


def fold_seconds(speed: Speed, shape: Shape, epochs: int) -> float:
    """A fold: its setup, its epochs, and its final OOF and test logits (a linear head's, from its
    features, free; top stages' test logits at their own pace, their OOF being the last epoch's)."""
    n_valid = shape.n_train / shape.k
    if speed.features_once:
        rate = speed.head_predict_rows_per_second
        predicting = shape.n_test / rate if rate else 0.0
    else:
        predicting = (n_valid + shape.n_test) / speed.predict_images_per_second
    return speed.setup_seconds + epochs * epoch_seconds(speed, shape) + predicting


def features_seconds(speed: Speed, shape: Shape) -> float:
    """A frozen-features experiment's one pass of the backbone over every image; 0 for the others."""
    return (shape.n_train + shape.n_test) / speed.predict_images_per_second if speed.features_once else 0.0


def tta_seconds(speed: Speed, shape: Shape, n_views: int) -> float:
    """A TTA member's predictions (`ens predict --tta`): each fold model predicts its held-out rows
    and every test image under each view. A frozen-features member's folds share one backbone
    (unless they trained its top stages): each view of every image passes through it once
    (inference/frozen_views.py)."""
    test_passes = 1 if speed.features_once and not speed.trained_stages else shape.k
    return (shape.n_train + test_passes * shape.n_test) * n_views / speed.predict_images_per_second


def experiment_seconds(speed: Speed, shape: Shape, epochs: int, folds: int | None = None, features_made: bool = False) -> float:
    """`folds` folds (default: every one) of an experiment, and its features when it has them, folds
    left to train and no features an earlier run made (features_made)."""
    count = shape.k if folds is None else folds
    return count * fold_seconds(speed, shape, epochs) + (features_seconds(speed, shape) if count and not features_made else 0.0)


@dataclass(frozen=True)
class Started:
    """An experiment an earlier run began: its epochs are fixed, `folds_left` remain."""

    epochs: int
    folds_left: int
    features_made: bool = False  # a frozen-features experiment whose features the earlier run computed


@dataclass(frozen=True)
class Planned:
    candidate: Candidate
    epochs: int
    seconds: float  # estimated, for the folds still to train
    reason: str


@dataclass(frozen=True)
class Plan:
    """experiments: in the order to train; dropped: (candidate name, why) of those left out."""

    experiments: tuple[Planned, ...]
    dropped: tuple[tuple[str, str], ...]
    seconds_left: float
    reserve_seconds: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def estimated_seconds(self) -> float:
        return sum(planned.seconds for planned in self.experiments)


def order(candidates: list[Candidate], speeds: dict[str, Speed], shape: Shape, epochs: Epochs, started: dict[str, Started]) -> list[Candidate]:
    """The base (first) candidate, then started ones, then by expected value per second; ties by name."""

    def key(pair):
        index, candidate = pair
        per_second = candidate.value / experiment_seconds(speeds[candidate.speed_key], shape, epochs.default)
        return (index != 0, candidate.name not in started, -per_second, candidate.name)

    return [candidate for _, candidate in sorted(enumerate(candidates), key=key)]


def epochs_fitting(speed: Speed, shape: Shape, seconds: float, folds: int | None = None) -> int:
    """The most epochs whose folds fit in `seconds` (may be 0 or less)."""
    count = shape.k if folds is None else folds
    fixed = experiment_seconds(speed, shape, 0, count)
    return math.floor((seconds - fixed) / (count * epoch_seconds(speed, shape)))


def plan_portfolio(
    candidates: list[Candidate],
    speeds: dict[str, Speed],
    shape: Shape,
    seconds_left: float,
    reserve_seconds: float,
    epochs: Epochs = Epochs(),
    started: dict[str, Started] | None = None,
    scale: float = 1.0,
) -> Plan:
    """The plan for `seconds_left` of wall time. scale: measured over estimated seconds of the
    folds trained so far (1.0 before any), applied to every estimate."""
    started = started or {}
    scaled = {key: scaled_speed(speed, scale) for key, speed in speeds.items()}
    usable = seconds_left - reserve_seconds
    taken: list[Planned] = []
    dropped: list[tuple[str, str]] = []
    ordered = order(candidates, scaled, shape, epochs, started)
    for index, candidate in enumerate(ordered):
        speed = scaled[candidate.speed_key]
        if candidate.name in started:
            begun = started[candidate.name]
            cost = experiment_seconds(speed, shape, begun.epochs, begun.folds_left, begun.features_made)
            if begun.folds_left == 0 or cost <= usable:
                taken.append(Planned(candidate, begun.epochs, cost, f"started earlier with {begun.epochs} epochs; {begun.folds_left} of {shape.k} folds left"))
                usable -= cost
            else:
                dropped.append((candidate.name, f"its {begun.folds_left} folds left need {cost:.0f}s, {max(usable, 0):.0f}s left"))
            continue
        fewer = None if started or taken else room_for_better(candidate, ordered[index + 1 :], scaled, shape, usable, epochs)
        if fewer:
            cost = experiment_seconds(speed, shape, fewer[0])
            taken.append(Planned(candidate, fewer[0], cost, fewer[1]))
            usable -= cost
            continue
        cost = experiment_seconds(speed, shape, epochs.default)
        if cost <= usable:
            taken.append(Planned(candidate, epochs.default, cost, candidate.why))
            usable -= cost
            continue
        fitting = epochs_fitting(speed, shape, usable)
        # The very first experiment, down to the minimum; squeezed in after others, a few epochs at
        # the end of the budget were measured to be thrown away (emoji at 5m: resnet10t-48 at 3
        # epochs, skipped before its last fold, 42 s lost).
        if not started and not taken and fitting >= epochs.low:
            cost = experiment_seconds(speed, shape, fitting)
            taken.append(Planned(candidate, fitting, cost, f"{candidate.why}; {fitting} epochs, as many as the budget fits"))
            usable -= cost
            continue
        # A later one gives up a few epochs, with a margin, rather than its place (Fashion-MNIST at
        # 10m: convnext_atto needed 166 s at 10 epochs where 160 s were left, and 3 minutes went unused).
        # The margin stays out of the plan: neither later candidates nor stretch() may spend it, or
        # the re-plan before it starts finds less time and trims it further, or drops it.
        later = bool(taken or started)
        floor = max(epochs.low, math.ceil(TRIM_FLOOR * epochs.default)) if later else epochs.low
        trimmed = epochs_fitting(speed, shape, usable * TRIM_MARGIN)
        if later and trimmed >= floor:
            cost = experiment_seconds(speed, shape, trimmed)
            taken.append(Planned(candidate, trimmed, cost, f"{candidate.why}; {trimmed} epochs, as many as fit with a margin"))
            usable -= cost + usable * (1 - TRIM_MARGIN)
            continue
        least = experiment_seconds(speed, shape, floor) / (TRIM_MARGIN if later else 1.0)
        dropped.append((candidate.name, f"needs {cost:.0f}s at {epochs.default} epochs ({least:.0f}s at {floor}{' with a margin' if later else ''}), {max(usable, 0):.0f}s left"))
    taken = stretch(taken, scaled, shape, usable, epochs, started)
    notes = () if taken else (f"nothing fits: the cheapest candidate needs more than the {max(seconds_left - reserve_seconds, 0):.0f}s left after the reserve",)
    return Plan(tuple(taken), tuple(dropped), seconds_left, reserve_seconds, notes)


# A later experiment may be trimmed to TRIM_FLOOR of the default epochs, planned in TRIM_MARGIN of
# the time left, so that a few percent of overrun does not throw it away at its last fold.
TRIM_FLOOR = 0.6
TRIM_MARGIN = 0.85


# The room left for the better candidate, over its estimate, and the overrun of the base it is kept
# against: the base runs over its estimate by a few percent (emoji at 5m: 193 s for 182 s, and the
# views check 9 s for 4 s, so that room for 46 s left 40 s and the frozen candidate was dropped).
ROOM_MARGIN = 1.15
BASE_OVERRUN = 0.1


def room_for_better(base: Candidate, later: list[Candidate], speeds: dict[str, Speed], shape: Shape, usable: float, epochs: Epochs) -> tuple[int, str] | None:
    """(epochs, reason) for the first experiment of a fresh plan when, at the default epochs, it
    would leave no room for the next candidate worth more a second than itself (a frozen-features
    candidate: measured on the emoji competition at 5 minutes, the 64 px base took 206 s and left
    28 s, where ImageNet features scoring as well as it needed 40 s); None when there is room,
    or making room would take it below the minimum epochs."""

    def per_second(candidate: Candidate) -> float:
        return candidate.value / experiment_seconds(speeds[candidate.speed_key], shape, epochs.default)

    better = next((candidate for candidate in later if per_second(candidate) > per_second(base)), None)
    if better is None:
        return None
    needed = experiment_seconds(speeds[better.speed_key], shape, epochs.default) * ROOM_MARGIN
    if experiment_seconds(speeds[base.speed_key], shape, epochs.default) + needed <= usable or needed >= usable:
        return None
    fitting = min(epochs.default, epochs_fitting(speeds[base.speed_key], shape, (usable - needed) / (1 + BASE_OVERRUN)))
    if fitting < epochs.low:
        return None
    return fitting, f"{base.why}; {fitting} epochs, leaving room for {better.name} (worth more a second)"


# The share of the time left over that stretch() turns into epochs; the rest absorbs estimates that run short.
STRETCH_SHARE = 0.6


def stretch(taken: list[Planned], speeds: dict[str, Speed], shape: Shape, spare: float, epochs: Epochs, started: dict[str, Started]) -> list[Planned]:
    """Spend the time left over on more epochs for every new experiment, by one factor, up to the maximum."""
    # Squeezed experiments keep their epochs: the room they left (room_for_better) is the point.
    new = [planned for planned in taken if planned.candidate.name not in started and planned.epochs >= epochs.default]
    per_epoch = sum(shape.k * epoch_seconds(speeds[planned.candidate.speed_key], shape) * planned.epochs for planned in new)
    if spare <= 0 or per_epoch == 0:
        return taken
    factor = 1 + STRETCH_SHARE * spare / per_epoch
    stretched = []
    for planned in taken:
        if planned not in new:
            stretched.append(planned)
            continue
        count = min(epochs.high, max(planned.epochs, math.floor(planned.epochs * factor)))
        if count == planned.epochs:
            stretched.append(planned)
            continue
        seconds = experiment_seconds(speeds[planned.candidate.speed_key], shape, count)
        stretched.append(Planned(planned.candidate, count, seconds, f"{planned.reason}; {count} epochs: the budget has room"))
    return stretched
