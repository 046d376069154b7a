"""Blend methods on multi-label and regression logits: every method on every task kind, or its
one-line refusal; least squares against scipy's NNLS; thresholds tuned and scored out of fold;
the stacker per tag."""

import numpy as np
import pytest

from ensemble import metrics, tasks
from ensemble.blend import METHODS
from ensemble.blend.nested import out_of_fold_probabilities
from ensemble.blend.run import make_blender
from ensemble.blend.thresholds import ThresholdTuned, apply_thresholds, tune_thresholds
from ensemble.errors import EnsError
from ensemble.tasks import sigmoid


def tag_members(seed=0, n_models=3, n=240, n_tags=4):
    """Member m's logit of each tag is the truth (+-1) times 0.6 + 0.6 m, plus noise: each better than the last."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, n_tags)) < 0.35).astype(np.float32)
    targets[targets.sum(axis=1) == 0, 0] = 1  # every image has a tag, as train.csv's do
    strength = 0.6 + 0.6 * np.arange(n_models)
    logits = (rng.normal(size=(n_models, n, n_tags)) + (2 * targets - 1) * strength[:, None, None]).astype(np.float32)
    return logits, targets


def value_members(seed=0, n_models=3, n=240):
    """Counts 0-9 and members that see them with noise of standard deviation 0.5, 1, 2, ..."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 10, n).astype(np.float64)
    noise = 0.5 * 2.0 ** np.arange(n_models)
    logits = (targets[None, :, None] + rng.normal(size=(n_models, n, 1)) * noise[:, None, None]).astype(np.float32)
    return logits, targets


def class_members(seed=0, n_models=3, n=240, n_classes=4):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n_models, n, n_classes)).astype(np.float32)
    for model in range(n_models):
        right = rng.random(n) < 0.4 + 0.2 * model
        logits[model, right, targets[right]] += 3
    return logits, targets


MEMBERS = {"single_label": class_members, "multi_label": tag_members, "regression": value_members}


def blender(name, task, metric=None, **options):
    """METHODS' `name` for `task`, with the task's own metric where the method takes one."""
    method = METHODS.get(name)
    if "metric" in method().get_params():
        options["metric"] = metric or tasks.get(task).default_metric
    return method(task=task, **options)


# The metrics a method is judged on in the sweep below: all of the kind's, except that a rank
# blend's outputs are shares of rows, not probabilities (a 0.5 threshold and a log loss on them
# mean nothing; `ens blend` tunes the threshold).
def judged(name, task):
    every = metrics.for_task(task)
    if name == "rank" and task == "multi_label":
        return [metric for metric in every if not metrics.get(metric).thresholded and metric != "logloss"]
    return every


@pytest.mark.parametrize("task", sorted(MEMBERS))
@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_blends_every_kind_or_refuses_it_in_one_line(name, task):
    logits, targets = MEMBERS[task]()
    before = logits.copy()
    method = blender(name, task)
    if task in type(method).refused:
        with pytest.raises(EnsError, match=f"^{name} averaging does not apply to a regression: [^\n]*$"):
            method.fit(logits, targets)
        with pytest.raises(EnsError, match=f"{name} averaging does not apply to a regression: .*; for a regression use --method hill, mean, stack, weighted$"):
            make_blender(name, "rmse", {}, False, task)
        return
    method.fit(logits, targets)
    np.testing.assert_array_equal(logits, before)  # inputs are never modified
    if name == "stack":
        assert method.weights_ is None
    else:
        assert method.weights_.sum() == pytest.approx(1) and (method.weights_ >= 0).all()
    outputs = method.predict_proba(logits)
    assert outputs.shape == logits.shape[1:] and np.isfinite(outputs).all()
    if task == "multi_label":
        assert ((outputs >= 0) & (outputs <= 1)).all()
    for metric in judged(name, task):
        metric = metrics.get(metric)
        member_scores = [metric.score(targets, tasks.get(task).outputs(member)) for member in logits]
        worst = min(member_scores) if metric.greater_is_better else max(member_scores)
        assert not metric.better(worst, metric.score(targets, outputs)), metric.name
    out_of_fold = out_of_fold_probabilities(method, logits, targets, np.arange(len(targets)) % 3)
    assert out_of_fold.shape == outputs.shape


@pytest.mark.parametrize("task", sorted(MEMBERS))
@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_takes_its_task_through_clone(name, task):
    from sklearn.base import clone

    method = blender(name, task)
    copy = clone(method)
    assert copy.get_params() == method.get_params() and copy.task == task


def test_mean_blends_what_the_kind_means():
    logits, targets = tag_members()
    probs = METHODS.get("mean")(task="multi_label").fit(logits, targets).predict_proba(logits)
    np.testing.assert_allclose(probs, sigmoid(logits).mean(axis=0))
    logits, targets = value_members()
    values = METHODS.get("mean")(task="regression").fit(logits, targets).predict_proba(logits)
    np.testing.assert_allclose(values, logits.astype(np.float64).mean(axis=0))


def test_multi_label_rank_and_power_treat_each_tag_as_a_yes_and_a_no():
    probs = np.array([[[0.7, 0.2], [0.2, 0.9], [0.6, 0.5]], [[0.9, 0.4], [0.5, 0.1], [0.4, 0.3]]])
    logits = np.log(probs) - np.log1p(-probs)
    targets = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    # Tag 0: member 0 ranks 0.7, 0.2, 0.6 as 3, 1, 2; member 1 ranks 0.9, 0.5, 0.4 as 3, 2, 1.
    # Tag 1: member 0: 0.2, 0.9, 0.5 -> 1, 3, 2; member 1: 0.4, 0.1, 0.3 -> 3, 1, 2.
    mean_rank = np.array([[3, 2], [1.5, 2], [1.5, 2]])
    rank = METHODS.get("rank")(task="multi_label").fit(logits, targets).predict_proba(logits)
    np.testing.assert_allclose(rank, mean_rank / 4)  # mean rank / (n_samples + 1)
    yes, no = (probs**2).mean(axis=0), ((1 - probs) ** 2).mean(axis=0)
    power = METHODS.get("power")(power=2, task="multi_label").fit(logits, targets).predict_proba(logits)
    np.testing.assert_allclose(power, yes / (yes + no))


# --- weighted ------------------------------------------------------------------------------

def test_regression_weights_are_scipys_nnls_when_the_targets_are_a_mix_of_the_members():
    from scipy.optimize import nnls

    rng = np.random.default_rng(3)
    values = rng.normal(size=(3, 200)) * 4 + 10
    targets = np.array([0.2, 0.0, 0.8]) @ values
    weights = METHODS.get("weighted")(metric="rmse", task="regression").fit(values[:, :, None], targets).weights_
    np.testing.assert_allclose(weights, [0.2, 0.0, 0.8], atol=1e-7)
    np.testing.assert_allclose(weights, nnls(values.T, targets)[0], atol=1e-7)


def test_regression_weights_are_the_best_on_the_simplex_where_plain_nnls_leaves_it():
    from scipy.optimize import nnls

    logits, targets = value_members(n=400)
    values = logits[:, :, 0].astype(np.float64)
    weights = METHODS.get("weighted")(metric="rmse", task="regression").fit(logits, targets).weights_
    assert weights.sum() == pytest.approx(1) and (weights >= 0).all()
    assert abs(nnls(values.T, targets)[0].sum() - 1) > 1e-3  # plain NNLS would scale the blend

    def squared_error(w):
        return np.sum((w @ values - targets) ** 2)

    grid = [np.array([a, b, 1 - a - b]) for a in np.linspace(0, 1, 51) for b in np.linspace(0, 1, 51) if a + b <= 1 + 1e-12]
    assert squared_error(weights) <= min(squared_error(np.clip(w, 0, None)) for w in grid) + 1e-9
    # Inverse-variance weights (noise 0.5, 1, 2) are what independent noise calls for: 16:4:1.
    np.testing.assert_allclose(weights, np.array([16, 4, 1]) / 21, atol=0.06)


def test_multi_label_weights_minimise_the_mean_binary_logloss():
    logits, targets = tag_members(n=300)
    weights = METHODS.get("weighted")(metric="f1_samples", task="multi_label").fit(logits, targets).weights_
    probs = sigmoid(logits)

    def loss(w):
        return metrics.logloss(targets, np.tensordot(w, probs, axes=1))

    grid = [np.array([a, b, 1 - a - b]) for a in np.linspace(0, 1, 21) for b in np.linspace(0, 1, 21) if a + b <= 1 + 1e-12]
    assert loss(weights) <= min(loss(np.clip(w, 0, None)) for w in grid) + 1e-7


# --- hill ----------------------------------------------------------------------------------

@pytest.mark.parametrize("metric", ["f1_macro", "logloss", "map", "f1_samples"])
def test_hill_on_tags_scores_the_blend_with_the_multi_label_metric(metric):
    """f1_macro has a single-label shortcut (of_labels) and logloss a batched single-label form:
    neither may be used on tags. The kept score is the metric of the blend the weights give."""
    logits, targets = tag_members()
    noise = np.random.default_rng(5).normal(size=logits.shape[1:]).astype(np.float32)[None] * 3
    hill = METHODS.get("hill")(metric=metric, task="multi_label").fit(np.concatenate([logits, noise]), targets)
    assert hill.weights_[-1] < 0.2, hill.weights_
    score = metrics.get(metric).score(targets, hill.predict_proba(np.concatenate([logits, noise])))
    assert hill.scores_[-1] == pytest.approx(score, abs=1e-5)


def test_hill_on_values_picks_the_precise_member_most():
    logits, targets = value_members()
    for metric in ("rmse", "mae", "r2"):
        weights = METHODS.get("hill")(metric=metric, task="regression").fit(logits, targets).weights_
        assert weights[0] == weights.max(), (metric, weights)


@pytest.mark.parametrize(
    "task, params, message",
    [
        ("regression", {"metric": "accuracy"}, "--metric: metric 'accuracy' does not apply to a regression competition; expected one of: mae, r2, rmse"),
        ("multi_label", {"metric": "qwk"}, "--metric: metric 'qwk' does not apply to a multi_label competition; expected one of: f1_macro, f1_samples"),
        ("single_label", {"metric": "rmse"}, "--metric: metric 'rmse' does not apply to a single_label competition"),
        ("ordinal", {}, "unknown task 'ordinal'; expected one of: multi_label, regression, single_label"),
    ],
)
def test_a_metric_of_another_kind_is_refused(task, params, message):
    for name in ("hill", "weighted"):
        with pytest.raises(EnsError, match=message):
            METHODS.get(name)(task=task, **params).check_params()


# --- stack ---------------------------------------------------------------------------------

def test_stack_fits_one_logistic_regression_per_tag_on_that_tags_logits():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    logits, targets = tag_members()
    targets = targets.copy()
    targets[:, 3] = 0  # a tag no image has: a constant, no regression
    stack = METHODS.get("stack")(task="multi_label").fit(logits, targets)
    assert len(stack.meta_) == 4 and stack.meta_[3] is None and stack.constant_[3] == 0
    for tag in range(3):
        assert stack.meta_[tag][-1].coef_.shape == (1, 3)  # three members' logits of this tag, no other
        by_hand = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=0)).fit(logits[:, :, tag].T.astype(np.float64), targets[:, tag])
        np.testing.assert_allclose(stack.predict_proba(logits)[:, tag], by_hand.predict_proba(logits[:, :, tag].T.astype(np.float64))[:, 1], rtol=1e-6)
    assert (stack.predict_proba(logits)[:, 3] == 0).all()
    assert stack.optimised_ == "logloss" and "one per tag (3 of 4" in stack.meta_text()


def test_stack_on_a_regression_is_ridge_on_the_standardised_values():
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    logits, targets = value_members()
    stack = METHODS.get("stack")(task="regression").fit(logits, targets)
    features = logits[:, :, 0].T.astype(np.float64)
    scaler = StandardScaler().fit(features)
    by_hand = Ridge(alpha=1.0).fit(scaler.transform(features), targets)
    np.testing.assert_allclose(stack.predict_proba(logits)[:, 0], by_hand.predict(scaler.transform(features)))
    assert stack.optimised_ == "rmse" and "Ridge" in stack.meta_text()


def test_stack_per_tag_is_scored_out_of_fold():
    """Member 1 copies tag 0's truth on fold 2 and is noise elsewhere: in sample the per-tag
    stacker trusts it there; out of fold, fold 2 is blended by a stacker that never saw it."""
    logits, targets = tag_members(n=600, n_models=2)
    fold_of = np.arange(600) % 3
    copied = fold_of == 2
    logits[1] = np.random.default_rng(9).normal(size=logits.shape[1:])
    logits[1, copied, 0] = (2 * targets[copied, 0] - 1) * 8
    stack = METHODS.get("stack")(task="multi_label")
    in_sample = stack.fit(logits, targets).predict_proba(logits)
    out_of_fold = out_of_fold_probabilities(stack, logits, targets, fold_of)
    honest = metrics.logloss(targets[copied, :1], sigmoid(logits[0, copied, :1]))
    assert metrics.logloss(targets[copied, :1], in_sample[copied, :1]) < honest - 0.1
    assert metrics.logloss(targets[copied, :1], out_of_fold[copied, :1]) > honest - 0.05


@pytest.mark.parametrize(
    "task, meta, message",
    [
        ("regression", "logreg", "--meta: unknown meta-learner 'logreg'; expected one of: ridge, lgbm (auto: ridge, for a regression)"),
        ("single_label", "ridge", "--meta: unknown meta-learner 'ridge'; expected one of: logreg, lgbm"),
        ("multi_label", "ridge", "--meta: unknown meta-learner 'ridge'; expected one of: logreg, lgbm"),
    ],
)
def test_stack_meta_learners_belong_to_their_kind(task, meta, message):
    with pytest.raises(EnsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        METHODS.get("stack")(meta=meta, task=task).check_params()


# --- thresholds ----------------------------------------------------------------------------

def separable_at(thresholds, n=600, seed=0):
    """Tag probabilities whose positives are all above the tag's threshold and negatives all below."""
    rng = np.random.default_rng(seed)
    thresholds = np.asarray(thresholds)
    targets = (rng.random((n, len(thresholds))) < 0.4).astype(np.float32)
    targets[targets.sum(axis=1) == 0, 0] = 1  # every image has a tag, as train.csv's do
    above = thresholds + (1 - thresholds) * rng.uniform(0.02, 1, size=targets.shape)
    below = thresholds * rng.uniform(0, 0.98, size=targets.shape)
    probs = np.where(targets > 0, above, below)
    return probs, targets


def test_a_threshold_decides_at_its_value():
    probs = np.array([[0.1, 0.29, 0.31, 0.9]]).T.repeat(2, axis=1)
    moved = apply_thresholds(probs, np.array([0.3, 0.05]))
    np.testing.assert_array_equal(moved[:, 0] > 0.5, [False, False, True, True])
    assert (moved[:, 1] > 0.5).all()
    np.testing.assert_allclose(apply_thresholds(probs, np.array([0.5, 0.5])), probs)


def test_global_threshold_tuning_recovers_a_known_threshold():
    probs, targets = separable_at([0.3, 0.3, 0.3])
    f1 = metrics.get("f1_samples")
    assert f1.score(targets, probs) < 0.95  # at 0.5, positives between 0.3 and 0.5 are missed
    thresholds = tune_thresholds(probs, targets, f1, per_tag=False)
    assert len(set(thresholds)) == 1 and abs(thresholds[0] - 0.3) <= 0.02
    assert f1.score(targets, apply_thresholds(probs, thresholds)) == pytest.approx(1.0)


def test_per_tag_threshold_tuning_recovers_each_tags_threshold():
    probs, targets = separable_at([0.2, 0.5, 0.7])
    thresholds = tune_thresholds(probs, targets, metrics.get("f1_macro"), per_tag=True)
    np.testing.assert_allclose(thresholds, [0.2, 0.5, 0.7], atol=0.021)


def test_thresholds_are_tuned_on_nested_out_of_fold_probabilities_and_scored_out_of_fold(monkeypatch):
    from ensemble.blend import thresholds

    logits, targets = tag_members(n=300)
    fold_of = np.arange(300) % 3
    tuned_on = []
    real = thresholds.tune_thresholds
    monkeypatch.setattr(thresholds, "tune_thresholds", lambda probs, *rest: tuned_on.append(probs) or real(probs, *rest))
    inner = METHODS.get("stack")(task="multi_label")
    tuned = ThresholdTuned(inner, "f1_samples", per_column=False).fit(logits, targets, fold_of)
    np.testing.assert_array_equal(tuned_on[0], out_of_fold_probabilities(METHODS.get("stack")(task="multi_label"), logits, targets, fold_of))
    assert tuned.blender_ is not inner and len(set(tuned.tuned_)) == 1
    key, value = tuned.recorded(("a", "b", "c", "d"))
    assert key == "thresholds" and value == tuned.tuned_[0]
    per_tag = ThresholdTuned(inner, "f1_samples", per_column=True).fit(logits, targets, fold_of)
    assert per_tag.recorded(("a", "b", "c", "d"))[1].keys() == {"a", "b", "c", "d"}


def test_a_tuned_threshold_is_honest_out_of_fold_on_noise():
    """Pure noise: thresholds tuned per tag on all rows find a better F1 in sample than out of fold."""
    rng = np.random.default_rng(2)
    targets = (rng.random((300, 5)) < 0.3).astype(np.float32)
    logits = rng.normal(size=(2, 300, 5)).astype(np.float32)
    fold_of = np.arange(300) % 3
    tuned = ThresholdTuned(METHODS.get("mean")(task="multi_label"), "f1_macro", per_column=True)
    in_sample = metrics.f1_macro(targets, tuned.fit(logits, targets, fold_of).predict_proba(logits))
    out_of_fold = metrics.f1_macro(targets, out_of_fold_probabilities(tuned, logits, targets, fold_of))
    assert in_sample > out_of_fold


def test_tuning_a_multi_label_threshold_helps_f1_on_a_rare_tag():
    rng = np.random.default_rng(0)
    targets = (rng.random((900, 2)) < 0.12).astype(np.float32)
    targets[targets.sum(axis=1) == 0, 1] = 1
    logits = (rng.normal(size=(1, 900, 2)) + targets * 1.5 - 1.5).astype(np.float32)
    fold_of = np.arange(900) % 3
    plain = metrics.f1_macro(targets, sigmoid(logits[0]))
    tuned = ThresholdTuned(METHODS.get("mean")(task="multi_label"), "f1_macro", per_column=True)
    assert metrics.f1_macro(targets, out_of_fold_probabilities(tuned, logits, targets, fold_of)) > plain + 0.02


@pytest.mark.parametrize(
    "task, metric, per_column, message",
    [
        ("regression", "rmse", True, "--tune-thresholds does not apply to a regression: no metric of it scores a decision"),
        ("multi_label", "map", True, "--tune-thresholds works with the metrics f1_macro, f1_samples, f2_samples, not 'map'"),
        ("multi_label", "logloss", False, "--tune-thresholds works with the metrics f1_macro, f1_samples, f2_samples, not 'logloss'"),
        ("single_label", "f1_macro", False, "a single-label competition tunes one bias per class"),
    ],
)
def test_threshold_tuning_refusals(task, metric, per_column, message):
    with pytest.raises(EnsError, match=message):
        ThresholdTuned(METHODS.get("mean")(task=task), metric, per_column).check_params()


@pytest.mark.parametrize(
    "task, metric, tune, expected",
    [
        ("multi_label", "f1_samples", False, False),  # always one threshold for every tag
        ("multi_label", "f2_samples", True, True),  # one per tag
        ("multi_label", "map", False, None),  # not a metric of decisions: nothing tuned
        ("single_label", "f1_macro", False, None),  # biases only when asked
        ("single_label", "qwk", True, True),
        ("regression", "rmse", False, None),
    ],
)
def test_make_blender_tunes_a_multi_label_threshold_always_and_per_tag_when_asked(task, metric, tune, expected):
    made = make_blender("mean", metric, {}, tune, task)
    assert made.task == task
    if expected is None:
        assert not isinstance(made, ThresholdTuned)
    else:
        assert isinstance(made, ThresholdTuned) and made.per_column is expected and made.metric == metric
