"""A fitted blend recorded as JSON and rebuilt predicts exactly as the fitted one did: every
method of every task kind, thresholds and biases, each stacker's meta-learner (blend/recorded.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ensemble.blend import METHODS
from ensemble.blend.nested import fit
from ensemble.blend.recorded import apply, member_means, record, restore
from ensemble.blend.run import make_blender
from ensemble.errors import EnsError

N_MODELS, N_TRAIN, N_TEST, K = 3, 60, 25, 3


def task_data(task: str, rng):
    """(oof logits (n_models, n_train, n_columns), targets, fold_of, test fold stacks)."""
    if task == "single_label":
        targets = np.arange(N_TRAIN) % 4
        oof = rng.normal(size=(N_MODELS, N_TRAIN, 4)) + 2 * np.eye(4)[targets] * rng.uniform(0.2, 1.5, size=(N_MODELS, 1, 1))
        columns = 4
    elif task == "multi_label":
        targets = (rng.random((N_TRAIN, 3)) < 0.4).astype(np.float64)
        oof = rng.normal(size=(N_MODELS, N_TRAIN, 3)) + (2 * targets - 1) * rng.uniform(0.2, 1.5, size=(N_MODELS, 1, 1))
        columns = 3
    else:
        targets = rng.uniform(0, 9, size=N_TRAIN)
        oof = (targets + rng.normal(size=(N_MODELS, N_TRAIN)) * rng.uniform(0.5, 2, size=(N_MODELS, 1)))[:, :, None]
        columns = 1
    folds = [rng.normal(size=(N_MODELS, N_TEST, columns)).astype(np.float32) * (3 if task == "regression" else 1) for _ in range(K)]
    return oof.astype(np.float32), targets, np.arange(N_TRAIN) % K, folds


METHOD_OPTIONS = [("mean", {}), ("rank", {}), ("power", {"power": 3.0}), ("weighted", {}), ("hill", {"hill_steps": 7}), ("stack", {}),
                  ("stack", {"meta": "lgbm"}), ("stack", {"stack_test": "mean-logits"})]
# (task, metric, tune): untuned; single-label biases for macro F1; multi-label F1 always tunes one
# threshold for every tag, and --tune-thresholds one per tag; a regression has nothing to tune.
DECISION_CASES = [("single_label", "logloss", False), ("single_label", "f1_macro", True), ("multi_label", "f1_samples", False),
                  ("multi_label", "f1_samples", True), ("regression", "rmse", False)]
CASES = [
    (task, method, options, metric, tune)
    for task, metric, tune in DECISION_CASES
    for method, options in METHOD_OPTIONS
    if not (task == "regression" and method in ("rank", "power"))
] + [("single_label", "hill", {"hill_steps": 5}, "qwk", True)]


@pytest.mark.parametrize("task, method, options, metric, tune", CASES)
def test_recorded_blend_predicts_as_the_fitted_one(task, method, options, metric, tune):
    rng = np.random.default_rng(7)
    oof, targets, fold_of, fold_stacks = task_data(task, rng)
    blender = fit(make_blender(method, metric, options, tune, task), oof, targets, fold_of)
    document = json.loads(json.dumps({"name": "b", "fitted": record(blender, method)}))  # through JSON text, as NAME.json is
    rebuilt = restore(document, "b.json")
    assert type(rebuilt) is type(blender)
    np.testing.assert_array_equal(apply(rebuilt, fold_stacks), apply(blender, fold_stacks))
    np.testing.assert_array_equal(rebuilt.predict_proba(oof), blender.predict_proba(oof))


def test_member_means_sum_in_float64_and_cast_once():
    folds = [np.full((1, 2, 1), value, dtype=np.float32) for value in (0.1, 0.2, 0.4)]
    expected = ((np.float64(np.float32(0.1)) + np.float32(0.2) + np.float32(0.4)) / 3)
    assert member_means(folds).dtype == np.float32 and member_means(folds)[0, 0, 0] == np.float32(expected)


@pytest.mark.parametrize(
    "document, message",
    [
        ({"name": "old", "method": "mean"}, r"old\.json: written by an older ens, without the blend's fitted parameters; run `ens blend -n old --force`"),
        ({"name": "x", "fitted": {"format": 99}}, r"x\.json: blend record format 99; this ens reads format 1"),
    ],
)
def test_unrecorded_blends_are_refused(document, message):
    with pytest.raises(EnsError, match=message):
        restore(document, f"{document['name']}.json")


def test_every_method_is_covered():
    assert {case[1] for case in CASES} == set(METHODS.names())
