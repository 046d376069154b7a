"""Mean of per-class ranks: only the order of each member's scores counts, not their scale.

For rank-based metrics (AUC) this removes the effect of one member's overconfident or
badly calibrated probabilities. Ranks are taken within the rows being predicted, then each
row is divided by its sum so the result reads as probabilities (their calibration is lost:
prefer another method for logloss).
"""

from __future__ import annotations

import numpy as np

from ensemble.blend.mean import MeanBlender
from ensemble.metrics import ranks, softmax


class RankBlender(MeanBlender):
    def predict_proba(self, logits) -> np.ndarray:
        """float64 (n_samples, n_classes): per class, the weighted mean over members of the
        rank of each row's probability divided by n_samples (ties share their mean rank)."""
        self._check_fitted()
        logits = self._check_logits(logits)
        blend = np.zeros(logits.shape[1:], dtype=np.float64)
        for weight, member_logits in zip(self.weights_, logits):
            blend += weight * ranks(softmax(member_logits)) / logits.shape[1]
        return blend / blend.sum(axis=1, keepdims=True)
