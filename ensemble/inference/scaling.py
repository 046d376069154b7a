"""Target scalings: what a fold's network is trained to output, and how its outputs become values.

Classification trains on its targets as they are (class indices, 0/1 tags) and caches the
network's logits unchanged: `UNSCALED`. A regression trains on its values scaled by
constants fitted on the fold's training rows alone, never on the held-out fold, so that no
OOF value is chosen by its own target:
- standardise (losses mse, huber): z = (value - mean) / std, decoded as z * std + mean;
- unit_range (loss bce, the Pawpularity trick): u = (value - low) / (high - low), trained
  with a binary cross-entropy on a sigmoid, decoded as sigmoid(output) * (high - low) + low.
Decoded values are clipped to the training rows' range [low, high]: a count is never
predicted below the least or above the most the fold saw. The constants are stored with the
fold's weights (fold_job.rebuild_record, key "target_scale"), so `ens predict` decodes each
TTA view exactly as training did, before the views are merged (tta.predict).

Numpy only: the decode runs wherever logits are made, on arrays moved off the device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ensemble.registry import Registry
from ensemble.tasks import sigmoid


class Unscaled:
    """Targets trained on as they are; outputs cached as the network gives them."""

    name = "none"

    @classmethod
    def fit(cls, targets: np.ndarray) -> "Unscaled":
        return UNSCALED

    def encode(self, targets: np.ndarray) -> np.ndarray:
        return targets  # the very array: single-label training stays call for call what it was

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        return outputs

    def bounded(self, values: np.ndarray) -> np.ndarray:
        """Soft targets (a teacher's, training/student.py) as they are: there is no range to keep."""
        return values

    def record(self) -> None:
        return None


UNSCALED = Unscaled()


def clipped(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """values clipped to [low, high], float32; a non-finite value stays NaN, so that a
    diverged fold is still refused rather than clipped into a plausible number."""
    result = np.clip(values, low, high)
    result[~np.isfinite(values)] = np.nan
    return result.astype(np.float32)


@dataclass(frozen=True)
class Standardised:
    """z = (value - mean) / std over the fold's training rows (std with ddof 0; 1 when they
    are all one value); low, high: their least and greatest value."""

    mean: float
    std: float
    low: float
    high: float
    name = "standardise"

    @classmethod
    def fit(cls, values: np.ndarray) -> "Standardised":
        values = np.asarray(values, dtype=np.float64)
        std = float(values.std())
        return cls(float(values.mean()), std if std > 0 else 1.0, float(values.min()), float(values.max()))

    def encode(self, values: np.ndarray) -> np.ndarray:
        """values: float (n,) -> float32 (n, 1), the network's one output column."""
        return ((np.asarray(values, dtype=np.float64) - self.mean) / self.std).astype(np.float32)[:, None]

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        """outputs: float (..., 1) -> float32 values, same shape, in [low, high]."""
        return clipped(np.asarray(outputs, dtype=np.float64) * self.std + self.mean, self.low, self.high)

    def bounded(self, values: np.ndarray) -> np.ndarray:
        """A teacher's values clipped to the fold's training range, as the fold's own outputs are."""
        return np.clip(values, self.low, self.high)

    def record(self) -> dict:
        return {"scaling": self.name, **asdict(self)}


@dataclass(frozen=True)
class UnitRange:
    """u = (value - low) / (high - low) over the fold's training rows, in 0..1."""

    low: float
    high: float
    name = "unit_range"

    @classmethod
    def fit(cls, values: np.ndarray) -> "UnitRange":
        values = np.asarray(values, dtype=np.float64)
        return cls(float(values.min()), float(values.max()))

    @property
    def span(self) -> float:
        return self.high - self.low if self.high > self.low else 1.0

    def encode(self, values: np.ndarray) -> np.ndarray:
        """values: float (n,) -> float32 (n, 1) in 0..1."""
        return ((np.asarray(values, dtype=np.float64) - self.low) / self.span).astype(np.float32)[:, None]

    def decode(self, outputs: np.ndarray) -> np.ndarray:
        """outputs: logits float (..., 1) -> float32 values sigmoid * (high - low) + low."""
        return clipped(sigmoid(outputs) * self.span + self.low, self.low, self.high)

    def bounded(self, values: np.ndarray) -> np.ndarray:
        """A teacher's values clipped to the fold's training range: a bce target outside 0..1
        has a loss without a lower bound, and the fold would drift rather than converge."""
        return np.clip(values, self.low, self.high)

    def record(self) -> dict:
        return {"scaling": self.name, **asdict(self)}


# name -> the scale's class: fit(training rows' targets) makes one; its record's fields make it again.
SCALINGS: Registry[type] = Registry("target scaling")
for scaling in (Unscaled, Standardised, UnitRange):
    SCALINGS.register(scaling.name)(scaling)


def from_record(record: dict | None):
    """The scale a checkpoint's "target_scale" stored; none (classification, and every
    checkpoint written before scalings existed): the outputs as they are."""
    if record is None:
        return UNSCALED
    fields = {key: value for key, value in record.items() if key != "scaling"}
    return SCALINGS.get(record["scaling"])(**fields)
