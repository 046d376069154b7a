"""Power averaging: the mean of probabilities raised to a power P, rows renormalised.

P > 1 lets a confident member count for more than an unsure one (a Kaggle habit for
accuracy- and AUC-like metrics); P = 1 is the plain mean.
"""

from __future__ import annotations

import numpy as np

from ensemble.blend.mean import MeanBlender
from ensemble.errors import EnsError
from ensemble.metrics import softmax


class PowerBlender(MeanBlender):
    def __init__(self, power: float = 2.0):
        self.power = power

    def check_params(self) -> "PowerBlender":
        if not (isinstance(self.power, (int, float)) and 0 < self.power <= 16):
            raise EnsError(f"--power must be in (0, 16], got {self.power!r}")
        return self

    def predict_proba(self, logits) -> np.ndarray:
        """float64 (n_samples, n_classes): sum_m w_m p_m ** power, each row divided by its sum."""
        self._check_fitted()
        logits = self._check_logits(logits)
        blend = np.zeros(logits.shape[1:], dtype=np.float64)
        for weight, member_logits in zip(self.weights_, logits):
            blend += weight * softmax(member_logits) ** self.power
        return blend / blend.sum(axis=1, keepdims=True)
