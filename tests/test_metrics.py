import numpy as np
import pytest

from ensemble.metrics import METRICS, accuracy, logloss, softmax


@pytest.mark.parametrize("name", METRICS.names())
def test_every_metric_prefers_the_right_answer(name):
    metric = METRICS.get(name)
    targets = np.array([0, 1, 2, 1])
    right = np.eye(3)[targets] * 0.9 + 0.1 / 3
    wrong = np.eye(3)[(targets + 1) % 3] * 0.9 + 0.1 / 3
    assert metric.better(metric.score(targets, right), metric.score(targets, wrong))
    assert not metric.better(metric.score(targets, wrong), metric.score(targets, right))


def test_known_values():
    targets = np.array([0, 1])
    probs = np.array([[0.8, 0.2], [0.6, 0.4]])
    assert accuracy(targets, probs) == 0.5
    assert logloss(targets, probs) == pytest.approx(-(np.log(0.8) + np.log(0.4)) / 2)
    assert np.isfinite(logloss(targets, np.array([[0.0, 1.0], [1.0, 0.0]])))  # clipped, not inf


def test_softmax_is_stable_and_sums_to_one():
    probs = softmax(np.array([[1000.0, 0.0], [-1000.0, -1000.0]]))
    np.testing.assert_allclose(probs, [[1.0, 0.0], [0.5, 0.5]])
