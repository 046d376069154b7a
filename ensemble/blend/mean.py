"""Mean of the members' class probabilities: the baseline every fitted blend must beat."""

from __future__ import annotations

import numpy as np

from ensemble.blend.base import Blender
from ensemble.metrics import softmax


class MeanBlender(Blender):
    """Equal weights, nothing learned: its OOF score carries no leakage from fitting."""

    def fit(self, logits, targets) -> "MeanBlender":
        """logits: float (n_models, n_samples, n_classes); targets: int (n_samples,)."""
        logits = self._check_logits(logits, targets)
        self.weights_ = np.full(logits.shape[0], 1.0 / logits.shape[0])
        return self

    def predict_proba(self, logits) -> np.ndarray:
        """Probabilities float64 (n_samples, n_classes)."""
        self._check_fitted()
        logits = self._check_logits(logits)
        return np.tensordot(self.weights_, softmax(logits), axes=1)
