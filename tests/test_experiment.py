"""train_experiment's boundary: what it refuses before touching a file, and a run with nothing left to train."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.artifacts.store import load_logits
from ensemble.config import Workspace, override
from ensemble.errors import EnsError
from ensemble.training.experiment import train_experiment


@pytest.mark.parametrize(
    "changes, folds, message",
    [
        ({}, [3], r"^--folds: fold 3 does not exist; the folds file has folds 0\.\.2$"),
        ({}, [0, -1], r"^--folds: fold -1 does not exist"),
        ({"model": "no_such_model"}, None, r"^unknown timm model 'no_such_model'"),
        ({"optimizer": "no_such_optimizer"}, None, r"unknown optimizer 'no_such_optimizer'; expected one of: "),
    ],
)
def test_refused_before_any_file_is_written(trained_copy, changes, folds, message):
    workspace = Workspace.load(trained_copy)
    with pytest.raises(EnsError, match=message):
        train_experiment(workspace, "new", override(workspace.train, **changes), folds_to_run=folds)
    assert not (trained_copy / "models" / "new").exists()


def test_a_finished_experiment_run_again_trains_nothing_and_keeps_every_fold(trained_copy):
    workspace = Workspace.load(trained_copy)
    experiment = trained_copy / "models" / "a"
    checkpoints = {path: path.read_bytes() for path in experiment.glob("fold*/model.pt")}
    result = train_experiment(workspace, "a", workspace.train)
    assert result.trained == [] and result.kept == [0, 1, 2] and result.oof_score is not None
    assert {path: path.read_bytes() for path in experiment.glob("fold*/model.pt")} == checkpoints


def test_a_run_stopped_before_combining_is_combined_by_the_next(trained_copy):
    """Every fold finished but oof.npz and test.npz not written (a kill between the last fold
    and the combine): the next run writes them from the folds, without training."""
    workspace = Workspace.load(trained_copy)
    experiment = trained_copy / "models" / "a"
    before = {name: load_logits(experiment / name) for name in ("oof.npz", "test.npz")}
    for name in before:
        (experiment / name).unlink()
    result = train_experiment(workspace, "a", workspace.train)
    assert result.trained == []
    for name, logits in before.items():
        again = load_logits(experiment / name)
        assert list(again.ids) == list(logits.ids)
        np.testing.assert_array_equal(again.values, logits.values)
