"""Decisions tuned on OOF: per-class biases (single-label) and tag thresholds (multi-label),
for the metrics that score a decision rather than a probability (metrics.Metric.thresholded).

Single-label (f1_macro, qwk): a blend's probabilities can be well calibrated and still pick
the wrong label under macro F1 (rare classes deserve a lower bar) or QWK (ordinal
neighbours). The tuner adds a bias to each class's log-probability, found by coordinate
search on the OOF rows, and renormalises.

Multi-label (f1_samples, f2_samples, f1_macro): a tag is predicted when its probability is
above a threshold t, 0.5 untuned. The tuner moves t: one for every tag (what `ens blend`
always does for these metrics), or one per tag (--tune-thresholds), found by grid search
then coordinate search. A threshold is applied by moving each probability so that t lands on
0.5 (the odds divided by t's odds, a shift of -logit(t) on the logit): the metrics' fixed 0.5
decision (metrics.tag_decisions) and the submission's tags then decide at t.

Either is tuned on the blend's own out-of-fold probabilities (nested.py: each row blended
by a copy fit on the other folds), not on its in-sample ones, which flatter a blender that
learns. Wrapped around any blender, which is cloned, never fitted in place; nested.py scores
the pair out of fold like any fitted method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ensemble import metrics
from ensemble.blend import kinds
from ensemble.blend.base import Blender, clone
from ensemble.blend.nested import fit, out_of_fold_probabilities
from ensemble.errors import EnsError
from ensemble.registry import Registry

GRID = np.linspace(-2.0, 2.0, 41)  # log-space: each class's probability scaled by 0.14 .. 7.4
THRESHOLDS = np.round(np.arange(1, 50) * 0.02, 2)  # 0.02 .. 0.98
PASSES = 2


def apply_biases(probs: np.ndarray, biases: np.ndarray) -> np.ndarray:
    scaled = probs * np.exp(biases)
    return scaled / scaled.sum(axis=1, keepdims=True)


def tune_biases(probs: np.ndarray, targets: np.ndarray, metric: metrics.Metric) -> np.ndarray:
    """float64 (n_classes,) log-biases; each class in turn takes the grid value that scores
    best with the others fixed (ties keep the current value, then the smaller move)."""
    biases = np.zeros(probs.shape[1])
    best = metric.score(targets, probs)
    for _ in range(PASSES):
        for label in range(probs.shape[1]):
            for value in GRID[np.argsort(np.abs(GRID))]:
                trial = biases.copy()
                trial[label] = value
                score = metric.score(targets, apply_biases(probs, trial))
                if metric.better(score, best):
                    best, biases = score, trial
    return biases


def apply_thresholds(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """float64 (n_samples, n_tags): each tag's probability p moved to p(1-t) / (p(1-t) + (1-p)t),
    above 0.5 exactly when p is above its threshold t (thresholds: float (n_tags,), in (0, 1))."""
    probs = np.asarray(probs, dtype=np.float64)
    kept = probs * (1 - thresholds)
    return kept / (kept + (1 - probs) * thresholds)


def tune_thresholds(probs: np.ndarray, targets: np.ndarray, metric: metrics.Metric, per_tag: bool) -> np.ndarray:
    """float64 (n_tags,): the best of THRESHOLDS for every tag (ties: the nearest 0.5); with
    per_tag, each tag in turn then takes the value that scores best with the others fixed
    (ties keep the current value, then the nearer one), for up to PASSES passes."""
    n_tags = probs.shape[1]
    by_nearness = THRESHOLDS[np.argsort(np.abs(THRESHOLDS - 0.5), kind="stable")]
    best, chosen = None, 0.5
    for value in by_nearness:
        score = metric.score(targets, apply_thresholds(probs, np.full(n_tags, value)))
        if best is None or metric.better(score, best):
            best, chosen = score, value
    thresholds = np.full(n_tags, chosen)
    if not per_tag:
        return thresholds
    moved = apply_thresholds(probs, thresholds)  # a trial rewrites one column of it, not the whole
    for _ in range(PASSES):
        changed = False
        for tag in range(n_tags):
            kept = moved[:, tag].copy()
            for value in THRESHOLDS[np.argsort(np.abs(THRESHOLDS - thresholds[tag]), kind="stable")]:
                moved[:, tag] = apply_thresholds(probs[:, tag], value)
                score = metric.score(targets, moved)
                if metric.better(score, best):
                    best, kept, changed = score, moved[:, tag].copy(), True
                    thresholds[tag] = value
            moved[:, tag] = kept
        if not changed:
            break
    return thresholds


@dataclass(frozen=True)
class Decisions:
    """How a task kind's decisions move: tune(probs, targets, metric, per_column) -> float64
    (n_columns,); apply(probs, tuned) -> probs; record(tuned, classes, per_column) -> what the
    submission's JSON records under `key`."""

    tune: Callable[[np.ndarray, np.ndarray, metrics.Metric, bool], np.ndarray]
    apply: Callable[[np.ndarray, np.ndarray], np.ndarray]
    record: Callable[[np.ndarray, tuple, bool], object]
    key: str
    # One value for every column is a form of its own (one threshold for every tag): every
    # blend on a thresholded metric tunes it, and --tune-thresholds tunes one per column.
    # Without it, --tune-thresholds alone tunes one value per column.
    shared: bool


DECISIONS: Registry[Decisions] = Registry("task kind with decisions to tune")
# The tuners are looked up in this module when called, so that they may be replaced (tests do).
DECISIONS.register("single_label")(
    Decisions(
        tune=lambda probs, targets, metric, per_column: tune_biases(probs, targets, metric),
        apply=apply_biases,
        record=lambda tuned, classes, per_column: tuned.tolist(),
        key="tuned_biases",
        shared=False,
    )
)
DECISIONS.register("multi_label")(
    Decisions(
        tune=lambda *args: tune_thresholds(*args),
        apply=apply_thresholds,
        record=lambda tuned, classes, per_column: dict(zip(classes, tuned.tolist())) if per_column else float(tuned[0]),
        key="thresholds",
        shared=True,
    )
)


def tunable(task: str) -> list[str]:
    """The metrics of a task kind that score a decision."""
    return [name for name in metrics.for_task(task) if metrics.get(name).thresholded]


class ThresholdTuned(Blender):
    """blender: the (unfitted) blend whose decisions are tuned; metric: a thresholded metric of
    its task kind; per_column: multi-label, a threshold per tag (True) or one for every tag
    (False); single-label biases are always per class.

    Fitted: blender_, a clone of `blender` fit on every row; tuned_, float64 (n_columns,): the
    biases (single-label) or the thresholds (multi-label).
    """

    uses_folds = True

    def __init__(self, blender: Blender, metric: str = "f1_macro", per_column: bool = True):
        self.blender = blender
        self.metric = metric
        self.per_column = per_column

    @property
    def task(self) -> str:
        return self.blender.task

    @property
    def applies_per_fold_model(self) -> bool:
        return self.blender.applies_per_fold_model

    @property
    def biases_(self) -> np.ndarray:
        """The single-label name of tuned_."""
        return self.tuned_

    def recorded(self, classes: tuple[str, ...]) -> tuple[str, object]:
        """(the JSON key, its value): the biases as a list; one threshold, or {tag: threshold}."""
        decisions = DECISIONS.get(self.task)
        return decisions.key, decisions.record(self.tuned_, classes, self.per_column)

    def check_options(self) -> "ThresholdTuned":
        kind = kinds.get(self.task)
        if kind.name not in DECISIONS:
            raise EnsError(f"--tune-thresholds does not apply to {kind.noun}: no metric of it scores a decision")
        if self.metric not in tunable(kind.name):
            raise EnsError(f"--tune-thresholds works with the metrics {', '.join(tunable(kind.name))}, not {self.metric!r}")
        if not DECISIONS.get(kind.name).shared and not self.per_column:
            raise EnsError(f"{kind.noun} tunes one bias per class; per_column=False does not apply")
        self.blender.check_params()
        return self

    def fit(self, logits, targets, fold_of=None) -> "ThresholdTuned":
        """fold_of: int (n_samples,), the fold of each OOF row. With one fold there is nothing
        to hold out (the inner fit of a nested score with k=2): the decisions are tuned in sample."""
        self.check_params()
        if fold_of is None:
            raise EnsError("ThresholdTuned.fit needs fold_of, the fold of each OOF row, to tune out of fold")
        logits, targets, fold_of = self._check_logits(logits, targets), np.asarray(targets), np.asarray(fold_of)
        self.blender_ = fit(clone(self.blender), logits, targets, fold_of)
        self.weights_ = self.blender_.weights_
        self.optimised_ = getattr(self.blender_, "optimised_", None)
        if len(np.unique(fold_of)) > 1:
            probs = out_of_fold_probabilities(self.blender, logits, targets, fold_of)
        else:
            probs = self.blender_.predict_proba(logits)
        self.tuned_ = DECISIONS.get(self.task).tune(probs, targets, metrics.get(self.metric), self.per_column)
        return self

    def predict_proba(self, logits) -> np.ndarray:
        """Probabilities float64 (n_samples, n_classes), with the tuned decisions applied."""
        self._check_fitted()
        return DECISIONS.get(self.task).apply(self.blender_.predict_proba(logits), self.tuned_)
