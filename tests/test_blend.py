import numpy as np
import pytest

from ensemble import metrics
from ensemble.blend import METHODS
from ensemble.blend.nested import out_of_fold_probabilities
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
    if name == "stack":
        assert blender.weights_ is None  # a meta-learner, not a weighted mean
    else:
        assert blender.weights_.sum() == pytest.approx(1) and (blender.weights_ >= 0).all()
    probs = blender.predict_proba(logits)
    assert probs.shape == (60, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1)
    for metric in metrics.for_task("single_label"):
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
    with pytest.raises(EnsError, match="unknown blend method 'best'; expected one of: hill, mean, power, rank, stack, weighted"):
        METHODS.get("best")


def informative_and_noise(seed=0, n=600, n_classes=3):
    """Member 0 is right on 70% of rows; member 1 is pure noise of the same scale."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(2, n, n_classes))
    right = rng.random(n) < 0.7
    logits[0, right, targets[right]] += 2.5
    return logits, targets


@pytest.mark.parametrize("name, params", [("weighted", {}), ("weighted", {"metric": "accuracy"}), ("hill", {"metric": "logloss"})])
def test_fitted_weights_give_a_noise_member_almost_nothing(name, params):
    logits, targets = informative_and_noise()
    weights = METHODS.get(name)(**params).fit(logits, targets).weights_
    assert weights[1] < 0.05, weights


def test_hill_on_accuracy_keeps_most_weight_on_the_informative_member():
    # Accuracy is flat almost everywhere: a noise member that flips a few borderline rows can
    # win a step in sample by chance, so hill gives it some weight (the out-of-fold score is
    # what exposes this); it never takes the blend over.
    for seed in range(3):
        logits, targets = informative_and_noise(seed=seed, n=2000)
        weights = METHODS.get("hill")(metric="accuracy").fit(logits, targets).weights_
        assert weights[0] > 0.7, weights


def test_hill_is_seeded_and_bagging_spreads_weight():
    logits, targets = members(n=200)
    first = METHODS.get("hill")(metric="accuracy", hill_bags=5, seed=3).fit(logits, targets).weights_
    again = METHODS.get("hill")(metric="accuracy", hill_bags=5, seed=3).fit(logits, targets).weights_
    np.testing.assert_array_equal(first, again)
    assert first.sum() == pytest.approx(1)


def test_hill_cuts_back_to_its_best_step_and_breaks_ties_toward_chosen_members():
    # Two identical members: every step ties; ties go to the member already chosen.
    logits, targets = members(n_models=1)
    twins = np.concatenate([logits, logits])
    blender = METHODS.get("hill")(metric="accuracy", hill_steps=5).fit(twins, targets)
    np.testing.assert_array_equal(blender.weights_, [1.0, 0.0])
    # The kept scores never get worse than the first, and the last kept is the best.
    scores = blender.scores_
    assert scores[-1] == max(scores)


def test_rank_and_power_match_a_hand_computation():
    logits = np.log(np.array([
        [[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]],
        [[0.9, 0.1], [0.5, 0.5], [0.4, 0.6]],
    ]))
    targets = np.array([0, 1, 0])
    # Ranks of class 0 in member 0: 0.7 -> 3, 0.2 -> 1, 0.6 -> 2; member 1: 0.9 -> 3, 0.5 -> 2, 0.4 -> 1.
    # Class 1: member 0: 0.3 -> 1, 0.8 -> 3, 0.4 -> 2; member 1: 0.1 -> 1, 0.5 -> 2, 0.6 -> 3.
    mean_rank = np.array([[3, 1], [1.5, 2.5], [1.5, 2.5]]) / 3
    expected_rank = mean_rank / mean_rank.sum(axis=1, keepdims=True)
    rank = METHODS.get("rank")().fit(logits, targets).predict_proba(logits)
    np.testing.assert_allclose(rank, expected_rank)
    squared = (np.array([[0.49, 0.09], [0.04, 0.64], [0.36, 0.16]]) + np.array([[0.81, 0.01], [0.25, 0.25], [0.16, 0.36]])) / 2
    power = METHODS.get("power")(power=2).fit(logits, targets).predict_proba(logits)
    np.testing.assert_allclose(power, squared / squared.sum(axis=1, keepdims=True))


def test_a_member_that_copies_labels_on_one_fold_does_not_inflate_the_nested_score():
    """Member 1 is the label itself on fold 3 (as if its OOF rows there came from a model that
    trained on them) and noise elsewhere. Fit on all rows, the stacker learns to trust it and
    scores fold 3 nearly perfectly; scored out of fold, fold 3 is predicted by a meta-learner
    fit on folds 0-2, where member 1 is noise, so fold 3 scores what member 0 honestly does."""
    logits, targets = informative_and_noise(n=800)
    fold_of = np.arange(800) % 4
    copied = fold_of == 3
    logits[1, copied] = np.eye(3)[targets[copied]] * 6
    stack = METHODS.get("stack")()
    in_sample = stack.fit(logits, targets).predict_proba(logits)
    out_of_fold = out_of_fold_probabilities(stack, logits, targets, fold_of)
    honest_member = metrics.accuracy(targets[copied], metrics.softmax(logits[0, copied]))
    assert metrics.accuracy(targets[copied], in_sample[copied]) > honest_member + 0.1  # the leak, in sample
    assert metrics.accuracy(targets[copied], out_of_fold[copied]) <= honest_member + 0.03


def test_nested_scoring_never_fits_on_the_rows_it_scores():
    """Pure noise: a stacker fit on all rows finds patterns (in sample beats chance); scored
    out of fold it cannot."""
    rng = np.random.default_rng(1)
    logits, targets = rng.normal(size=(6, 120, 3)), rng.integers(0, 3, 120)
    fold_of = np.arange(120) % 3
    stack = METHODS.get("stack")()
    in_sample = metrics.accuracy(targets, stack.fit(logits, targets).predict_proba(logits))
    out_of_fold = metrics.accuracy(targets, out_of_fold_probabilities(stack, logits, targets, fold_of))
    assert in_sample > 0.5 and out_of_fold < 0.45


def test_stack_with_lgbm_and_a_class_missing_from_a_fold():
    pytest.importorskip("lightgbm")
    logits, targets = informative_and_noise(n=300)
    targets = targets.copy()
    targets[:5] = 2
    probs = METHODS.get("stack")(meta="lgbm").fit(logits[:, :250], np.minimum(targets[:250], 1)).predict_proba(logits)
    assert probs.shape == (300, 3) and (probs[:, 2] == 0).all()  # class 2 never seen: probability 0
    np.testing.assert_allclose(probs.sum(axis=1), 1)


def test_lgbm_missing_is_one_line_naming_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "lightgbm", None)
    logits, targets = informative_and_noise(n=60)
    with pytest.raises(EnsError, match=r"--meta lgbm needs lightgbm.*ens\[lgbm\]"):
        METHODS.get("stack")(meta="lgbm").fit(logits, targets)


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("power", {"power": 0}, r"--power must be in \(0, 16\]"),
        ("power", {"power": "2"}, r"--power must be in"),
        ("stack", {"meta": "xgb"}, "--meta: unknown meta-learner 'xgb'; expected one of: logreg, lgbm"),
        ("stack", {"stack_test": "median"}, "--stack-test: unknown value 'median'"),
        ("hill", {"hill_steps": 0}, "--hill-steps must be an integer of at least 1"),
        ("hill", {"hill_init": 1.5}, "--hill-init must be an integer"),
        ("hill", {"metric": "f2"}, "unknown metric 'f2'"),
    ],
)
def test_bad_method_options_are_refused(name, params, message):
    logits, targets = members()
    with pytest.raises(EnsError, match=message):
        METHODS.get(name)(**params).fit(logits, targets)


def test_threshold_tuning_helps_f1_in_sample_and_is_scored_out_of_fold():
    from ensemble.blend.thresholds import ThresholdTuned

    rng = np.random.default_rng(0)
    targets = (rng.random(900) < 0.15).astype(int)  # a rare positive class
    logits = rng.normal(size=(1, 900, 2))
    logits[0, :, 1] += targets * 1.5 - 1.0  # informative, but the argmax rarely says positive
    plain = metrics.f1_macro(targets, METHODS.get("mean")().fit(logits, targets).predict_proba(logits))
    tuned = ThresholdTuned(METHODS.get("mean")(), "f1_macro")
    assert metrics.f1_macro(targets, tuned.fit(logits, targets, np.arange(900) % 3).predict_proba(logits)) > plain + 0.02
    nested = metrics.f1_macro(targets, out_of_fold_probabilities(tuned, logits, targets, np.arange(900) % 3))
    assert nested > plain
    with pytest.raises(EnsError, match="--tune-thresholds works with the metrics f1_macro, qwk, not 'accuracy'"):
        ThresholdTuned(METHODS.get("mean")(), "accuracy").fit(logits, targets, np.arange(900) % 3)
    with pytest.raises(EnsError, match="ThresholdTuned.fit needs fold_of"):
        ThresholdTuned(METHODS.get("mean")(), "f1_macro").fit(logits, targets)


def test_threshold_tuning_fits_a_clone_and_tunes_on_nested_out_of_fold_probabilities(monkeypatch):
    from ensemble.blend import thresholds

    logits, targets = members(n=90)
    fold_of = np.arange(90) % 3
    inner = METHODS.get("stack")()
    before = dict(vars(inner))
    tuned_on = []
    real_tune = thresholds.tune_biases
    monkeypatch.setattr(thresholds, "tune_biases", lambda probs, *rest: tuned_on.append(probs) or real_tune(probs, *rest))
    tuned = thresholds.ThresholdTuned(inner, "f1_macro").fit(logits, targets, fold_of)
    assert vars(inner) == before, "the blender passed in is neither fitted nor changed"
    assert tuned.blender_ is not inner and tuned.blender is inner
    np.testing.assert_array_equal(tuned_on[0], out_of_fold_probabilities(METHODS.get("stack")(), logits, targets, fold_of))
    assert not np.allclose(tuned_on[0], tuned.blender_.predict_proba(logits)), "in-sample probabilities differ from OOF"


@pytest.mark.parametrize("name", ["accuracy", "f1_macro", "qwk", "logloss"])
def test_hill_shortcuts_choose_what_scoring_every_full_candidate_chooses(name):
    """The log-loss and argmax-label shortcuts must select exactly as the general path does."""
    import dataclasses

    from ensemble.blend import hill

    logits, targets = members(seed=4, n_models=5, n=400)
    probs = hill.member_probabilities(logits)
    metric = metrics.get(name)
    general = dataclasses.replace(metric, name=f"{name} (general)", of_labels=None)
    fast = hill.select(probs, targets, metric, np.arange(5), 15, 2)
    slow = hill.select(probs, targets, general, np.arange(5), 15, 2)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_allclose(fast[1], slow[1])


@pytest.mark.parametrize(
    "params, message",
    [
        ({"hill_steps": 0}, "--hill-steps must be an integer of at least 1, got 0"),
        ({"hill_bags": 0}, "--hill-bags must be an integer of at least 1, got 0"),
        ({"seed": -1}, "--seed must be an integer of at least 0, got -1"),
    ],
)
def test_hill_counts_need_one_and_its_seed_may_be_zero(params, message):
    from ensemble.blend.hill import int_at_least

    with pytest.raises(EnsError, match=message):
        METHODS.get("hill")(**params).check_params()
    METHODS.get("hill")(seed=0).check_params()
    int_at_least(0, "--seed", 0)


def test_the_logistic_meta_learner_takes_its_seed():
    from ensemble.blend.stack import logistic_regression

    assert logistic_regression(7)[-1].random_state == 7


def test_a_stacker_records_its_standardisation_and_an_older_unscaled_record_still_predicts():
    from ensemble.blend.meta_records import record_meta, restore_meta
    from ensemble.blend.stack import features, logistic_regression

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 60, 3)) * np.array([1.0, 40.0])[:, None, None]  # two members on very different scales
    targets = rng.integers(0, 3, 60)
    meta = logistic_regression(0).fit(features(logits), targets)
    record = record_meta(meta)
    assert record["learner"] == "scaled_logreg" and len(record["mean"]) == 6
    np.testing.assert_array_equal(restore_meta(record).predict_proba(features(logits)), meta.predict_proba(features(logits)))
    older = {"learner": "logreg", **{key: record[key] for key in ("classes", "coef", "intercept")}}  # a blend made before scaling
    probs = restore_meta(older).predict_proba(features(logits))
    assert probs.shape == (60, 3) and np.allclose(probs.sum(axis=1), 1)


def test_a_stack_recorded_before_standardisation_refits_unscaled_for_a_teachers_folds():
    from ensemble.blend.base import clone
    from ensemble.blend.recorded import record, restore_state

    rng = np.random.default_rng(1)
    logits, targets = rng.normal(size=(2, 50, 3)), rng.integers(0, 3, 50)
    fitted = METHODS.get("stack")().fit(logits, targets)
    state = record(fitted, "stack")["state"]
    state["meta"] = {"learner": "logreg", **{key: state["meta"][key] for key in ("classes", "coef", "intercept")}}
    older = restore_state(METHODS.get("stack")(), state)
    assert older.scaled is False and clone(older).scaled is False
    refit = clone(older).fit(logits, targets)
    assert type(refit.meta_).__name__ == "LogisticRegression"  # not the standardised pipeline
    assert type(clone(fitted).fit(logits, targets).meta_).__name__ == "Pipeline"
