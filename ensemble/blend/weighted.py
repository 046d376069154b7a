"""Weighted mean of member probabilities, weights fitted on OOF by SLSQP.

The weights are non-negative and sum to one. The objective is always the log loss of the
blend: it is smooth, so SLSQP gets its exact gradient, and it only needs each member's
probability of the true class, an (n_models, n_samples) array however many classes there
are. Accuracy, F1, QWK and AUC are piecewise constant in the weights (a gradient method
sees a flat surface), so for those the weights still minimise log loss, and `optimised_`
records that; `hill` optimises any metric directly.
"""

from __future__ import annotations

import numpy as np

from ensemble import metrics
from ensemble.blend.base import Blender, weighted_probabilities
from ensemble.metrics import softmax


def true_class_probabilities(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """float64 (n_models, n_samples): each member's probability of each row's target."""
    rows = np.arange(len(targets))
    return np.stack([softmax(member_logits)[rows, targets] for member_logits in logits])


def logloss_and_gradient(weights: np.ndarray, picked: np.ndarray) -> tuple[float, np.ndarray]:
    """Log loss of the blend sum_m w_m p_m and its gradient in w.

    picked: float64 (n_models, n_samples), members' probabilities of the true class.
    d/dw_m -mean(log(b)) = -mean(p_m / b), with b = w @ picked clipped as logloss clips.
    """
    blend = np.clip(weights @ picked, 1e-15, None)
    return float(-np.mean(np.log(blend))), -(picked / blend).mean(axis=1)


def fit_weights(picked: np.ndarray, gradient: bool = True) -> np.ndarray:
    """SLSQP on the simplex; `gradient=False` lets scipy difference the objective instead
    (kept for the benchmark that measures what the gradient buys)."""
    from scipy.optimize import minimize

    n_models = picked.shape[0]
    start = np.full(n_models, 1.0 / n_models)
    if gradient:
        objective, jac = (lambda w: logloss_and_gradient(w, picked)), True
    else:
        objective, jac = (lambda w: logloss_and_gradient(w, picked)[0]), None
    result = minimize(
        objective,
        start,
        jac=jac,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * n_models,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}],
        options={"maxiter": 500, "ftol": 1e-10},
    )
    weights = np.clip(result.x, 0.0, None)
    return weights / weights.sum()


class WeightedBlender(Blender):
    """metric: the metric the blend is judged by; recorded, since the fit minimises log loss."""

    def __init__(self, metric: str = "logloss"):
        self.metric = metric

    def check_params(self) -> "WeightedBlender":
        metrics.get(self.metric)
        return self

    def fit(self, logits, targets) -> "WeightedBlender":
        """logits: float (n_models, n_samples, n_classes); targets: int (n_samples,)."""
        self.check_params()
        logits = self._check_logits(logits, targets)
        self.weights_ = fit_weights(true_class_probabilities(logits, np.asarray(targets)))
        self.optimised_ = "logloss"
        return self

    def predict_proba(self, logits) -> np.ndarray:
        """Probabilities float64 (n_samples, n_classes)."""
        self._check_fitted()
        return weighted_probabilities(self.weights_, self._check_logits(logits))
