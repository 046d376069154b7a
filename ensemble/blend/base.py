"""The blender contract, after scikit-learn's estimators (without importing scikit-learn,
which costs a second at start-up: `ens blend` stays fast).

`__init__` only stores its keyword arguments; `fit(logits, targets)` checks its input and
returns self; fitted state ends in `_`; `predict_proba` refuses an unfitted blender. Inputs
are never modified. get_params/set_params make blenders work with sklearn.base.clone, for
the nested cross-validation that later methods need.

Input shape everywhere: logits float (n_models, n_samples, n_classes).
"""

from __future__ import annotations

import inspect

import numpy as np

from ensemble.errors import EnsError


class Blender:
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
        if not hasattr(self, "weights_"):
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
        return logits
