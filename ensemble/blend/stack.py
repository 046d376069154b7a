"""Stacking: a meta-learner on the members' OOF outputs (Wolpert, "Stacked Generalization",
1992). Base models are never retrained; only the meta-learner is fit.

Per task kind (kinds.py), the meta-learner and what it reads:
- single_label: one classifier on every member's log-probabilities of every class;
- multi_label: one classifier per tag, on the members' logits for that tag alone: a few
  features a tag, so it stays a calibrated blend of that tag's members (with one member it is
  Platt scaling) and cannot overfit on the other tags' columns, which in a competition of 28
  tags and 10 members would be 280 features a tag;
- regression: a ridge regression on the members' values, standardised (so the penalty does
  not depend on the target's units).

Its honest score comes from nested cross-validation over the members' own folds (see
nested.py): the score printed in-sample is optimistic, the out-of-fold one is not.

Test time: every OOF row came from one fold model, while a member's test.npz averages its
fold models, which makes test logits smoother than anything the meta-learner saw and no CV
can see that shift. So by default (`stack_test="per-fold"`) run.py applies the meta-learner
to each fold model's test logits and averages the probabilities; "mean-logits" applies it
once to the averaged test logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ensemble.blend import kinds
from ensemble.blend.base import Blender
from ensemble.errors import EnsError
from ensemble.metrics import log_softmax

FLOOR = -15.0  # log-probabilities below this carry no information and slow the solver
LOGIT_LIMIT = 15.0  # likewise a tag's logit beyond +-15: its probability is within 3e-7 of 0 or 1


def logistic_regression(seed: int):
    """A logistic regression on standardised features. Unscaled, on six members' log-probabilities
    of nine classes (2,000 rows of the emoji competition; a member and its TTA copy nearly
    collinear), lbfgs took 1,207 iterations a fit and `ens blend --method stack` 92 s; standardised,
    111 iterations and 8 s, and the blend's out-of-fold accuracy 0.675 against 0.657
    (benchmarks/RESULTS.md)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), unscaled_logistic_regression(seed))


def unscaled_logistic_regression(seed: int):
    """The logistic meta-learner before standardisation, refitted for a blend recorded with it
    (a teacher's nested folds must learn what the recorded blend learnt)."""
    from sklearn.linear_model import LogisticRegression

    # lbfgs does not draw random numbers today; the seed keeps it so if the solver changes.
    return LogisticRegression(C=1.0, max_iter=2000, random_state=seed)


def lightgbm_module():
    try:
        import lightgbm
    except ImportError:
        raise EnsError("--meta lgbm needs lightgbm, which is not installed: pip install 'ens[lgbm]'") from None
    return lightgbm


LGBM_PARAMS = dict(n_estimators=200, learning_rate=0.05, num_leaves=15, min_child_samples=10, subsample=0.8, subsample_freq=1, colsample_bytree=0.8, verbose=-1)


def lightgbm_classifier(seed: int):
    return lightgbm_module().LGBMClassifier(**LGBM_PARAMS, random_state=seed)


def lightgbm_regressor(seed: int):
    return lightgbm_module().LGBMRegressor(**LGBM_PARAMS, random_state=seed)


def ridge(seed: int):
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), Ridge(alpha=1.0))


META_LEARNERS: dict[str, Callable] = {"logreg": logistic_regression, "lgbm": lightgbm_classifier}
VALUE_META_LEARNERS: dict[str, Callable] = {"ridge": ridge, "lgbm": lightgbm_regressor}
STACK_TEST = ("per-fold", "mean-logits")


def features(logits: np.ndarray) -> np.ndarray:
    """float64 (n_samples, n_models * n_classes): every member's log-softmax, side by side."""
    return np.concatenate([np.maximum(log_softmax(member_logits), FLOOR) for member_logits in logits], axis=1)


def tag_features(logits: np.ndarray, tag: int) -> np.ndarray:
    """float64 (n_samples, n_models): every member's logit for one tag."""
    return np.clip(np.asarray(logits[:, :, tag], dtype=np.float64).T, -LOGIT_LIMIT, LOGIT_LIMIT)


def value_features(logits: np.ndarray) -> np.ndarray:
    """float64 (n_samples, n_models): every member's value."""
    return np.asarray(logits[:, :, 0], dtype=np.float64).T


# --- one way of stacking per task kind: fit(learner, logits, targets) -> (meta, constant);
# predict(meta, constant, logits, n_columns) -> float64 (n_samples, n_columns) ------------------

def fit_classes(learner: Callable, logits: np.ndarray, targets: np.ndarray):
    if len(np.unique(targets)) == 1:  # a fold holding one class: nothing to learn
        return None, int(targets[0])
    return learner(0).fit(features(logits), targets), None


def predict_classes(meta, constant, logits: np.ndarray, n_classes: int) -> np.ndarray:
    """A class the meta-learner never saw gets 0."""
    probs = np.zeros((logits.shape[1], n_classes))
    if meta is None:
        probs[:, constant] = 1.0
        return probs
    probs[:, meta.classes_] = meta.predict_proba(features(logits))
    return probs


def fit_tags(learner: Callable, logits: np.ndarray, targets: np.ndarray):
    """meta: one classifier per tag (None where the rows hold one value of it); constant:
    float64 (n_tags,), that value there (NaN elsewhere)."""
    metas, constants = [], np.full(logits.shape[2], np.nan)
    for tag in range(logits.shape[2]):
        present = np.asarray(targets[:, tag] > 0.5, dtype=np.int64)
        if present.min() == present.max():  # a tag always or never present in these rows
            metas.append(None)
            constants[tag] = float(present[0])
        else:
            metas.append(learner(0).fit(tag_features(logits, tag), present))
    return metas, constants


def predict_tags(metas, constants, logits: np.ndarray, n_tags: int) -> np.ndarray:
    probs = np.empty((logits.shape[1], n_tags))
    for tag, meta in enumerate(metas):
        probs[:, tag] = constants[tag] if meta is None else meta.predict_proba(tag_features(logits, tag))[:, 1]
    return probs


def fit_values(learner: Callable, logits: np.ndarray, targets: np.ndarray):
    return learner(0).fit(value_features(logits), np.asarray(targets, dtype=np.float64)), None


def predict_values(meta, constant, logits: np.ndarray, n_columns: int) -> np.ndarray:
    return np.asarray(meta.predict(value_features(logits)), dtype=np.float64).reshape(-1, 1)


@dataclass(frozen=True)
class Stacking:
    """learners: the meta-learners by --meta name, the first the default; optimised: what they minimise."""

    learners: dict[str, Callable]
    fit: Callable
    predict: Callable
    optimised: str


STACKING = {
    "single_label": Stacking(META_LEARNERS, fit_classes, predict_classes, "logloss"),
    "multi_label": Stacking(META_LEARNERS, fit_tags, predict_tags, "logloss"),
    "regression": Stacking(VALUE_META_LEARNERS, fit_values, predict_values, "rmse"),
}


class StackBlender(Blender):
    """meta: "auto" (the kind's first: logreg, or ridge for a regression), "logreg" or "ridge"
    (scikit-learn), or "lgbm" (lightgbm, an optional extra); stack_test: "per-fold" or
    "mean-logits", how run.py applies it to test logits. scaled: logreg on standardised features
    (False only for a blend recorded before they were, recorded.py)."""

    def __init__(self, meta: str = "auto", stack_test: str = "per-fold", task: str = "single_label", scaled: bool = True):
        self.meta = meta
        self.stack_test = stack_test
        self.task = task
        self.scaled = scaled

    @property
    def applies_per_fold_model(self) -> bool:
        return self.stack_test == "per-fold"

    def _stacking(self) -> Stacking:
        return STACKING[kinds.get(self.task).name]

    def check_options(self) -> "StackBlender":
        learners = self._stacking().learners
        if self.meta != "auto" and self.meta not in learners:
            default = next(iter(learners))
            raise EnsError(
                f"--meta: unknown meta-learner {self.meta!r}; expected one of: {', '.join(learners)} "
                f"(auto: {default}, for {kinds.get(self.task).noun})"
            )
        if self.stack_test not in STACK_TEST:
            raise EnsError(f"--stack-test: unknown value {self.stack_test!r}; expected one of: {', '.join(STACK_TEST)}")
        return self

    def fit(self, logits, targets) -> "StackBlender":
        """logits: float (n_models, n_samples, n_classes); targets: as the task kind has them."""
        self.check_params()
        logits = self._check_logits(logits, targets)
        stacking = self._stacking()
        name = next(iter(stacking.learners)) if self.meta == "auto" else self.meta
        learner = unscaled_logistic_regression if name == "logreg" and not self.scaled else stacking.learners[name]
        self.n_classes_ = logits.shape[2]
        self.weights_ = None  # not a weighted mean of members
        self.optimised_ = stacking.optimised  # every meta-learner minimises it, whatever the metric
        self.meta_, self.constant_ = stacking.fit(learner, logits, np.asarray(targets))
        return self

    def predict_proba(self, logits) -> np.ndarray:
        """Probabilities (or values) float64 (n_samples, n_classes)."""
        self._check_fitted()
        return self._stacking().predict(self.meta_, self.constant_, self._check_logits(logits), self.n_classes_)

    def meta_text(self) -> str | None:
        """The fitted meta-learner as the submission's JSON records it (None: a constant)."""
        self._check_fitted()
        if not isinstance(self.meta_, list):
            return None if self.meta_ is None else repr(self.meta_)
        fitted = [meta for meta in self.meta_ if meta is not None]
        return f"{fitted[0]!r}, one per tag ({len(fitted)} of {len(self.meta_)}; the others constant)" if fitted else None
