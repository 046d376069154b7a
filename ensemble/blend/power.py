"""Power averaging: the mean of probabilities raised to a power P, rows renormalised.

P > 1 lets a confident member count for more than an unsure one (a Kaggle habit for
accuracy- and AUC-like metrics); P = 1 is the plain mean. Multi-label: each tag's yes and no
are raised and renormalised on their own. A regression has no probabilities to raise.
"""

from __future__ import annotations

import numpy as np

from ensemble.blend.mean import MeanBlender
from ensemble.errors import EnsError


class PowerBlender(MeanBlender):
    refused = {
        "regression": "power averaging does not apply to a regression: it raises probabilities to a power, "
        "and a regression's outputs are values in the target's units",
    }

    def __init__(self, power: float = 2.0, task: str = "single_label"):
        self.power = power
        self.task = task

    def check_options(self) -> "PowerBlender":
        if not (isinstance(self.power, (int, float)) and 0 < self.power <= 16):
            raise EnsError(f"--power must be in (0, 16], got {self.power!r}")
        return self

    def transform(self, probs: np.ndarray) -> np.ndarray:
        """p ** power: sum_m w_m p_m ** power, each row then divided by its sum."""
        return probs ** self.power
