"""`ens train-folds --pseudo/--distill BLEND`: students of every task kind through the CLI, their
identity, resume, and the one-line refusals of a teacher that cannot teach."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from ensemble.errors import EnsError
from ensemble.metrics import get
from ensemble.training.student import Lesson
from ensemble.training.trainer import train_fold
from tests.conftest import make_multi_label_competition, make_regression_competition
from tests.test_cli import ens
from tests.test_train import SETTINGS, fold_data, kill_then_resume


def one_error_line(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def settings_of(root, name: str) -> dict:
    return json.loads((root / "models" / name / "settings.json").read_text())


def test_students_train_resume_and_are_marked(trained_copy):
    root = trained_copy
    assert ens("blend", "-w", root, "-n", "hb", "--method", "hill").exit_code == 0
    pseudo = ens("train-folds", "-w", root, "-n", "p", "--pseudo", "hb", "--pseudo-threshold", "0.34", "--pseudo-weight", "0.5")
    assert pseudo.exit_code == 0, pseudo.output
    assert "teacher: pseudo-labels from blend hb (hard, at least 0.34 sure, weight 0.5)" in pseudo.stderr
    assert "each fold's from the blend fitted without it" in pseudo.stderr
    record = settings_of(root, "p")["teacher"]
    blend_hash = hashlib.sha256((root / "submissions" / "hb.json").read_bytes()).hexdigest()
    assert record == {"pseudo": {"blend": "hb", "blend_sha256": blend_hash, "nested": True, "threshold": 0.34, "weight": 0.5}, "distill": None}
    distill = ens("train-folds", "-w", root, "-n", "d", "--distill", "hb", "--pseudo", "hb", "--mixup", "0.2")
    assert distill.exit_code == 0, distill.output
    assert settings_of(root, "d")["teacher"]["distill"]["alpha"] == 0.25

    again = ens("train-folds", "-w", root, "-n", "p", "--pseudo", "hb", "--pseudo-threshold", "0.34", "--pseudo-weight", "0.5")
    assert again.exit_code == 0 and "nothing trained" in again.stderr
    one_error_line(ens("train-folds", "-w", root, "-n", "p", "--pseudo", "hb"), "teacher", "--force")
    one_error_line(ens("train-folds", "-w", root, "-n", "p"), "--pseudo hb (its JSON", "-> no teacher")

    board = ens("leaderboard", "-w", root, "--format", "json")
    teachers = {row["name"]: row["teacher"] for row in json.loads(board.stdout)}
    assert teachers == {"a": "-", "b": "-", "p": "pseudo:hb", "d": "pseudo:hb+distill:hb"}
    table = ens("leaderboard", "-w", root)
    assert "note: d: distilled" in table.stderr and "note: p:" not in table.stderr
    blended = ens("blend", "-w", root, "-n", "with-d", "--experiments", "a,d,p")
    assert blended.exit_code == 0 and "d is distilled" in blended.stderr and "p is" not in blended.stderr

    # The blend written again is another teacher: its students are refused until --force.
    assert ens("blend", "-w", root, "-n", "hb", "--method", "mean", "--experiments", "a,b", "--force").exit_code == 0
    one_error_line(ens("train-folds", "-w", root, "-n", "p", "--pseudo", "hb", "--pseudo-threshold", "0.34", "--pseudo-weight", "0.5"), "teacher.pseudo.blend_sha256")


def test_a_teacher_that_cannot_teach_is_refused_before_anything_is_written(trained_copy):
    root = trained_copy
    assert ens("blend", "-w", root, "-n", "hb", "--method", "hill").exit_code == 0
    refusals = [
        (["--pseudo", "nothing"], ["no blend 'nothing'"]),
        (["--pseudo-threshold", "0.9"], ["--pseudo-threshold tunes --pseudo BLEND"]),
        (["--distill-alpha", "0.3"], ["--distill-alpha tunes --distill BLEND"]),
        (["--pseudo", "hb", "--pseudo-threshold", "1.5"], ["--pseudo-threshold 1.5"]),
        (["--distill", "hb", "--distill-alpha", "0"], ["--distill-alpha 0"]),
    ]
    for flags, fragments in refusals:
        one_error_line(ens("train-folds", "-w", root, "-n", "new", *flags), *fragments)
    one_error_line(ens("train-folds", "-w", root, "-n", "a", "--pseudo", "hb", "--force"), "a is a member of blend hb")
    assert not (root / "models" / "new").exists()

    assert ens("train-folds", "-w", root, "-n", "b", "--epochs", "1", "--force").exit_code == 0  # b's logits change
    one_error_line(ens("train-folds", "-w", root, "-n", "new", "--distill", "hb"), "not the file blend hb was fitted on")
    assert ens("blend", "-w", root, "-n", "hb", "--method", "hill", "--force").exit_code == 0

    assert ens("folds", "-w", root, "--seed", "7", "--force").exit_code == 0  # other folds than the members'
    one_error_line(ens("train-folds", "-w", root, "-n", "new", "--pseudo", "hb"), "members were trained on other folds")
    assert ens("folds", "-w", root, "--force").exit_code == 0

    train_csv = root / "data" / "train.csv"
    train_csv.write_text(train_csv.read_text().replace("0000,cat", "0000,dog"))
    assert ens("folds", "-w", root, "--force").exit_code == 0
    one_error_line(ens("train-folds", "-w", root, "-n", "new", "--pseudo", "hb"), "other train data")
    assert not (root / "models" / "new").exists()


@pytest.mark.parametrize("kind, make", [("multi_label", make_multi_label_competition), ("regression", make_regression_competition)])
def test_students_of_every_task_kind(kind, make, tmp_path):
    root = make(tmp_path / kind, n_train=30)
    assert ens("folds", "-w", root).exit_code == 0
    for name in ("a", "b"):
        assert ens("train-folds", "-w", root, "-n", name, "--seed", str(len(name) + ord(name))).exit_code == 0
    assert ens("blend", "-w", root, "-n", "w", "--method", "weighted").exit_code == 0
    result = ens("train-folds", "-w", root, "-n", "s", "--pseudo", "w", "--distill", "w", "--distill-alpha", "0.7")
    assert result.exit_code == 0, result.output
    assert (root / "models" / "s" / "oof.npz").is_file()
    threshold = ens("train-folds", "-w", root, "-n", "h", "--pseudo", "w", "--pseudo-threshold", "0.5")
    if kind == "regression":
        one_error_line(threshold, "hard pseudo-labels mean nothing for a regression")
        assert not (root / "models" / "h").exists()
    else:  # every tag of every image is at least 0.5 sure, yes or no
        assert threshold.exit_code == 0 and "(hard, at least 0.5 sure, weight 1) on 10 of 10 test images" in threshold.stderr, threshold.output


def test_an_experiment_recorded_before_teachers_resumes(trained_copy):
    path = trained_copy / "models" / "a" / "settings.json"
    record = json.loads(path.read_text())
    assert record.pop("teacher") is None
    path.write_text(json.dumps(record))
    again = ens("train-folds", "-w", trained_copy, "-n", "a")
    assert again.exit_code == 0 and "nothing trained" in again.stderr, again.output


def test_a_student_fold_resumes_bit_for_bit(tmp_path):
    data = fold_data()
    rng = np.random.default_rng(1)
    soft = rng.dirichlet(np.ones(3), size=len(data.targets))
    lesson = Lesson(train_targets=soft, test_rows=np.array([0, 2, 5]), test_targets=rng.dirichlet(np.ones(3), size=3), test_weight=0.5)
    settings = dataclasses.replace(SETTINGS, mixup=0.2)
    straight, _, _ = kill_then_resume(dataclasses.replace(data, lesson=lesson), settings, tmp_path, kill_after_epoch=2, metric=get("accuracy"))
    plain = train_fold(data, settings, 0, get("accuracy"), tmp_path / "plain.pt")
    assert not np.array_equal(straight.valid_logits, plain.valid_logits)  # the lesson is what it learnt
    # A fold stopped midway goes on only with the lesson its saved epochs learnt.
    other = dataclasses.replace(lesson, test_weight=2.0)
    with pytest.raises(EnsError, match="fold 0: its teacher's targets differ from those its saved epochs learnt"):
        train_fold(dataclasses.replace(data, lesson=other), dataclasses.replace(settings, epochs=4), 0, get("accuracy"), tmp_path / "killed.pt")
