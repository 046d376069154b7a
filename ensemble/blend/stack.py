"""Stacking: a meta-learner on the members' OOF log-probabilities (Wolpert, "Stacked
Generalization", 1992). Base models are never retrained; only the meta-learner is fit.

Its honest score comes from nested cross-validation over the members' own folds (see
nested.py): the score printed in-sample is optimistic, the out-of-fold one is not.

Test time: every OOF row came from one fold model, while a member's test.npz averages its
fold models, which makes test logits smoother than anything the meta-learner saw and no CV
can see that shift. So by default (`stack_test="per-fold"`) run.py applies the meta-learner
to each fold model's test logits and averages the probabilities; "mean-logits" applies it
once to the averaged test logits.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ensemble.blend.base import Blender
from ensemble.errors import EnsError
from ensemble.metrics import log_softmax

FLOOR = -15.0  # log-probabilities below this carry no information and slow the solver


def logistic_regression(seed: int):
    from sklearn.linear_model import LogisticRegression

    # lbfgs does not draw random numbers today; the seed keeps it so if the solver changes.
    return LogisticRegression(C=1.0, max_iter=2000, random_state=seed)


def lightgbm_classifier(seed: int):
    try:
        import lightgbm
    except ImportError:
        raise EnsError("--meta lgbm needs lightgbm, which is not installed: pip install 'ens[lgbm]'") from None
    return lightgbm.LGBMClassifier(
        n_estimators=200, learning_rate=0.05, num_leaves=15, min_child_samples=10,
        subsample=0.8, subsample_freq=1, colsample_bytree=0.8, random_state=seed, verbose=-1,
    )


META_LEARNERS: dict[str, Callable] = {"logreg": logistic_regression, "lgbm": lightgbm_classifier}
STACK_TEST = ("per-fold", "mean-logits")


def features(logits: np.ndarray) -> np.ndarray:
    """float64 (n_samples, n_models * n_classes): every member's log-softmax, side by side."""
    return np.concatenate([np.maximum(log_softmax(member_logits), FLOOR) for member_logits in logits], axis=1)


class StackBlender(Blender):
    """meta: "logreg" (scikit-learn, default) or "lgbm" (lightgbm, an optional extra);
    stack_test: "per-fold" or "mean-logits", how run.py applies it to test logits."""

    def __init__(self, meta: str = "logreg", stack_test: str = "per-fold"):
        self.meta = meta
        self.stack_test = stack_test

    @property
    def applies_per_fold_model(self) -> bool:
        return self.stack_test == "per-fold"

    def check_params(self) -> "StackBlender":
        if self.meta not in META_LEARNERS:
            raise EnsError(f"--meta: unknown meta-learner {self.meta!r}; expected one of: {', '.join(META_LEARNERS)}")
        if self.stack_test not in STACK_TEST:
            raise EnsError(f"--stack-test: unknown value {self.stack_test!r}; expected one of: {', '.join(STACK_TEST)}")
        return self

    def fit(self, logits, targets) -> "StackBlender":
        """logits: float (n_models, n_samples, n_classes); targets: int (n_samples,)."""
        self.check_params()
        logits = self._check_logits(logits, targets)
        targets = np.asarray(targets)
        self.n_classes_ = logits.shape[2]
        self.weights_ = None  # not a weighted mean of members
        self.optimised_ = "logloss"  # both meta-learners minimise it, whatever the metric
        if len(np.unique(targets)) == 1:  # a fold holding one class: nothing to learn
            self.meta_, self.constant_ = None, int(targets[0])
            return self
        self.meta_ = META_LEARNERS[self.meta](0).fit(features(logits), targets)
        self.constant_ = None
        return self

    def predict_proba(self, logits) -> np.ndarray:
        """Probabilities float64 (n_samples, n_classes); a class the meta-learner never saw gets 0."""
        self._check_fitted()
        logits = self._check_logits(logits)
        probs = np.zeros((logits.shape[1], self.n_classes_))
        if self.meta_ is None:
            probs[:, self.constant_] = 1.0
            return probs
        probs[:, self.meta_.classes_] = self.meta_.predict_proba(features(logits))
        return probs
