"""A stacker's fitted meta-learner as plain JSON (numbers and text, never a pickle), and the
predictor rebuilt from it, so that a recorded blend applies to new logits without a refit.

Each kind of fitted meta-learner has a record (what its predictions depend on, nothing else)
and a restore. Linear ones are rebuilt as the scikit-learn estimators they were, their
fitted attributes set from the record: predictions then go through scikit-learn's own code
and agree with the fitted estimator's bit for bit. LightGBM records `model_to_string()`, its
own text format, and is rebuilt as a Booster behind the two methods stack.py calls
(`predict_proba` with `classes_`, or `predict`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ensemble.errors import EnsError
from ensemble.registry import Registry


def as_list(values) -> list:
    """JSON's float text is Python's repr, which reads back to the same float64."""
    return np.asarray(values, dtype=np.float64).tolist()


def record_logreg(meta) -> dict:
    return {"classes": np.asarray(meta.classes_).tolist(), "coef": as_list(meta.coef_), "intercept": as_list(meta.intercept_)}


def restore_logreg(record: dict):
    from sklearn.linear_model import LogisticRegression

    meta = LogisticRegression()
    meta.classes_ = np.asarray(record["classes"])
    meta.coef_ = np.asarray(record["coef"], dtype=np.float64)
    meta.intercept_ = np.asarray(record["intercept"], dtype=np.float64)
    meta.n_features_in_ = meta.coef_.shape[1]
    return meta


def record_scaler(scaler) -> dict:
    return {"mean": as_list(scaler.mean_), "scale": as_list(scaler.scale_), "var": as_list(scaler.var_)}


def restore_scaler(record: dict):
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()
    scaler.mean_, scaler.scale_, scaler.var_ = (np.asarray(record[key], dtype=np.float64) for key in ("mean", "scale", "var"))
    scaler.n_features_in_ = len(scaler.mean_)
    scaler.n_samples_seen_ = 1
    return scaler


def record_scaled_logreg(meta) -> dict:
    return {**record_scaler(meta[0]), **record_logreg(meta[-1])}


def restore_scaled_logreg(record: dict):
    """The standardised logistic regression of stack.py (a record before it: "logreg", unscaled)."""
    from sklearn.pipeline import make_pipeline

    return make_pipeline(restore_scaler(record), restore_logreg(record))


def record_ridge(meta) -> dict:
    ridge = meta[-1]
    return {**record_scaler(meta[0]), "coef": as_list(ridge.coef_), "intercept": float(ridge.intercept_)}


def restore_ridge(record: dict):
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    scaler, ridge = restore_scaler(record), Ridge(alpha=1.0)
    ridge.n_features_in_ = scaler.n_features_in_
    ridge.coef_ = np.asarray(record["coef"], dtype=np.float64)
    ridge.intercept_ = float(record["intercept"])
    return make_pipeline(scaler, ridge)


def record_lgbm(meta) -> dict:
    classes = getattr(meta, "classes_", None)
    return {"classes": None if classes is None else np.asarray(classes).tolist(), "model": meta.booster_.model_to_string()}


class BoosterPredictor:
    """A LightGBM booster read back from its text, predicting as LGBMClassifier and
    LGBMRegressor do (a binary classifier's booster gives the second class's probability)."""

    def __init__(self, booster, classes: list | None):
        self.booster = booster
        self.classes_ = None if classes is None else np.asarray(classes)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        probs = self.booster.predict(features)
        return np.vstack((1.0 - probs, probs)).T if probs.ndim == 1 else probs

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.booster.predict(features)


def restore_lgbm(record: dict):
    from ensemble.blend.stack import lightgbm_module

    return BoosterPredictor(lightgbm_module().Booster(model_str=record["model"]), record["classes"])


# name -> (record(fitted meta-learner) -> dict, restore(dict) -> a predictor stack.py can call)
META_RECORDS: Registry[tuple[Callable, Callable]] = Registry("recorded meta-learner")
META_RECORDS.register("logreg")((record_logreg, restore_logreg))
META_RECORDS.register("scaled_logreg")((record_scaled_logreg, restore_scaled_logreg))
META_RECORDS.register("ridge")((record_ridge, restore_ridge))
META_RECORDS.register("lgbm")((record_lgbm, restore_lgbm))


def kind_of(meta) -> str:
    """Which record a fitted meta-learner takes (stack.py's learners: a standardised logreg or ridge pipeline, lgbm)."""
    name = type(meta).__name__
    if name == "LogisticRegression":
        return "logreg"
    if name == "Pipeline":
        return "scaled_logreg" if type(meta[-1]).__name__ == "LogisticRegression" else "ridge"
    if name.startswith("LGBM"):
        return "lgbm"
    raise EnsError(f"cannot record a meta-learner of type {name}; recorded ones: {', '.join(META_RECORDS.names())}")


def record_meta(meta) -> dict | None:
    """None (a constant, nothing fitted) or {"learner": name, **its numbers}."""
    if meta is None:
        return None
    learner = kind_of(meta)
    return {"learner": learner, **META_RECORDS.get(learner)[0](meta)}


def restore_meta(record: dict | None):
    if record is None:
        return None
    return META_RECORDS.get(record["learner"])[1](record)
