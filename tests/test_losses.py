"""Losses and target scalings per task kind: the values against hand-written torch, the refusals,
mixup of every kind of target, and one fold of each kind resuming bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ensemble import tasks
from ensemble.artifacts.identity import with_legacy_values
from ensemble.config import TrainSettings
from ensemble.errors import EnsError
from ensemble.inference.scaling import SCALINGS, UNSCALED, Standardised, UnitRange, from_record
from ensemble.metrics import get, logloss
from ensemble.tasks import sigmoid
from ensemble.training import losses
from ensemble.training.preflight import validate
from ensemble.training.recipe import balanced_weights, mix_batch
from ensemble.training.trainer import FoldData, train_fold
from tests.test_train import kill_then_resume

LOGITS = torch.tensor([[2.0, -1.0, 0.5], [-0.3, 0.0, 3.0]])
TAGS = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
OUTPUTS = torch.tensor([[0.4], [-2.5], [1.2]])
SCALED = torch.tensor([[1.0], [0.2], [0.0]])


def log_sigmoid(x):
    return -torch.log1p(torch.exp(-x))


def tag_bce(logits, targets, pos_weight=1.0):
    """-(w y log s(x) + (1 - y) log(1 - s(x))), averaged over every image and tag."""
    return -(pos_weight * targets * log_sigmoid(logits) + (1 - targets) * log_sigmoid(-logits)).mean()


def huber(outputs, targets):
    error = (outputs - targets).abs()
    return torch.where(error <= 1, 0.5 * error**2, error - 0.5).mean()


# (task, loss, label_smoothing, class_weights, outputs, targets, expected): written out by hand.
CASES = [
    ("single_label", "cross_entropy", 0.0, None, LOGITS, torch.tensor([0, 2]), -torch.log_softmax(LOGITS, 1)[[0, 1], [0, 2]].mean()),
    ("multi_label", "bce", 0.0, None, LOGITS, TAGS, tag_bce(LOGITS, TAGS)),
    ("multi_label", "bce", 0.0, np.array([3.0, 1.0, 0.5], dtype=np.float32), LOGITS, TAGS, tag_bce(LOGITS, TAGS, torch.tensor([3.0, 1.0, 0.5]))),
    # Smoothing 0.2 moves a tag's 1 to 0.9 and its 0 to 0.1: toward 0.5.
    ("multi_label", "bce", 0.2, None, LOGITS, TAGS, tag_bce(LOGITS, TAGS * 0.8 + 0.1)),
    ("regression", "mse", 0.0, None, OUTPUTS, SCALED, ((OUTPUTS - SCALED) ** 2).mean()),
    ("regression", "huber", 0.0, None, OUTPUTS, SCALED, huber(OUTPUTS, SCALED)),
    ("regression", "bce", 0.0, None, OUTPUTS, SCALED, tag_bce(OUTPUTS, SCALED)),
]


def test_every_loss_is_checked_here():
    assert {(task, name) for task, name, *_ in CASES} == {(task, name) for task, registry in losses.LOSSES.items() for name in registry.names()}


@pytest.mark.parametrize("task, name, smoothing, weights, outputs, targets, expected", CASES)
def test_losses_match_their_formulas(task, name, smoothing, weights, outputs, targets, expected):
    loss = losses.LOSSES[task].get(name)
    value = loss.build(smoothing, weights, torch.device("cpu"))(outputs, targets)
    torch.testing.assert_close(value, expected.float())


def test_a_regression_trains_on_scaled_targets_and_classification_on_its_own():
    scalings = {(task, name): registry.get(name).scaling for task, registry in losses.LOSSES.items() for name in registry.names()}
    assert scalings == {
        ("single_label", "cross_entropy"): "none", ("multi_label", "bce"): "none",
        ("regression", "mse"): "standardise", ("regression", "huber"): "standardise", ("regression", "bce"): "unit_range",
    }


@pytest.mark.parametrize(
    "task, fields, message",
    [
        ("multi_label", {"loss": "mse"}, "train loss 'mse' does not apply to a multi_label competition; expected one of: auto, bce$"),
        ("single_label", {"loss": "bce"}, "train loss 'bce' does not apply to a single_label competition; expected one of: auto, cross_entropy$"),
        ("regression", {"loss": "cross_entropy"}, "does not apply to a regression competition; expected one of: auto, bce, huber, mse$"),
        ("regression", {"loss": "l1"}, r"unknown train loss 'l1'; expected one of: auto, bce, huber, mse \(for a regression competition\)$"),
        ("regression", {"label_smoothing": 0.1}, r"train label_smoothing 0.1 does not apply to loss mse of a regression competition: its targets are not classes; set it to 0.0"),
        ("regression", {"loss": "bce", "class_weights": "balanced"}, "train class_weights balanced does not apply to loss bce of a regression competition"),
        ("single_label", {"tta": "hflip", "tta_merge": "median"}, "tta_merge 'median' does not apply to a single_label competition; expected one of: gmean, max, mean$"),
        ("multi_label", {"tta": "hflip", "tta_merge": "median"}, "tta_merge 'median' does not apply to a multi_label competition"),
        ("regression", {"tta": "hflip", "tta_merge": "gmean"}, "tta_merge 'gmean' does not apply to a regression competition; expected one of: mean, median$"),
    ],
)
def test_what_does_not_apply_to_the_task_is_refused(task, fields, message):
    with pytest.raises(EnsError, match=message):
        validate(TrainSettings(**fields), tasks.get(task))


@pytest.mark.parametrize("task, default", [("single_label", "cross_entropy"), ("multi_label", "bce"), ("regression", "mse")])
def test_auto_is_the_kinds_default_and_one_experiment_with_it(task, default):
    assert validate(TrainSettings(), tasks.get(task)).loss == default
    assert validate(TrainSettings(loss=default), tasks.get(task)) == validate(TrainSettings(), tasks.get(task))
    assert validate(TrainSettings(label_smoothing=0.1, class_weights="balanced"), tasks.get("multi_label")).label_smoothing == 0.1


def test_a_record_from_before_losses_had_names_is_what_a_single_label_run_records_now():
    legacy = with_legacy_values({"train": {"size": 32, "epochs": 3, "augment": "none"}})["train"]["loss"]
    assert legacy == validate(TrainSettings(), tasks.SINGLE_LABEL).loss == "cross_entropy"


def test_balanced_weights_of_tags_are_negatives_over_positives():
    tags = np.array([[1, 1, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1], [0, 1, 0, 1]], dtype=np.float32)
    # tag 0: 1 positive, 3 negatives; tag 1: 2 and 2; tag 2 never and tag 3 always present: 1.
    np.testing.assert_allclose(balanced_weights(tags, 4), [3.0, 1.0, 1.0, 1.0])
    assert balanced_weights(tags, 4).dtype == np.float32


# --- target scalings ------------------------------------------------------------------------------

def test_every_scaling_is_checked_here():
    assert SCALINGS.names() == ["none", "standardise", "unit_range"]


def test_standardise_fits_the_training_rows_and_decodes_into_their_range():
    scale = SCALINGS.get("standardise").fit(np.array([2.0, 4.0, 6.0, 8.0]))
    assert scale == Standardised(mean=5.0, std=np.sqrt(5.0), low=2.0, high=8.0)
    coded = scale.encode(np.array([2.0, 5.0, 8.0]))
    assert coded.shape == (3, 1) and coded.dtype == np.float32
    np.testing.assert_allclose(coded[:, 0], [-3 / np.sqrt(5), 0, 3 / np.sqrt(5)], rtol=1e-6)
    np.testing.assert_allclose(scale.decode(coded), [[2.0], [5.0], [8.0]], rtol=1e-6)
    # Clipped to what the fold trained on; a non-finite output stays NaN (a diverged fold is refused, not clipped).
    decoded = scale.decode(np.array([[10.0], [-10.0], [np.inf], [np.nan]], dtype=np.float32))
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, [[8.0], [2.0], [np.nan], [np.nan]])
    assert SCALINGS.get("standardise").fit(np.array([3.0, 3.0])).std == 1.0  # one value: nothing to divide by


def test_unit_range_trains_on_0_to_1_and_decodes_a_sigmoid():
    scale = SCALINGS.get("unit_range").fit(np.array([1.0, 26.0, 101.0]))
    assert scale == UnitRange(low=1.0, high=101.0)
    np.testing.assert_allclose(scale.encode(np.array([1.0, 51.0, 101.0]))[:, 0], [0.0, 0.5, 1.0])
    logits = np.array([[0.0], [np.log(3)], [-40.0]], dtype=np.float32)
    np.testing.assert_allclose(scale.decode(logits), [[51.0], [76.0], [1.0]], rtol=1e-6)


def test_a_scale_comes_back_from_its_record_and_classification_has_none():
    for scale in (Standardised(1.5, 2.0, -1.0, 4.0), UnitRange(0.0, 9.0)):
        assert from_record(scale.record()) == scale
    assert from_record(None) is UNSCALED and UNSCALED.record() is None
    targets = np.array([0, 2, 1])
    assert SCALINGS.get("none").fit(targets).encode(targets) is targets  # the very array: single-label is untouched


# --- mixup and cutmix of every kind of target ------------------------------------------------------

@pytest.mark.parametrize("targets", [torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), torch.tensor([[-1.2], [0.3], [2.0], [0.1]])])
@pytest.mark.parametrize("mixup, cutmix", [(0.4, 0.0), (0.0, 1.0)])
def test_tags_and_values_mix_as_they_are(targets, mixup, cutmix):
    inputs = torch.randn(4, 3, 8, 8)
    for seed in range(4):
        mixed, soft = mix_batch(inputs, targets, targets.shape[1], mixup, cutmix, np.random.default_rng(seed))
        assert soft.shape == targets.shape and soft.dtype == torch.float32
        # The same draws: a Beta weight, the partners, then (cutmix) a box whose area is the share pasted.
        rng = np.random.default_rng(seed)
        keep = float(rng.beta(mixup or cutmix, mixup or cutmix))
        partner = rng.permutation(4)
        if cutmix:
            side = int(8 * np.sqrt(1 - keep))
            keep = 1 - side * side / 64
        torch.testing.assert_close(soft, targets * keep + targets[partner] * (1 - keep))


# --- one fold of each kind: trained, scored and resumed ---------------------------------------------

def fold_data(kind: str, n_train=40, n_valid=12, n_test=6, size=16) -> FoldData:
    rng = np.random.default_rng(0)
    n = n_train + n_valid
    if kind == "multi_label":
        targets = (rng.random((n, 3)) < 0.4).astype(np.float32)
        level = targets * 150
    else:
        targets = rng.integers(0, 10, n).astype(np.float64)
        level = np.repeat(targets[:, None] * 20, 3, axis=1)
    images = np.clip(rng.normal(30, 15, (n, size, size, 3)) + level[:, None, None, :], 0, 255).astype(np.uint8)
    return FoldData(
        images=images, targets=targets, train_rows=np.arange(n_train), valid_rows=np.arange(n_train, n),
        test_images=images[:n_test], n_classes=targets.shape[1] if targets.ndim == 2 else 1, task=tasks.get(kind),
    )


SETTINGS = TrainSettings(model="test_resnet", size=16, epochs=3, batch_size=16, device="cpu")


@pytest.mark.parametrize(
    "kind, metric, fields",
    [
        ("multi_label", "f1_samples", {"mixup": 0.4, "cutmix": 1.0, "label_smoothing": 0.1, "class_weights": "balanced", "augment": "hflip", "ema": 0.9}),
        ("regression", "rmse", {"mixup": 0.4, "augment": "hflip"}),
        ("regression", "rmse", {"loss": "huber", "cutmix": 1.0}),
        ("regression", "rmse", {"loss": "bce", "mixup": 0.4, "cutmix": 1.0}),
    ],
)
def test_a_fold_of_each_kind_resumes_bit_for_bit_with_mixing_on(kind, metric, fields, tmp_path):
    data, settings = fold_data(kind), dataclasses.replace(SETTINGS, **fields)
    straight, resumed, _ = kill_then_resume(data, settings, tmp_path, kill_after_epoch=1, metric=get(metric))
    assert resumed.valid_logits.shape == (12, data.n_classes) and resumed.test_logits.shape == (6, data.n_classes)
    assert straight.target_scale == resumed.target_scale
    if kind == "regression":
        train_targets = data.targets[data.train_rows]
        scale = from_record(resumed.target_scale)
        assert scale == SCALINGS.get(losses.for_task(settings.loss, data.task).scaling).fit(train_targets)  # never the held-out rows
        for values in (resumed.valid_logits, resumed.test_logits):
            assert train_targets.min() <= values.min() and values.max() <= train_targets.max()
    else:
        assert resumed.target_scale is None


@pytest.mark.parametrize("kind", ["multi_label", "regression"])
def test_the_held_out_loss_is_in_the_space_of_the_cached_logits(kind, tmp_path):
    data = fold_data(kind)
    output = train_fold(data, SETTINGS, 0, get(data.task.default_metric), tmp_path / "a.pt")
    last = output.history[-1]
    valid_targets = data.targets[data.valid_rows]
    if kind == "multi_label":  # the mean binary log-loss of the tags' probabilities
        assert last.valid_loss == pytest.approx(logloss(valid_targets, sigmoid(output.valid_logits)))
    else:  # the mean squared error in the target's units
        assert last.valid_loss == pytest.approx(np.mean((output.valid_logits[:, 0] - valid_targets) ** 2))
    assert last.valid_score == pytest.approx(get(data.task.default_metric).score(valid_targets, data.task.outputs(output.valid_logits)))


@pytest.mark.parametrize("kind, loss", [("multi_label", "bce"), ("regression", "mse"), ("regression", "bce")])
def test_each_kind_learns_an_easy_task(kind, loss, tmp_path):
    data = fold_data(kind, n_train=96, n_valid=30)
    settings = dataclasses.replace(SETTINGS, epochs=6, lr=3e-3, loss=loss)
    output = train_fold(data, settings, 0, get(data.task.default_metric), tmp_path / "a.pt")
    valid_targets = data.targets[data.valid_rows]
    if kind == "multi_label":
        assert output.history[-1].valid_score > 0.7
    else:  # predicting the mean scores the targets' standard deviation
        assert output.history[-1].valid_score < 0.7 * valid_targets.std()
