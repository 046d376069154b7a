import numpy as np
import pytest

from ensemble import metrics
from ensemble.blend import METHODS
from ensemble.errors import EnsError


def members(seed=0, n_models=3, n=60, n_classes=4):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n_models, n, n_classes)).astype(np.float32)
    for model in range(n_models):  # each member right on a different share of rows
        right = rng.random(n) < 0.4 + 0.2 * model
        logits[model, right, targets[right]] += 3
    return logits, targets


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_weights_sum_to_one_and_beats_or_ties_the_worst_member(name):
    logits, targets = members()
    before = logits.copy()
    blender = METHODS.get(name)().fit(logits, targets)
    np.testing.assert_array_equal(logits, before)  # inputs are never modified
    assert blender.weights_.sum() == pytest.approx(1) and (blender.weights_ >= 0).all()
    probs = blender.predict_proba(logits)
    assert probs.shape == (60, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1)
    for metric in metrics.METRICS.names():
        metric = metrics.get(metric)
        member_scores = [metric.score(targets, metrics.softmax(member)) for member in logits]
        worst = min(member_scores) if metric.greater_is_better else max(member_scores)
        assert not metric.better(worst, metric.score(targets, probs)), metric.name


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_follows_the_estimator_contract(name):
    from sklearn.base import clone

    blender = METHODS.get(name)()
    with pytest.raises(EnsError, match="not fitted"):
        blender.predict_proba(np.zeros((1, 2, 2)))
    copy = clone(blender)
    assert type(copy) is type(blender) and copy.get_params() == blender.get_params()
    with pytest.raises(EnsError, match=r"must be \(n_models, n_samples, n_classes\)"):
        blender.fit(np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(EnsError, match="NaN"):
        blender.fit(np.full((1, 2, 2), np.nan), np.zeros(2))


def test_mean_is_the_average_of_probabilities():
    logits, targets = members()
    probs = METHODS.get("mean")().fit(logits, targets).predict_proba(logits)
    np.testing.assert_allclose(probs, metrics.softmax(logits).mean(axis=0))


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(EnsError, match="unknown blend method 'best'; expected one of: mean"):
        METHODS.get("best")
