"""The blender contract, after scikit-learn's estimators (without importing scikit-learn,
which costs a second at start-up: `ens blend` stays fast).

`__init__` only stores its keyword arguments; `fit(logits, targets)` checks its input and
returns self; fitted state ends in `_`; `predict_proba` refuses an unfitted blender. Inputs
are never modified. get_params/set_params make blenders work with sklearn.base.clone, and base.clone
gives the unfitted copies that nested.py's out-of-fold scoring and thresholds.py fit.

Input shape everywhere: logits float (n_models, n_samples, n_classes); targets as the task
kind has them (ensemble/tasks.py): class indices int (n_samples,), 0/1 float (n_samples,
n_tags), or values float (n_samples,) with logits (n_models, n_samples, 1). Every blender takes
`task`, the kind's name (default "single_label"), and blends what the kind's logits mean
(kinds.py): probabilities, or values. A fitted blender has `weights_` (float (n_models,),
non-negative, summing to one) when it is a weighted mean of member outputs, and
`weights_ = None` when it is not (a stacker's meta-learner).
"""

from __future__ import annotations

import inspect

import numpy as np

from ensemble.blend import kinds
from ensemble.errors import EnsError


class Blender:
    # A stacker's meta-learner was fit on OOF rows that each came from one fold model; run.py
    # applies such a blender to every fold model's test logits and averages (see stack.py).
    applies_per_fold_model = False
    # A blender that tunes something on nested out-of-fold predictions takes fit(..., fold_of=)
    # (int (n_samples,), the fold of each OOF row); nested.fit passes it (see thresholds.py).
    uses_folds = False
    # Task kinds the method does not apply to: kind name -> the one-line reason.
    refused: dict[str, str] = {}
    task = "single_label"

    def check_params(self) -> "Blender":
        """Raise EnsError for a parameter value the method cannot use, the task kind first; fit calls it first."""
        kind = kinds.get(self.task)
        if kind.name in self.refused:
            raise EnsError(self.refused[kind.name])
        return self.check_options()

    def check_options(self) -> "Blender":
        """The method's own options; check_params calls it once the task kind is known to apply."""
        return self

    def get_params(self, deep: bool = True) -> dict:
        keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names = [
            name
            for name, parameter in inspect.signature(type(self).__init__).parameters.items()
            if name != "self" and parameter.kind in keyword
        ]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params) -> "Blender":
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; it has {sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        params = ", ".join(f"{name}={value!r}" for name, value in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def _check_fitted(self) -> None:
        # scikit-learn's rule: fit is what sets public attributes ending in "_".
        if not any(name.endswith("_") and not name.startswith("_") for name in vars(self)):
            raise EnsError(f"{type(self).__name__} is not fitted yet; call fit first")

    @staticmethod
    def _check_logits(logits, targets=None) -> np.ndarray:
        logits = np.asarray(logits)
        if logits.ndim != 3:
            raise EnsError(f"logits must be (n_models, n_samples, n_classes), got shape {logits.shape}")
        if not np.isfinite(logits).all():
            raise EnsError("logits hold NaN or infinite values")
        if targets is not None and len(targets) != logits.shape[1]:
            raise EnsError(f"{len(targets)} targets for {logits.shape[1]} samples")
        if targets is not None and np.ndim(targets) == 2 and np.shape(targets)[1] != logits.shape[2]:
            raise EnsError(f"targets have {np.shape(targets)[1]} tags, logits {logits.shape[2]}")
        return logits


def clone(blender: Blender) -> Blender:
    """An unfitted copy with the same parameters (nested blenders are cloned too)."""
    params = {name: clone(value) if isinstance(value, Blender) else value for name, value in blender.get_params().items()}
    return type(blender)(**params)


def member_probabilities(logits: np.ndarray, dtype=np.float32, task: str = "single_label") -> np.ndarray:
    """Each member's outputs (softmax, sigmoid or values, as the task kind says), one member
    at a time so that no float64 copy of the whole stack is ever made: float (n_models,
    n_samples, n_classes) in `dtype`."""
    kind = kinds.get(task)
    probs = np.empty(logits.shape, dtype=dtype)
    for member, member_logits in enumerate(logits):
        probs[member] = kind.outputs(member_logits)
    return probs


def weighted_probabilities(weights: np.ndarray, logits: np.ndarray, task: str = "single_label") -> np.ndarray:
    """sum_m weights[m] * outputs(logits[m]), float64 (n_samples, n_classes) (kinds.BlendKind.weighted_mean)."""
    return kinds.get(task).weighted_mean(weights, logits)
