import numpy as np
import pytest

from ensemble.metrics import METRICS, accuracy, for_task, logloss, softmax, tag_decisions

SINGLE = for_task("single_label")


@pytest.mark.parametrize("name", SINGLE)
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


def random_case(seed: int, n_classes: int, n: int = 300):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), targets] += rng.random(n) * 2  # better than chance, not perfect
    if seed % 2:  # ties: coarse probabilities
        logits = np.round(logits)
    return targets, softmax(logits)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_every_metric_matches_scikit_learn(seed, n_classes):
    from sklearn import metrics as sk

    targets, probs = random_case(seed, n_classes)
    labels = np.arange(n_classes)
    predicted = probs.argmax(axis=1)
    expected = {
        "accuracy": sk.accuracy_score(targets, predicted),
        "logloss": sk.log_loss(targets, probs, labels=labels),
        "f1_macro": sk.f1_score(targets, predicted, average="macro"),
        "auc": sk.roc_auc_score(targets, probs[:, 1]) if n_classes == 2 else sk.roc_auc_score(targets, probs, multi_class="ovr"),
        "qwk": sk.cohen_kappa_score(targets, predicted, weights="quadratic", labels=labels),
    }
    assert set(expected) == set(SINGLE)  # a new metric needs its reference here
    for name, value in expected.items():
        assert METRICS.get(name).score(targets, probs) == pytest.approx(value, abs=1e-9), name


@pytest.mark.parametrize("name", SINGLE)
def test_scoring_many_blends_at_once_matches_one_at_a_time(name):
    from ensemble.metrics import score_many

    metric = METRICS.get(name)
    targets, _ = random_case(0, 4)
    candidates = np.stack([random_case(seed, 4)[1] for seed in range(3)])
    expected = [metric.score(targets, candidate) for candidate in candidates]
    np.testing.assert_allclose(score_many(metric, targets, candidates), expected, rtol=1e-9)


def multi_label_case(seed: int, n_tags: int = 6, n: int = 300):
    """0/1 targets with at least one tag an image; probabilities better than chance, some coarse (ties)."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, n_tags)) < 0.3).astype(np.float32)
    targets[np.arange(n), rng.integers(0, n_tags, n)] = 1
    probs = np.clip(targets * 0.4 + rng.random((n, n_tags)) * 0.7, 0, 1)
    return targets, (np.round(probs, 1) if seed % 2 else probs)


@pytest.mark.parametrize("seed", range(4))
def test_every_multi_label_metric_matches_scikit_learn(seed):
    from sklearn import metrics as sk

    targets, probs = multi_label_case(seed)
    decided = tag_decisions(probs)
    expected = {
        "f1_samples": sk.f1_score(targets, decided, average="samples"),
        "f2_samples": sk.fbeta_score(targets, decided, beta=2, average="samples"),
        "f1_macro": sk.f1_score(targets, decided, average="macro", zero_division=0),
        "map": sk.average_precision_score(targets, probs, average="macro"),
        "logloss": np.mean([sk.log_loss(targets[:, tag], probs[:, tag], labels=[0, 1]) for tag in range(targets.shape[1])]),
    }
    assert set(expected) == set(for_task("multi_label"))  # a new metric needs its reference here
    for name, value in expected.items():
        assert METRICS.get(name).score(targets, probs) == pytest.approx(value, abs=1e-9), name


def test_an_image_with_no_tag_above_the_threshold_gets_its_likeliest():
    probs = np.array([[0.2, 0.4, 0.1], [0.9, 0.6, 0.1]])
    np.testing.assert_array_equal(tag_decisions(probs), [[False, True, False], [True, True, False]])


@pytest.mark.parametrize("seed", range(3))
def test_every_regression_metric_matches_scikit_learn(seed):
    from sklearn import metrics as sk

    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 10, 200).astype(float)
    values = (targets + rng.normal(0, 1.5, 200))[:, None]
    expected = {
        "rmse": np.sqrt(sk.mean_squared_error(targets, values[:, 0])),
        "mae": sk.mean_absolute_error(targets, values[:, 0]),
        "r2": sk.r2_score(targets, values[:, 0]),
    }
    assert set(expected) == set(for_task("regression"))
    for name, value in expected.items():
        metric = METRICS.get(name)
        assert metric.score(targets, values) == pytest.approx(value, abs=1e-9), name
        assert metric.better(metric.score(targets, targets[:, None]), metric.score(targets, values)), name
