"""Mean of per-class ranks: only the order of each member's scores counts, not their scale.

For rank-based metrics (AUC) this removes the effect of one member's overconfident or
badly calibrated probabilities. Ranks are taken within the rows being predicted, then each
row is divided by its sum so the result reads as probabilities (their calibration is lost:
prefer another method for logloss).
"""

from __future__ import annotations

import numpy as np

from ensemble.blend.mean import MeanBlender
from ensemble.metrics import ranks


class RankBlender(MeanBlender):
    def transform(self, probs: np.ndarray) -> np.ndarray:
        """Per class, the rank of each row's probability divided by n_samples (ties share their mean rank)."""
        return ranks(probs) / len(probs)
