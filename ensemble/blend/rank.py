"""Mean of per-class ranks: only the order of each member's scores counts, not their scale.

For rank-based metrics (AUC; mean average precision of tags) this removes the effect of one
member's overconfident or badly calibrated probabilities. Ranks are taken within the rows being
predicted, then each row is divided by its sum so the result reads as probabilities (their
calibration is lost: prefer another method for logloss). Multi-label: each tag gets its mean
rank / (n_samples + 1), a share of the rows rather than a probability, so a threshold on it
cuts a share of rows. A regression is refused: its score reads the values, not their order.
"""

from __future__ import annotations

import numpy as np

from ensemble.blend.mean import MeanBlender
from ensemble.metrics import ranks


class RankBlender(MeanBlender):
    refused = {
        "regression": "rank averaging does not apply to a regression: ranks keep only the order of each member's values, "
        "and a regression is scored on the values themselves",
    }

    def transform(self, probs: np.ndarray) -> np.ndarray:
        """Per class, the rank of each row's probability divided by n_samples (ties share their mean rank)."""
        return ranks(probs) / len(probs)
