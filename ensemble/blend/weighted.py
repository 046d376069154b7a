"""Weighted mean of member outputs, weights fitted on OOF: non-negative and summing to one.

Probabilities (single-label, multi-label): the objective is always the log loss of the blend
(multi-label: the mean binary log loss over every row and tag). It is smooth, so SLSQP gets
its exact gradient, and it only needs the probability each member gave to what happened (the
true class; each tag's actual yes or no), an (n_models, n_terms) array however many classes
there are. Accuracy, F1, QWK and AUC are piecewise constant in the weights (a gradient method
sees a flat surface), so for those the weights still minimise log loss, and `optimised_`
records that; `hill` optimises any metric directly.

Values (regression): non-negative least squares with the weights summing to one, solved by
scipy's NNLS (Lawson and Hanson, "Solving Least Squares Problems", 1974). Summing to one keeps
the blend a weighted mean, as every other weighted method is: it stays within the members'
range, and it does not depend on where the target's zero lies (counts or Kelvin alike).
"""

from __future__ import annotations

import numpy as np

from ensemble import tasks
from ensemble.blend import kinds
from ensemble.blend.base import Blender, weighted_probabilities

# Least squares minimises squared error, which rmse and r2 (1 - SSE / a constant) order alike.
SQUARED_ERROR = ("rmse", "r2")
# The weighting method for the sum-to-one row (Lawson and Hanson, ch. 22): the row weighs this
# much more than the data scaled to 1, so the sum misses one by about 1e-8 before renormalising.
SUM_WEIGHT = 1e4


def true_class_probabilities(logits: np.ndarray, targets: np.ndarray, task: str = "single_label") -> np.ndarray:
    """float64 (n_models, n_terms): each member's probability of what happened (kinds.BlendKind.observed)."""
    return kinds.observed_probabilities(logits, targets, kinds.get(task))


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


def least_squares_weights(values: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """float64 (n_models,), non-negative, summing to one, minimising ||values.T @ w - targets||.

    values: float (n_models, n_samples). With the weights summing to one the blend's error is
    residuals @ w, residuals being each member's errors (n_samples, n_models); their R factor
    (n_models, n_models) has the same norms, so the solve is as small as the number of members.
    """
    from scipy.optimize import nnls

    residuals = (np.asarray(values, dtype=np.float64) - np.asarray(targets, dtype=np.float64)).T
    factor = np.linalg.qr(residuals, mode="r")
    scale = np.abs(factor).max()
    if scale == 0:  # every member exact: any mean is
        return np.full(len(values), 1.0 / len(values))
    system = np.vstack([factor / scale, np.full((1, len(values)), SUM_WEIGHT)])
    weights, _ = nnls(system, np.r_[np.zeros(len(factor)), SUM_WEIGHT])
    return weights / weights.sum()


class WeightedBlender(Blender):
    """metric: the metric the blend is judged by; recorded, since the fit minimises log loss
    (or squared error, for a regression)."""

    def __init__(self, metric: str = "logloss", task: str = "single_label"):
        self.metric = metric
        self.task = task

    def check_options(self) -> "WeightedBlender":
        tasks.get(self.task).check_metric(self.metric, "--metric")
        return self

    def fit(self, logits, targets) -> "WeightedBlender":
        """logits: float (n_models, n_samples, n_classes); targets: as the task kind has them."""
        self.check_params()
        logits = self._check_logits(logits, targets)
        kind = kinds.get(self.task)
        if kind.values:
            self.weights_ = least_squares_weights(logits[:, :, 0], targets)
            self.optimised_ = self.metric if self.metric in SQUARED_ERROR else "rmse"
        else:
            self.weights_ = fit_weights(true_class_probabilities(logits, np.asarray(targets), self.task))
            self.optimised_ = "logloss"
        return self

    def predict_proba(self, logits) -> np.ndarray:
        """Probabilities (or values) float64 (n_samples, n_classes)."""
        self._check_fitted()
        return weighted_probabilities(self.weights_, self._check_logits(logits), self.task)
