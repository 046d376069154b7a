"""Metric registry: each metric scores a task's outputs against its targets.

The outputs and targets of each task kind (ensemble/tasks.py):
- single_label: class probabilities float (n, n_classes) against class indices int (n,);
- multi_label: tag probabilities float (n, n_tags) against 0/1 float (n, n_tags); a tag is
  predicted when its probability is above 0.5, and an image gets its likeliest tag when none
  is, unless some training image has no tag (then an image may get none: the data says
  whether an empty answer can be right); blends move the threshold by moving the
  probabilities (blend/thresholds.py), so every metric and the submission decide alike;
- regression: predicted values float (n, 1) against values float (n,).
A metric names the kinds it applies to; logloss and f1_macro apply to two and read which
from the targets' shape.

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
    tasks: tuple[str, ...] = ("single_label",)
    # Scores a decision (tags above a threshold, an argmax label), not a probability:
    # blends tune the decision's thresholds on OOF for these (blend/thresholds.py).
    thresholded: bool = False

    def better(self, a: float, b: float) -> bool:
        """True when score `a` beats score `b`."""
        return a > b if self.greater_is_better else a < b


METRICS: Registry[Metric] = Registry("metric")


def register(name: str, greater_is_better: bool, tasks: tuple[str, ...] = ("single_label",), thresholded: bool = False):
    def add(score):
        METRICS.register(name)(Metric(name, score, greater_is_better, tasks=tasks, thresholded=thresholded))
        return score

    return add


def register_labels(name: str, greater_is_better: bool, thresholded: bool = False):
    """Register a metric of the argmax label: score(targets, probs) = of_labels(targets, argmax(probs), n_classes)."""

    def add(of_labels):
        def score(targets: np.ndarray, probs: np.ndarray) -> float:
            return of_labels(targets, np.argmax(probs, axis=1), probs.shape[1])

        score.__name__ = of_labels.__name__
        METRICS.register(name)(Metric(name, score, greater_is_better, of_labels, thresholded=thresholded))
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


@register("logloss", greater_is_better=False, tasks=("single_label", "multi_label"))
def logloss(targets: np.ndarray, probs: np.ndarray) -> float:
    """Single-label: the mean negative log-probability of the true class. Multi-label: the
    mean binary cross-entropy over every image and tag."""
    if np.ndim(targets) == 2:
        probs = np.clip(np.asarray(probs, dtype=np.float64), 1e-15, 1 - 1e-15)
        return float(-np.mean(targets * np.log(probs) + (1 - targets) * np.log1p(-probs)))
    # Rows are renormalised and clipped as Kaggle's scorer does, so a blend's rounding
    # or a zero probability costs a large but finite penalty.
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)
    picked = np.clip(probs[np.arange(len(targets)), targets], 1e-15, 1.0)
    return float(-np.mean(np.log(picked)))


def f1_macro(targets: np.ndarray, probs: np.ndarray) -> float:
    """Single-label: F1 of the argmax label averaged over classes; multi-label: F1 of each
    tag's decisions averaged over every tag (scikit-learn's average="macro", zero_division=0)."""
    if np.ndim(targets) == 2:
        predicted, truth = tag_decisions(probs, every_image_tagged(targets)), np.asarray(targets) > 0.5
        true_positive = (predicted & truth).sum(axis=0)
        denominator = predicted.sum(axis=0) + truth.sum(axis=0)
        return float(np.mean(np.divide(2.0 * true_positive, denominator, out=np.zeros(len(denominator)), where=denominator > 0)))
    return f1_macro_of_labels(targets, np.argmax(probs, axis=1), probs.shape[1])


def f1_macro_of_labels(targets: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
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


METRICS.register("f1_macro")(Metric("f1_macro", f1_macro, True, f1_macro_of_labels, ("single_label", "multi_label"), thresholded=True))


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


@register_labels("qwk", greater_is_better=True, thresholded=True)
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


# --- multi-label -------------------------------------------------------------------------------

THRESHOLD = 0.5


def tag_decisions(probs: np.ndarray, at_least_one: bool = True) -> np.ndarray:
    """bool (n, n_tags): the tags above THRESHOLD, and (at_least_one) each image's likeliest
    tag where none is."""
    probs = np.asarray(probs)
    chosen = probs > THRESHOLD
    if at_least_one:
        empty = ~chosen.any(axis=1)
        chosen[np.flatnonzero(empty), np.argmax(probs[empty], axis=1)] = True
    return chosen


def every_image_tagged(targets: np.ndarray) -> bool:
    """Whether every image of these 0/1 targets has a tag: then an empty answer is never right."""
    return bool((np.asarray(targets) > 0.5).any(axis=1).all())


def f_beta_samples(targets: np.ndarray, probs: np.ndarray, beta: float) -> float:
    """F-beta of each image's tags, averaged over images (scikit-learn's average="samples"; an
    image with no tag that gets none scores 1, as zero_division=1 gives)."""
    predicted, truth = tag_decisions(probs, every_image_tagged(targets)), np.asarray(targets) > 0.5
    true_positive = (predicted & truth).sum(axis=1)
    weighted = (1 + beta**2) * true_positive
    denominator = weighted + beta**2 * (truth.sum(axis=1) - true_positive) + (predicted.sum(axis=1) - true_positive)
    return float(np.mean(np.divide(weighted, denominator, out=np.ones(len(denominator)), where=denominator > 0)))


@register("f1_samples", greater_is_better=True, tasks=("multi_label",), thresholded=True)
def f1_samples(targets: np.ndarray, probs: np.ndarray) -> float:
    return f_beta_samples(targets, probs, 1.0)


@register("f2_samples", greater_is_better=True, tasks=("multi_label",), thresholded=True)
def f2_samples(targets: np.ndarray, probs: np.ndarray) -> float:
    """Planet's metric: recall counts four times as much as precision."""
    return f_beta_samples(targets, probs, 2.0)


def average_precision(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """scikit-learn's average_precision_score: sum over thresholds of (R_n - R_n-1) P_n,
    tied scores forming one threshold."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    scores, hits = np.asarray(scores, dtype=np.float64)[order], np.asarray(is_positive)[order]
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]
    true_positive = np.cumsum(hits)[last_of_tie]
    predicted = (np.arange(len(scores)) + 1)[last_of_tie]
    recall = true_positive / hits.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * true_positive / predicted))


@register("map", greater_is_better=True, tasks=("multi_label",))
def mean_average_precision(targets: np.ndarray, probs: np.ndarray) -> float:
    """Mean over tags of average precision (scikit-learn's average="macro"), over the tags
    that some image has."""
    truth = np.asarray(targets) > 0.5
    present = np.flatnonzero(truth.any(axis=0))
    return float(np.mean([average_precision(truth[:, tag], probs[:, tag]) for tag in present]))


# --- regression: outputs (n, 1) against values (n,) --------------------------------------------

def _errors(targets: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(len(targets), -1)[:, 0] - np.asarray(targets, dtype=np.float64)


@register("rmse", greater_is_better=False, tasks=("regression",))
def rmse(targets: np.ndarray, values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(_errors(targets, values) ** 2)))


@register("mae", greater_is_better=False, tasks=("regression",))
def mae(targets: np.ndarray, values: np.ndarray) -> float:
    return float(np.mean(np.abs(_errors(targets, values))))


@register("r2", greater_is_better=True, tasks=("regression",))
def r2(targets: np.ndarray, values: np.ndarray) -> float:
    """1 - residual / total sum of squares (scikit-learn's r2_score; 0 when the targets are constant and missed)."""
    targets = np.asarray(targets, dtype=np.float64)
    residual, total = np.sum(_errors(targets, values) ** 2), np.sum((targets - targets.mean()) ** 2)
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return float(1 - residual / total)


def get(name: str) -> Metric:
    return METRICS.get(name)


def for_task(task: str) -> list[str]:
    """The metrics that apply to a task kind, by name."""
    return [name for name in METRICS.names() if task in METRICS.get(name).tasks]


def score_many(metric: Metric, targets: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Scores of several blends at once: candidates float (n_blends, n_samples, n_classes) -> (n_blends,).

    Metrics with a vectorised single-label form (accuracy, logloss) score every blend in one
    numpy pass; the others, and multi-label logloss, fall back to one call per blend.
    """
    batch = BATCHED.get(metric.name)
    if batch is not None and np.ndim(targets) == 1:  # the batched forms read class indices
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
