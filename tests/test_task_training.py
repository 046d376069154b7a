"""Multi-label and regression competitions through the CLI: folds, train-folds with TTA, resume,
`ens predict --as` and `--test-csv`, on the tiny competitions of conftest.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from ensemble import metrics, tasks
from ensemble.artifacts.store import load_logits
from ensemble.config import Workspace
from ensemble.data.competition import load_competition
from ensemble.data.folds import read_folds
from ensemble.inference.scaling import SCALINGS
from ensemble.training.events import EpochEnd
from tests.conftest import TAGS
from tests.test_cli import ens, one_line_error


def make_folds(root) -> np.ndarray:
    """`ens folds` (iterative stratification for tags, quantile bins for values); fold_of: int (n_train,)."""
    result = ens("folds", "-w", root)
    assert result.exit_code == 0, result.output
    workspace = Workspace.load(root)
    return read_folds(workspace, load_competition(workspace)).fold_of


def logits(root, experiment: str, name: str):
    return load_logits(root / "models" / experiment / name)


def checkpoint(root, experiment: str, fold: int) -> dict:
    return torch.load(root / "models" / experiment / f"fold{fold}" / "model.pt", weights_only=True)


def fold_views(root, experiment: str, fold: int) -> np.ndarray:
    with np.load(root / "models" / experiment / f"fold{fold}" / "views.npz") as views:
        return views["oof"]


def test_multi_label_trains_with_tta_and_predicts_again(multi_label_dir):
    root = multi_label_dir
    fold_of = make_folds(root)
    result = ens("train-folds", "-w", root, "-n", "a", "--epochs", "2", "--tta", "hflip", "--class-weights", "balanced", "--mixup", "0.4")
    assert result.exit_code == 0, result.output
    competition = load_competition(Workspace.load(root))
    oof, test = logits(root, "a", "oof.npz"), logits(root, "a", "test.npz")
    assert oof.classes == competition.classes == TAGS[::-1] == ("blue", "green", "red")
    assert oof.values.shape == (36, 3) and oof.values.dtype == np.float32 and test.values.shape == (10, 3)
    assert oof.ids.tolist() == competition.train_ids.tolist()
    scores = json.loads((root / "models" / "a" / "scores.json").read_text())
    assert scores["oof_score"] == pytest.approx(metrics.f1_samples(competition.targets, tasks.sigmoid(oof.values)))
    assert f"OOF f1_samples {scores['oof_score']:.4f}" in result.stdout
    settings = json.loads((root / "models" / "a" / "settings.json").read_text())
    assert (settings["task"], settings["train"]["loss"], settings["train"]["tta"]) == ("multi_label", "bce", "hflip")
    assert "target_scale" not in checkpoint(root, "a", 0)  # tags' logits are read as they are
    history = json.loads((root / "models" / "a" / "fold0" / "result.json").read_text())["history"]
    assert [event["epoch"] for event in history] == [1, 2] and all(0 < event["valid_loss"] < 5 for event in history)

    # The cached OOF is TTA'd: the checkpoints under the experiment's own policy give it back,
    # and the views, kept, merge per tag into it; without TTA the logits differ.
    assert ens("predict", "-w", root, "-n", "a", "--as", "again", "--keep-views").exit_code == 0
    for name in ("oof.npz", "test.npz"):
        np.testing.assert_allclose(logits(root, "again", name).values, logits(root, "a", name).values, atol=1e-5)
    views = fold_views(root, "again", 0)
    assert views.shape == (2, np.count_nonzero(fold_of == 0), 3)
    np.testing.assert_allclose(logits(root, "again", "fold0/oof.npz").values, tasks.get("multi_label").merge_views(views, "mean"), atol=1e-6)
    assert ens("predict", "-w", root, "-n", "a", "--tta", "none", "--as", "plain").exit_code == 0
    assert not np.allclose(logits(root, "plain", "oof.npz").values, oof.values, atol=1e-6)

    # A new test set is written in the sample's shape: each image's tags, space-separated.
    out = root / "new.csv"
    args = ("--test-csv", root / "data" / "test.csv", "--test-images", root / "data" / "test", "--out", out)
    written = ens("predict", "-w", root, "-n", "a", *args)
    assert written.exit_code == 0, written.output
    assert "rows, tags, TTA hflip (mean)" in written.stdout
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert frame.columns.tolist() == ["id", "tags"] and frame["id"].tolist() == competition.test_ids.tolist()
    for cell in frame["tags"]:
        assert cell and set(cell.split(" ")) <= set(TAGS)


def test_regression_values_are_in_target_units_clipped_to_each_folds_training_range(regression_dir):
    root = regression_dir
    fold_of = make_folds(root)
    result = ens("train-folds", "-w", root, "-n", "r", "--epochs", "2", "--tta", "hflip", "--tta-merge", "median", "--cutmix", "1.0")
    assert result.exit_code == 0, result.output
    competition = load_competition(Workspace.load(root))
    oof, test = logits(root, "r", "oof.npz"), logits(root, "r", "test.npz")
    assert oof.classes == ("count",) and oof.values.shape == (36, 1) and test.values.shape == (10, 1)
    scores = json.loads((root / "models" / "r" / "scores.json").read_text())
    assert scores["oof_score"] == pytest.approx(metrics.rmse(competition.targets, oof.values))
    settings = json.loads((root / "models" / "r" / "settings.json").read_text())
    assert (settings["task"], settings["train"]["loss"], settings["train"]["tta_merge"]) == ("regression", "mse", "median")
    for fold in range(3):
        train_values = competition.targets[fold_of != fold]
        # The decode constants are the fold's training rows', never the held-out fold's.
        scale = SCALINGS.get("standardise").fit(train_values)
        assert checkpoint(root, "r", fold)["target_scale"] == scale.record()
        for values in (logits(root, "r", f"fold{fold}/oof.npz").values, logits(root, "r", f"fold{fold}/test.npz").values):
            assert scale.low <= values.min() and values.max() <= scale.high
        history = json.loads((root / "models" / "r" / f"fold{fold}" / "result.json").read_text())["history"]
        assert history[-1]["metric"] == "rmse"

    # Each view is decoded before the views merge: the OOF value is the median of the views' values.
    assert ens("predict", "-w", root, "-n", "r", "--as", "again", "--keep-views").exit_code == 0
    for name in ("oof.npz", "test.npz"):
        np.testing.assert_allclose(logits(root, "again", name).values, logits(root, "r", name).values, atol=1e-5)
    views = fold_views(root, "again", 1)
    assert views.shape == (2, np.count_nonzero(fold_of == 1), 1)
    np.testing.assert_allclose(logits(root, "again", "fold1/oof.npz").values, np.median(views, axis=0), atol=1e-6)
    assert 0 <= views.min() and views.max() <= 9

    out = root / "new.csv"
    args = ("--test-csv", root / "data" / "test.csv", "--test-images", root / "data" / "test", "--out", out)
    written = ens("predict", "-w", root, "-n", "r", *args)
    assert written.exit_code == 0, written.output
    frame = pd.read_csv(out, dtype={"image_id": str})
    assert frame.columns.tolist() == ["image_id", "count"] and frame["image_id"].tolist() == competition.test_ids.tolist()
    by_id = dict(zip(competition.test_ids, test.values[:, 0]))
    np.testing.assert_allclose(frame["count"], [by_id[image_id] for image_id in frame["image_id"]], rtol=1e-5)


def test_a_regression_with_the_bce_loss_decodes_through_a_sigmoid(regression_dir):
    root = regression_dir
    fold_of = make_folds(root)
    result = ens("train-folds", "-w", root, "-n", "p", "--epochs", "2", "--loss", "bce", "--mixup", "0.4", "--folds", "0")
    assert result.exit_code == 0, result.output
    train_values = load_competition(Workspace.load(root)).targets[fold_of != 0]
    assert checkpoint(root, "p", 0)["target_scale"] == {"scaling": "unit_range", "low": train_values.min(), "high": train_values.max()}
    values = logits(root, "p", "fold0/oof.npz").values
    assert train_values.min() <= values.min() and values.max() <= train_values.max()


def test_a_stopped_regression_resumes_to_the_same_logits_and_its_loss_is_its_identity(regression_dir, monkeypatch):
    root = regression_dir
    make_folds(root)
    train = ("train-folds", "-w", root, "--epochs", "3", "--loss", "huber")
    assert ens(*train, "-n", "straight").exit_code == 0

    from ensemble.training import trainer

    original = trainer.train_fold

    def stopped_in_fold_1(data, settings, fold, metric, resume_path, progress=None):
        def stop(event):
            if progress:
                progress(event)
            if fold == 1 and isinstance(event, EpochEnd) and event.epoch == 2:
                raise KeyboardInterrupt

        return original(data, settings, fold, metric, resume_path, stop)

    monkeypatch.setattr("ensemble.training.fold_job.train_fold", stopped_in_fold_1)
    assert ens(*train, "-n", "stopped").exit_code == 130
    assert (root / "models" / "stopped" / "fold1" / "resume.pt").is_file()
    monkeypatch.setattr("ensemble.training.fold_job.train_fold", original)
    resumed = ens(*train, "-n", "stopped")
    assert resumed.exit_code == 0 and "(resuming)" in resumed.output
    for name in ("oof.npz", "test.npz"):
        np.testing.assert_array_equal(logits(root, "stopped", name).values, logits(root, "straight", name).values)

    # The loss changes the logits: another one is another experiment; naming the default is not.
    one_line_error(ens(*train[:-1], "mse", "-n", "straight"), "other settings", "train.loss: huber -> mse")
    again = ens("train-folds", "-w", root, "--epochs", "3", "-n", "auto")
    assert again.exit_code == 0
    assert "nothing trained" in ens("train-folds", "-w", root, "--epochs", "3", "--loss", "mse", "-n", "auto").output


@pytest.mark.parametrize(
    "make, args, fragments",
    [
        ("regression_dir", ["--label-smoothing", "0.1"], ["train label_smoothing 0.1 does not apply to loss mse of a regression competition"]),
        ("regression_dir", ["--class-weights", "balanced"], ["train class_weights balanced does not apply", "--class-weights none"]),
        ("regression_dir", ["--loss", "cross_entropy"], ["train loss 'cross_entropy' does not apply to a regression competition; expected one of: auto, bce, huber, mse"]),
        ("regression_dir", ["--tta", "hflip", "--tta-merge", "gmean"], ["tta_merge 'gmean' does not apply to a regression competition; expected one of: mean, median"]),
        ("multi_label_dir", ["--loss", "huber"], ["train loss 'huber' does not apply to a multi_label competition; expected one of: auto, bce"]),
        ("competition_dir", ["--tta", "hflip", "--tta-merge", "median"], ["tta_merge 'median' does not apply to a single_label competition"]),
        ("competition_dir", ["--loss", "nll"], ["unknown train loss 'nll'; expected one of: auto, cross_entropy"]),
    ],
)
def test_what_does_not_apply_to_the_task_is_one_line_and_writes_nothing(make, args, fragments, request):
    root = request.getfixturevalue(make)
    make_folds(root)
    one_line_error(ens("train-folds", "-w", root, "-n", "x", *args), *fragments)
    assert not (root / "models").exists()
