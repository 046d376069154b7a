"""artifacts/scores.py: which experiments can be scored and blended, and what the user is told otherwise."""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest

from ensemble.artifacts.scores import check_usable, stale_reason
from ensemble.artifacts.store import ExperimentDir, checkpoint_sha256
from ensemble.config import Workspace
from ensemble.data.competition import load_competition
from ensemble.errors import EnsError
from ensemble.io import read_json, write_json


def competition_of(root):
    return load_competition(Workspace.load(root), check_images=False, with_test=False)


def experiment(root, name: str) -> ExperimentDir:
    return ExperimentDir(root / "models", name)


def make_predicted(root, name: str = "p") -> ExperimentDir:
    """A copy of experiment 'a' recorded as made by `ens predict -n a --as p`, as predict records it."""
    source = experiment(root, "a")
    shutil.copytree(source.root, root / "models" / name)
    predicted = experiment(root, name)
    settings = read_json(predicted.settings_path)
    settings["source"] = {"experiment": "a", "checkpoints_sha256": [checkpoint_sha256(source, fold) for fold in range(3)]}
    write_json(predicted.settings_path, settings)
    return predicted


def edit_settings(experiment: ExperimentDir, **changes) -> None:
    write_json(experiment.settings_path, {**read_json(experiment.settings_path), **changes})


def relabel_first_row(root) -> None:
    frame = pd.read_csv(root / "data" / "train.csv", dtype=str)
    frame.loc[0, "label"] = "dog" if frame.loc[0, "label"] != "dog" else "cat"
    frame.to_csv(root / "data" / "train.csv", index=False)


def retrain_fold0_of_a(root) -> None:
    result_path = experiment(root, "a").fold_result_path(0)
    write_json(result_path, {**read_json(result_path), "checkpoint_sha256": "sha256:other"})


def test_a_finished_experiment_and_a_prediction_of_it_are_usable(trained_copy):
    competition = competition_of(trained_copy)
    for usable in (experiment(trained_copy, "a"), make_predicted(trained_copy)):
        assert stale_reason(usable, competition) is None
        check_usable(usable, competition)


@pytest.mark.parametrize(
    "change, name, reason",
    [
        (relabel_first_row, "a", "trained on another train.csv (its ids or labels changed); train it again with --force"),
        (lambda root: edit_settings(experiment(root, "a"), classes=["a", "b", "c"]), "a", "trained on other classes; train it again with --force"),
        (retrain_fold0_of_a, "p", "predicted from a's checkpoints, which were trained again or removed since; run `ens predict` again with --force"),
        (lambda root: shutil.rmtree(experiment(root, "a").fold_dir(2)), "p", "predicted from a's checkpoints"),
    ],
)
def test_stale_experiments_say_why(trained_copy, change, name, reason):
    make_predicted(trained_copy)
    change(trained_copy)
    stale = experiment(trained_copy, name)
    competition = competition_of(trained_copy)
    assert stale_reason(stale, competition).startswith(reason)
    with pytest.raises(EnsError, match=rf"^{re.escape(str(stale.root))}: {re.escape(reason)}"):
        check_usable(stale, competition)


@pytest.mark.parametrize(
    "name, message",
    [
        ("a", "not every fold is trained (done: [0, 1, 2]); run `ens train-folds --name a` again to finish it"),
        ("p", "not every fold is predicted (done: [0, 1, 2]); run `ens predict --name a --as p` again to finish it"),
    ],
)
def test_unfinished_experiments_say_which_command_finishes_them(trained_copy, name, message):
    make_predicted(trained_copy)
    unfinished = experiment(trained_copy, name)
    unfinished.oof_path.unlink()
    with pytest.raises(EnsError, match=rf"^{re.escape(str(unfinished.root))}: {re.escape(message)}$"):
        check_usable(unfinished, competition_of(trained_copy))
