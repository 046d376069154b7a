"""Power averaging: the mean of probabilities raised to a power P, rows renormalised.

P > 1 lets a confident member count for more than an unsure one (a Kaggle habit for
accuracy- and AUC-like metrics); P = 1 is the plain mean.
"""

from __future__ import annotations

import numpy as np

from ensemble.blend.mean import MeanBlender
from ensemble.errors import EnsError


class PowerBlender(MeanBlender):
    def __init__(self, power: float = 2.0):
        self.power = power

    def check_params(self) -> "PowerBlender":
        if not (isinstance(self.power, (int, float)) and 0 < self.power <= 16):
            raise EnsError(f"--power must be in (0, 16], got {self.power!r}")
        return self

    def transform(self, probs: np.ndarray) -> np.ndarray:
        """p ** power: sum_m w_m p_m ** power, each row then divided by its sum."""
        return probs ** self.power
