"""Per-class biases tuned on OOF, for metrics of the argmax label (F1, QWK).

A blend's probabilities can be well calibrated and still pick the wrong label under macro
F1 (rare classes deserve a lower bar) or QWK (ordinal neighbours). The tuner adds a bias to
each class's log-probability, found by coordinate search on the OOF rows, and renormalises.
The biases are tuned on the blend's own out-of-fold probabilities (nested.py: each row
blended by a copy fit on the other folds), not on its in-sample ones, which flatter a
blender that learns. Wrapped around any blender, which is cloned, never fitted in place;
nested.py scores the pair out of fold like any fitted method.
"""

from __future__ import annotations

import numpy as np

from ensemble import metrics
from ensemble.blend.base import Blender, clone
from ensemble.blend.nested import fit, out_of_fold_probabilities
from ensemble.errors import EnsError

TUNABLE = ("f1_macro", "qwk")
GRID = np.linspace(-2.0, 2.0, 41)  # log-space: each class's probability scaled by 0.14 .. 7.4
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


class ThresholdTuned(Blender):
    """blender: the (unfitted) blend whose probabilities are tuned; metric: f1_macro or qwk.

    Fitted: blender_, a clone of `blender` fit on every row; biases_, float64 (n_classes,).
    """

    uses_folds = True

    def __init__(self, blender: Blender, metric: str = "f1_macro"):
        self.blender = blender
        self.metric = metric

    @property
    def applies_per_fold_model(self) -> bool:
        return self.blender.applies_per_fold_model

    def check_params(self) -> "ThresholdTuned":
        if self.metric not in TUNABLE:
            raise EnsError(f"--tune-thresholds works with the metrics {', '.join(TUNABLE)}, not {self.metric!r}")
        self.blender.check_params()
        return self

    def fit(self, logits, targets, fold_of=None) -> "ThresholdTuned":
        """fold_of: int (n_samples,), the fold of each OOF row. With one fold there is nothing
        to hold out (the inner fit of a nested score with k=2): the biases are tuned in sample."""
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
        self.biases_ = tune_biases(probs, targets, metrics.get(self.metric))
        return self

    def predict_proba(self, logits) -> np.ndarray:
        """Probabilities float64 (n_samples, n_classes), with the tuned biases applied."""
        self._check_fitted()
        return apply_biases(self.blender_.predict_proba(logits), self.biases_)
