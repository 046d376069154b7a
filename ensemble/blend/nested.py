"""Out-of-fold scoring of a blend: the honest number for any method that learns from OOF.

For each fold f of the members' own fold assignment, a fresh copy of the blender is fit on
the OOF rows of the other folds and predicts the rows of fold f. Every row's blended
probability then comes from a blend that never saw it, as every member's OOF logit came
from a model that never saw it. A method that learns nothing gives its in-sample result.
"""

from __future__ import annotations

import numpy as np

from ensemble.blend.base import Blender, clone


def out_of_fold_probabilities(blender: Blender, logits: np.ndarray, targets: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    """float64 (n_samples, n_classes): probabilities, or a regression's values.

    logits: float (n_models, n_samples, n_classes); targets: as the task kind has them (base.py);
    fold_of: int (n_samples,), the fold whose model produced each OOF row.
    """
    probs = np.zeros(logits.shape[1:], dtype=np.float64)
    for fold in np.unique(fold_of):
        held_out = fold_of == fold
        fitted = fit(clone(blender), logits[:, ~held_out], targets[~held_out], fold_of[~held_out])
        probs[held_out] = fitted.predict_proba(logits[:, held_out])
    return probs


def fit(blender: Blender, logits: np.ndarray, targets: np.ndarray, fold_of: np.ndarray) -> Blender:
    """blender.fit, given the fold of each row when the blender asks for it (uses_folds)."""
    return blender.fit(logits, targets, fold_of=fold_of) if blender.uses_folds else blender.fit(logits, targets)
