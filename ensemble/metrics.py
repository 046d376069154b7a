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
    """score(targets: int (n_samples,), probs: float (n_samples, n_classes)) -> float."""

    name: str
    score: Callable[[np.ndarray, np.ndarray], float]
    greater_is_better: bool

    def better(self, a: float, b: float) -> bool:
        """True when score `a` beats score `b`."""
        return a > b if self.greater_is_better else a < b


METRICS: Registry[Metric] = Registry("metric")


def register(name: str, greater_is_better: bool):
    def add(score):
        METRICS.register(name)(Metric(name, score, greater_is_better))
        return score

    return add


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis; float64 so that logloss sees no rounding to 0 or 1."""
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


@register("accuracy", greater_is_better=True)
def accuracy(targets: np.ndarray, probs: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=1) == targets))


@register("logloss", greater_is_better=False)
def logloss(targets: np.ndarray, probs: np.ndarray) -> float:
    # Rows are renormalised and clipped as Kaggle's scorer does, so a blend's rounding
    # or a zero probability costs a large but finite penalty.
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)
    picked = np.clip(probs[np.arange(len(targets)), targets], 1e-15, 1.0)
    return float(-np.mean(np.log(picked)))


def get(name: str) -> Metric:
    return METRICS.get(name)
