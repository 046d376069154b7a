"""`ens demo`, the newcomer's first command, end to end on the real digits data (~50 s: marked slow)."""

import json
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from ensemble.cli import app
from ensemble.data.digits import write_digits_competition


@pytest.mark.slow
def test_demo_runs_end_to_end_and_scores_well_above_chance(tmp_path):
    root = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", str(root)])
    assert result.exit_code == 0, result.output

    made = json.loads((root / "submissions" / "demo-mean.json").read_text())
    assert [member["name"] for member in made["members"]] == ["convnext", "resnet10t"]
    assert made["oof_score"] > 0.9  # chance is 0.1
    submission = pd.read_csv(root / "submissions" / "demo-mean.csv", dtype=str)
    sample = pd.read_csv(root / "data" / "sample_submission.csv", dtype=str)
    assert list(submission.columns) == ["id", "label"] and submission["id"].tolist() == sample["id"].tolist()

    answers = pd.read_csv(root / "data" / "test_labels.csv", dtype=str)
    accuracy = (submission.merge(answers, on="id")["label_x"] == submission.merge(answers, on="id")["label_y"]).mean()
    printed = re.search(r"held-out test accuracy of the submission: ([0-9.]+) on 360 images", result.stdout)
    assert printed and float(printed.group(1)) == round(accuracy, 4) and accuracy > 0.9

    again = CliRunner().invoke(app, ["demo", str(root)])
    assert again.exit_code == 1 and "--force" in again.stderr


def test_demo_competition_is_rewritten_with_force(tmp_path):
    workspace = write_digits_competition(tmp_path / "d")
    (tmp_path / "d" / "models" / "old").mkdir()
    written = (tmp_path / "d" / "data" / "train.csv").stat().st_mtime_ns
    write_digits_competition(tmp_path / "d")  # kept, for a demo that resumes
    assert (tmp_path / "d" / "models" / "old").exists()
    assert (tmp_path / "d" / "data" / "train.csv").stat().st_mtime_ns == written
    workspace = write_digits_competition(tmp_path / "d", force=True)
    assert not (tmp_path / "d" / "models" / "old").exists()
    assert len(list((workspace.root / "data" / "train").glob("*.png"))) == 1437
    assert len(list((workspace.root / "data" / "test").glob("*.png"))) == 360
