"""Mean of the members' class probabilities: the baseline every fitted blend must beat."""

from __future__ import annotations

import numpy as np

from ensemble.blend.base import Blender, weighted_probabilities
from ensemble.metrics import softmax


class MeanBlender(Blender):
    """Equal weights, nothing learned: its OOF score carries no leakage from fitting.
    Rank and power blends are means too, of transformed probabilities: they subclass it."""

    def fit(self, logits, targets) -> "MeanBlender":
        """logits: float (n_models, n_samples, n_classes); targets: int (n_samples,)."""
        self.check_params()
        logits = self._check_logits(logits, targets)
        self.weights_ = np.full(logits.shape[0], 1.0 / logits.shape[0])
        return self

    # A mean of transformed probabilities: transform(probs: float64 (n_samples, n_classes)) ->
    # the same shape, then each row divided by its sum. None: the plain mean, not renormalised.
    transform = None

    def predict_proba(self, logits) -> np.ndarray:
        """Probabilities float64 (n_samples, n_classes)."""
        self._check_fitted()
        logits = self._check_logits(logits)
        if self.transform is None:
            return weighted_probabilities(self.weights_, logits)
        blend = np.zeros(logits.shape[1:], dtype=np.float64)
        for weight, member_logits in zip(self.weights_, logits):
            blend += weight * self.transform(softmax(member_logits))
        return blend / blend.sum(axis=1, keepdims=True)
