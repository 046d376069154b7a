"""Metric registry: each metric scores class probabilities against integer targets.

Pure numpy, so blending and the leaderboard start without scikit-learn or torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ensemble.registry import Registry


@dataclass(frozen=True)
class Metric:
    """score(targets: int (n_samples,), probs: float (n_samples, n_classes)) -> float.

    of_labels(targets, predicted: int (n_samples,), n_classes) -> float, for the metrics that
    only look at the argmax label (None for the others): hill climbing uses it to skip rows
    whose label no candidate can change."""

    name: str
    score: Callable[[np.ndarray, np.ndarray], float]
    greater_is_better: bool
    of_labels: Callable[[np.ndarray, np.ndarray, int], float] | None = None

    def better(self, a: float, b: float) -> bool:
        """True when score `a` beats score `b`."""
        return a > b if self.greater_is_better else a < b


METRICS: Registry[Metric] = Registry("metric")


def register(name: str, greater_is_better: bool):
    def add(score):
        METRICS.register(name)(Metric(name, score, greater_is_better))
        return score

    return add


def register_labels(name: str, greater_is_better: bool):
    """Register a metric of the argmax label: score(targets, probs) = of_labels(targets, argmax(probs), n_classes)."""

    def add(of_labels):
        def score(targets: np.ndarray, probs: np.ndarray) -> float:
            return of_labels(targets, np.argmax(probs, axis=1), probs.shape[1])

        score.__name__ = of_labels.__name__
        METRICS.register(name)(Metric(name, score, greater_is_better, of_labels))
        return score

    return add


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis; float64 so that logloss sees no rounding to 0 or 1."""
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis, float64, stable for any finite logits."""
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@register_labels("accuracy", greater_is_better=True)
def accuracy(targets: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    return float(np.mean(predicted == targets))


@register("logloss", greater_is_better=False)
def logloss(targets: np.ndarray, probs: np.ndarray) -> float:
    # Rows are renormalised and clipped as Kaggle's scorer does, so a blend's rounding
    # or a zero probability costs a large but finite penalty.
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)
    picked = np.clip(probs[np.arange(len(targets)), targets], 1e-15, 1.0)
    return float(-np.mean(np.log(picked)))


@register_labels("f1_macro", greater_is_better=True)
def f1_macro(targets: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """Unweighted mean over classes of F1 of the argmax label, over the classes that are
    predicted or present, as scikit-learn's f1_score(average="macro") does."""
    true_positive = np.bincount(targets[predicted == targets], minlength=n_classes)
    predicted_count = np.bincount(predicted, minlength=n_classes)
    actual_count = np.bincount(targets, minlength=n_classes)
    denominator = predicted_count + actual_count
    f1 = np.divide(2.0 * true_positive, denominator, out=np.zeros(n_classes), where=denominator > 0)
    # scikit-learn averages over the classes that appear in targets or predictions.
    seen = denominator > 0
    return float(f1[seen].mean())


def ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks along axis 0 with ties given their average rank (float64, same shape)."""
    order = np.argsort(values, axis=0, kind="mergesort")
    sorted_values = np.take_along_axis(values, order, axis=0)
    result = np.empty(values.shape, dtype=np.float64)
    for column in range(values.shape[1]):
        column_values = sorted_values[:, column]
        starts = np.flatnonzero(np.r_[True, column_values[1:] != column_values[:-1]])
        ends = np.r_[starts[1:], len(column_values)]
        average = (starts + ends + 1) / 2.0  # mean of the 1-based positions start+1 .. end
        result[order[:, column], column] = np.repeat(average, ends - starts)
    return result


def binary_auc(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula; ties count one half."""
    positives = int(is_positive.sum())
    negatives = len(is_positive) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    score_ranks = ranks(np.asarray(scores, dtype=np.float64)[:, None])[:, 0]
    return float((score_ranks[is_positive].sum() - positives * (positives + 1) / 2) / (positives * negatives))


@register("auc", greater_is_better=True)
def auc(targets: np.ndarray, probs: np.ndarray) -> float:
    """Binary: AUC of the second class's probability. Multiclass: the unweighted mean of
    one-vs-rest AUCs (scikit-learn's roc_auc_score(multi_class="ovr", average="macro")),
    over the classes present in targets."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[1] == 2:
        return binary_auc(targets == 1, probs[:, 1])
    present = np.unique(targets)
    return float(np.mean([binary_auc(targets == label, probs[:, label]) for label in present]))


@register_labels("qwk", greater_is_better=True)
def qwk(targets: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """Quadratic weighted kappa of the argmax label, for ordinal classes (in class order)."""
    observed = np.bincount(targets * n_classes + predicted, minlength=n_classes**2).reshape(n_classes, n_classes)
    expected = np.outer(np.bincount(targets, minlength=n_classes), np.bincount(predicted, minlength=n_classes)) / len(targets)
    grid = np.arange(n_classes)
    penalty = (grid[:, None] - grid[None, :]) ** 2
    disagreement = (penalty * expected).sum()
    if disagreement == 0:
        return 1.0 if (penalty * observed).sum() == 0 else 0.0
    return float(1.0 - (penalty * observed).sum() / disagreement)


def get(name: str) -> Metric:
    return METRICS.get(name)


def score_many(metric: Metric, targets: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Scores of several blends at once: candidates float (n_blends, n_samples, n_classes) -> (n_blends,).

    Metrics with a vectorised form (accuracy, logloss) score every blend in one numpy pass;
    the others fall back to one call per blend.
    """
    batch = BATCHED.get(metric.name)
    if batch is not None:
        return batch(targets, candidates)
    return np.array([metric.score(targets, candidate) for candidate in candidates])


def _accuracy_many(targets: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    return (np.argmax(candidates, axis=2) == targets).mean(axis=1)


def _logloss_many(targets: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    picked = candidates[:, np.arange(len(targets)), targets] / candidates.sum(axis=2)
    return -np.log(np.clip(picked, 1e-15, 1.0)).mean(axis=1)


BATCHED: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "accuracy": _accuracy_many,
    "logloss": _logloss_many,
}
