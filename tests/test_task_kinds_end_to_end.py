"""Each task kind through every command, on real (tiny) trained models: folds, train-folds with
TTA, predict --as, every blend method (or its refusal), leaderboard and report."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ensemble.blend import METHODS
from tests.conftest import make_multi_label_competition, make_regression_competition
from tests.test_cli import ens

REFUSED = {"multi_label": set(), "regression": {"rank", "power"}}


@pytest.mark.parametrize("kind, make", [("multi_label", make_multi_label_competition), ("regression", make_regression_competition)])
def test_every_command_works_on_each_task_kind(kind, make, tmp_path):
    root = make(tmp_path / kind, n_train=45)
    assert ens("folds", "-w", root).exit_code == 0
    for args in (["-n", "a", "--epochs", "2"], ["-n", "b", "--model", "test_efficientnet", "--tta", "hflip"]):
        result = ens("train-folds", "-w", root, *args)
        assert result.exit_code == 0, result.output
    predicted = ens("predict", "-w", root, "-n", "a", "--tta", "hflip", "--as", "a-hflip")
    assert predicted.exit_code == 0, predicted.output
    sample = pd.read_csv(root / "data" / "sample_submission.csv", dtype=str)
    for method in METHODS.names():
        result = ens("blend", "-w", root, "-n", method, "--method", method)
        if method in REFUSED[kind]:
            assert result.exit_code == 1 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.output
            assert not (root / "submissions" / f"{method}.csv").exists()
            continue
        assert result.exit_code == 0, (method, result.output)
        written = pd.read_csv(root / "submissions" / f"{method}.csv", dtype=str)
        assert list(written.columns) == list(sample.columns) and written.iloc[:, 0].tolist() == sample.iloc[:, 0].tolist()
        made = json.loads((root / "submissions" / f"{method}.json").read_text())
        assert [member["name"] for member in made["members"]] == ["a", "a-hflip", "b"]
        if kind == "multi_label":
            assert all(set(cell.split()) <= {"red", "green", "blue"} and cell for cell in written["tags"])
            assert made["thresholds"] is not None  # f1_samples decides at a threshold tuned out of fold
        else:
            assert pd.to_numeric(written["count"]).notna().all()
    board = ens("leaderboard", "-w", root, "--format", "json", "--correlation")
    assert board.exit_code == 0 and len(json.loads(board.stdout)) == 3
    report = ens("report", "-w", root)
    assert report.exit_code == 0, report.output
    page = (root / "report.html").read_text()
    assert ("F1 per tag" if kind == "multi_label" else "Predicted against true") in page
