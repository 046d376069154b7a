"""Mean of the members' outputs (class or tag probabilities, or values): the baseline every
fitted blend must beat."""

from __future__ import annotations

import numpy as np

from ensemble.blend import kinds
from ensemble.blend.base import Blender


class MeanBlender(Blender):
    """Equal weights, nothing learned: its OOF score carries no leakage from fitting.
    Rank and power blends are means too, of transformed probabilities: they subclass it."""

    def __init__(self, task: str = "single_label"):
        self.task = task

    def fit(self, logits, targets) -> "MeanBlender":
        """logits: float (n_models, n_samples, n_classes); targets: as the task kind has them."""
        self.check_params()
        logits = self._check_logits(logits, targets)
        self.weights_ = np.full(logits.shape[0], 1.0 / logits.shape[0])
        return self

    # A mean of transformed probabilities: transform(probs: float64 (n_samples, n_columns)) ->
    # the same shape, then renormalised (kinds.BlendKind.transformed_mean). None: the plain
    # mean, not renormalised.
    transform = None

    def predict_proba(self, logits) -> np.ndarray:
        """Probabilities (or values) float64 (n_samples, n_classes)."""
        self._check_fitted()
        logits = self._check_logits(logits)
        kind = kinds.get(self.task)
        if self.transform is None:
            return kind.weighted_mean(self.weights_, logits)
        return kind.transformed_mean(self.weights_, logits, self.transform)
