"""A fitted blend as plain JSON, and the blend rebuilt from it to apply to new member logits.

`ens blend` records under "fitted" in submissions/NAME.json every number the blend's
predictions depend on: the weights of a weighted mean (mean, rank, power, weighted, hill's
selection counts made weights), a stacker's meta-learner (meta_records.py: coefficients and
intercepts, a scaler's constants, LightGBM's model text), tuned biases or thresholds. No
pickle: the record reads anywhere, and nothing is refitted at prediction time.

`ens predict --blend` and an exported bundle apply it the way `ens blend` applied the fitted
blender to the competition's test logits (run.test_probabilities): each member's fold logits
are averaged as artifacts/writer.summarize averages them (float64 sum, one cast to float32),
and a stacker that applies per fold model (stack.py) predicts each fold's logits and the
probabilities are averaged. Rank blends rank within the rows predicted: on other rows than
the competition's test set their numbers are ranks among those rows.
"""

from __future__ import annotations

import numpy as np

from ensemble.blend import METHODS
from ensemble.blend.base import Blender
from ensemble.blend.meta_records import record_meta, restore_meta
from ensemble.blend.stack import StackBlender
from ensemble.blend.thresholds import ThresholdTuned
from ensemble.errors import EnsError

FORMAT = 1  # the record's layout; a reader refuses one it does not know


def record_state(blender: Blender) -> dict:
    """The fitted state of a method (not a ThresholdTuned wrapper) as JSON values."""
    if isinstance(blender, StackBlender):
        multi = isinstance(blender.meta_, list)
        constant = blender.constant_
        return {
            "n_classes": int(blender.n_classes_),
            "meta": [record_meta(meta) for meta in blender.meta_] if multi else record_meta(blender.meta_),
            "constant": [None if np.isnan(value) else float(value) for value in constant] if multi else constant,
        }
    return {"weights": np.asarray(blender.weights_, dtype=np.float64).tolist()}


def restore_state(blender: Blender, state: dict) -> Blender:
    """`blender` (unfitted, its parameters set) given the fitted attributes `state` records."""
    if isinstance(blender, StackBlender):
        multi = isinstance(state["meta"], list)
        blender.n_classes_ = state["n_classes"]
        blender.weights_ = None
        blender.meta_ = [restore_meta(meta) for meta in state["meta"]] if multi else restore_meta(state["meta"])
        blender.constant_ = np.array([np.nan if value is None else value for value in state["constant"]]) if multi else state["constant"]
        metas = state["meta"] if multi else [state["meta"]]
        if any(meta and meta["learner"] == "logreg" for meta in metas):  # recorded before standardisation: refits as it was
            blender.scaled = False
        return blender
    blender.weights_ = np.asarray(state["weights"], dtype=np.float64)
    return blender


def record(blender: Blender, method: str) -> dict:
    """NAME.json's "fitted": {format, method, task, params, state, decisions, applies_per_fold_model}."""
    tuned = isinstance(blender, ThresholdTuned)
    base = blender.blender_ if tuned else blender
    return {
        "format": FORMAT,
        "method": method,
        "task": base.task,
        "params": base.get_params(),
        "state": record_state(base),
        "decisions": {"metric": blender.metric, "per_column": blender.per_column, "tuned": blender.tuned_.tolist()} if tuned else None,
        "applies_per_fold_model": bool(blender.applies_per_fold_model),
    }


def restore(document: dict, where: str) -> Blender:
    """The fitted blender a submission JSON records; where: its path, for messages. A JSON
    written before blends were recorded is refused: its parameters cannot be known again."""
    fitted = document.get("fitted")
    if not isinstance(fitted, dict):
        name = document.get("name", "NAME")
        raise EnsError(f"{where}: written by an older ens, without the blend's fitted parameters; run `ens blend -n {name} --force` with its options again")
    if fitted.get("format") != FORMAT:
        raise EnsError(f"{where}: blend record format {fitted.get('format')!r}; this ens reads format {FORMAT}")
    params = dict(fitted["params"])
    blender = restore_state(METHODS.get(fitted["method"])(**params), fitted["state"])
    decisions = fitted["decisions"]
    if decisions is None:
        return blender
    wrapper = ThresholdTuned(blender, decisions["metric"], decisions["per_column"])
    wrapper.blender_ = blender
    wrapper.weights_ = blender.weights_
    wrapper.tuned_ = np.asarray(decisions["tuned"], dtype=np.float64)
    return wrapper


def member_means(fold_stacks: list[np.ndarray]) -> np.ndarray:
    """float32 (n_models, n, n_columns): the mean over fold models, summed in float64 and cast
    once, as artifacts/writer.summarize makes test.npz. fold_stacks: one float32 (n_models, n,
    n_columns) per fold, in fold order."""
    total = np.zeros(fold_stacks[0].shape, dtype=np.float64)
    for stack in fold_stacks:
        total += stack
    return (total / len(fold_stacks)).astype(np.float32)


def apply(blender: Blender, fold_stacks: list[np.ndarray]) -> np.ndarray:
    """float64 (n, n_columns): probabilities (or values), decisions applied, as `ens blend`
    made the submission's."""
    if not blender.applies_per_fold_model:
        return blender.predict_proba(member_means(fold_stacks))
    return np.mean([blender.predict_proba(stack) for stack in fold_stacks], axis=0)
