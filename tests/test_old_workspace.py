"""A workspace written before the package was regrouped still works with today's code.

tests/fixtures/old_workspace was written by commit cd7cb43 (the last commit before the regrouping)
with tests/fixtures/make_old_workspace.sh, which runs, in a tiny competition made by that commit's
own tests/conftest.py (40 train / 12 test PNGs, 3 classes, k=2 folds; ens.toml's train section:
test_efficientnet, size 16, 1 epoch, tta hflip, pretrained = "weights/efficientnet.pt", cpu):

    ens folds
    ens train-folds -n t --model test_efficientnet --size 16 --epochs 1 --tta hflip
    ens train-folds -n u --folds 0             # unfinished: fold 1 is not trained
    ens predict -n t --as p --tta none
    ens blend -n b --experiments t,p --method mean

and keeps the workspace without cache/. To make it again:

    git worktree add /tmp/old-main cd7cb43
    tests/fixtures/make_old_workspace.sh /tmp/old-main .venv/bin/python
    git worktree remove --force /tmp/old-main

The settings.json files record the weights file by the absolute path it had then; the path is not
part of an experiment's identity (train.weights, the file's content hash, is), so resuming with
ens.toml's relative path to the copy inside the fixture is the same experiment.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ensemble.artifacts.store import load_logits
from ensemble.cli import app

FIXTURE = Path(__file__).parent / "fixtures" / "old_workspace"
runner = CliRunner()


def ens(workspace: Path, *args) -> str:
    result = runner.invoke(app, [*map(str, args), "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def old_workspace(tmp_path_factory) -> Path:
    """A copy of the fixture; the tests below run in order on it, each adding to it."""
    return Path(shutil.copytree(FIXTURE, tmp_path_factory.mktemp("old") / "ws"))


def fold_results(experiment: Path) -> list[str]:
    return sorted(path.parent.name for path in experiment.glob("fold*/model.pt"))


def test_the_unfinished_experiment_resumes_and_trains_only_the_missing_fold(old_workspace):
    experiment = old_workspace / "models" / "u"
    fold0 = (experiment / "fold0" / "model.pt").read_bytes()
    assert fold_results(experiment) == ["fold0"]
    output = ens(old_workspace, "train-folds", "-n", "u")
    assert fold_results(experiment) == ["fold0", "fold1"]
    assert (experiment / "fold0" / "model.pt").read_bytes() == fold0  # fold 0 kept, not retrained
    assert "fold 1" in output and "fold 0: training" not in output
    scores = json.loads((experiment / "scores.json").read_text())
    assert len(scores["fold_scores"]) == 2 and scores["oof_score"] is not None


def test_an_old_experiment_predicts_as_a_new_experiment(old_workspace):
    ens(old_workspace, "predict", "-n", "t", "--as", "t2")
    for part in ("oof.npz", "test.npz"):
        old, new = (load_logits(old_workspace / "models" / name / part) for name in ("t", "t2"))
        assert list(old.ids) == list(new.ids) and list(old.classes) == list(new.classes)
        # The same models and views (the old experiment's own hflip) give the same logits.
        assert abs(old.values - new.values).max() < 1e-4


def test_an_old_experiment_predicts_a_new_test_set(old_workspace, tmp_path):
    competition = old_workspace / "data"
    out = tmp_path / "new.csv"
    ens(old_workspace, "predict", "-n", "t", "--test-csv", competition / "test.csv", "--test-images", competition / "test", "--out", out)
    frame = pd.read_csv(out, dtype=str)
    assert len(frame) == 12 and set(frame.columns) >= {"id"}


def test_blending_the_old_experiments_again_gives_the_old_csv_byte_for_byte(old_workspace):
    ens(old_workspace, "blend", "-n", "b2", "--experiments", "t,p", "--method", "mean")
    submissions = old_workspace / "submissions"
    assert (submissions / "b2.csv").read_bytes() == (submissions / "b.csv").read_bytes()


def test_leaderboard_and_report_read_the_old_workspace(old_workspace):
    board = ens(old_workspace, "leaderboard")
    for name in ("t", "p", "u"):
        assert f" {name} " in board
    ens(old_workspace, "report")
    assert list(old_workspace.glob("**/*.html"))
