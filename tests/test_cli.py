"""The commands a user runs, through Typer's CliRunner on tiny real workspaces."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ensemble import __version__, metrics
from ensemble.artifacts.store import load_logits
from ensemble.cli import app
from ensemble.io import sha256_file

runner = CliRunner()


def ens(*args: str):
    return runner.invoke(app, [str(arg) for arg in args])


def test_version_and_help():
    result = ens("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"ens {__version__}"
    for command in ("folds", "train-folds", "leaderboard", "blend", "demo", "init", "report"):
        result = ens(command, "--help")
        assert result.exit_code == 0, command
        assert "Example: ens" in result.stdout, command


def test_folds_then_train_writes_aligned_logits(competition_dir):
    assert ens("folds", "-w", competition_dir).exit_code == 0
    folds = pd.read_csv(competition_dir / "folds" / "folds.csv", dtype=str)
    train = pd.read_csv(competition_dir / "data" / "train.csv", dtype=str)
    assert folds["id"].tolist() == train["id"].tolist()  # ids keep their leading zeros
    assert sorted(folds["fold"].unique()) == ["0", "1", "2"]

    result = ens("train-folds", "-w", competition_dir, "--name", "r", "--epochs", "2")
    assert result.exit_code == 0, result.output
    root = competition_dir / "models" / "r"
    oof, test = load_logits(root / "oof.npz"), load_logits(root / "test.npz")
    assert oof.ids.tolist() == train["id"].tolist()
    assert oof.classes == ("cat", "dog", "owl")
    assert oof.values.shape == (36, 3) and oof.values.dtype == np.float32
    test_ids = pd.read_csv(competition_dir / "data" / "test.csv", dtype=str)["id"].tolist()
    assert test.ids.tolist() == test_ids and test.values.shape == (10, 3)

    # Each OOF row comes from the model of its own fold, and the test logits are the fold mean.
    fold_of = dict(zip(folds["id"], folds["fold"].astype(int)))
    fold_tests = []
    for fold in range(3):
        fold_oof = load_logits(root / f"fold{fold}" / "oof.npz")
        assert {fold_of[i] for i in fold_oof.ids} == {fold}
        rows = [train["id"].tolist().index(i) for i in fold_oof.ids]
        np.testing.assert_array_equal(oof.values[rows], fold_oof.values)
        fold_tests.append(load_logits(root / f"fold{fold}" / "test.npz").values)
        assert (root / f"fold{fold}" / "model.pt").is_file()
        assert not (root / f"fold{fold}" / "resume.pt").exists()
    np.testing.assert_allclose(test.values, np.mean(fold_tests, axis=0), rtol=1e-5, atol=1e-6)

    # The printed and stored OOF score is the metric of the stored logits.
    targets = np.array([oof.classes.index(label) for label in train["label"]])
    scores = json.loads((root / "scores.json").read_text())
    assert scores["oof_score"] == pytest.approx(metrics.accuracy(targets, metrics.softmax(oof.values)))
    assert f"OOF accuracy {scores['oof_score']:.4f}" in result.stdout
    settings = json.loads((root / "settings.json").read_text())
    assert settings["train"]["epochs"] == 2 and settings["train"]["model"] == "test_resnet"


def test_leaderboard_json_and_table(trained_copy):
    result = ens("leaderboard", "-w", trained_copy, "--format", "json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert {row["name"] for row in rows} == {"a", "b"}
    for row in rows:
        assert row["metric"] == "accuracy" and len(row["fold_scores"]) == 3
        assert 0 <= row["oof_score"] <= 1
    assert rows[0]["oof_score"] >= rows[1]["oof_score"]  # best first
    table = ens("leaderboard", "-w", trained_copy)
    assert table.exit_code == 0
    for row in rows:
        line = next(line for line in table.stdout.splitlines() if f" {row['name']} " in line)
        assert row["model"] in line and f"{row['oof_score']:.4f}" in line


@pytest.mark.parametrize("sample", ["labels", "probabilities"])
def test_blend_writes_submission_shaped_like_the_sample(tmp_path, sample, trained_dir):
    import shutil

    from tests.conftest import make_competition

    root = tmp_path / "ws"
    shutil.copytree(trained_dir, root)
    make_competition(root, sample=sample)  # same data, other sample submission shape
    result = ens("blend", "-w", root, "--name", "s1")
    assert result.exit_code == 0, result.output
    written = pd.read_csv(root / "submissions" / "s1.csv", dtype=str)
    expected = pd.read_csv(root / "data" / "sample_submission.csv", dtype=str)
    assert list(written.columns) == list(expected.columns)
    assert written["id"].tolist() == expected["id"].tolist()
    if sample == "labels":
        assert set(written["label"]) <= {"cat", "dog", "owl"}
    else:
        np.testing.assert_allclose(written[["owl", "dog", "cat"]].astype(float).sum(axis=1), 1, atol=1e-5)
    made = json.loads((root / "submissions" / "s1.json").read_text())
    assert made["method"] == "mean" and [m["name"] for m in made["members"]] == ["a", "b"]
    assert sum(m["weight"] for m in made["members"]) == pytest.approx(1)
    assert f"{made['oof_score']:.4f}" in result.stdout
    assert f"(submission kind: {made['submission']['kind']})" in result.stdout and made["submission"]["kind"] == sample


def test_blend_score_is_the_mean_of_member_probabilities(trained_copy):
    assert ens("blend", "-w", trained_copy, "--name", "m", "--experiments", "a,b").exit_code == 0
    made = json.loads((trained_copy / "submissions" / "m.json").read_text())
    train = pd.read_csv(trained_copy / "data" / "train.csv", dtype=str)
    probs = [metrics.softmax(load_logits(trained_copy / "models" / n / "oof.npz").values) for n in "ab"]
    targets = np.array([("cat", "dog", "owl").index(label) for label in train["label"]])
    assert made["oof_score"] == pytest.approx(metrics.accuracy(targets, np.mean(probs, axis=0)))


def test_resume_keeps_finished_folds(trained_copy):
    result = ens("train-folds", "-w", trained_copy, "--name", "c", "--folds", "0")
    assert result.exit_code == 0, result.output
    assert "not every fold" in result.stdout
    board = json.loads(ens("leaderboard", "-w", trained_copy, "--format", "json").stdout)
    c = next(row for row in board if row["name"] == "c")
    assert c["oof_score"] is None and c["fold_scores"][1:] == [None, None]
    first = (trained_copy / "models" / "c" / "fold0" / "oof.npz").read_bytes()
    again = ens("train-folds", "-w", trained_copy, "--name", "c", "--folds", "0")  # nothing left: not an error
    assert again.exit_code == 0 and "nothing trained" in again.stderr, again.output
    assert (trained_copy / "models" / "c" / "fold0" / "oof.npz").read_bytes() == first

    result = ens("train-folds", "-w", trained_copy, "--name", "c")
    assert result.exit_code == 0, result.output
    assert "kept finished folds [0]" in result.output
    assert (trained_copy / "models" / "c" / "fold0" / "oof.npz").read_bytes() == first
    assert (trained_copy / "models" / "c" / "oof.npz").is_file()


def test_blend_says_which_experiments_it_left_out(trained_copy):
    assert ens("train-folds", "-w", trained_copy, "--name", "c", "--folds", "1").exit_code == 0
    result = ens("blend", "-w", trained_copy, "--name", "s")
    assert result.exit_code == 0 and "note: left out c: not every fold is trained (done: [1]); run `ens train-folds --name c` again" in result.stderr
    made = json.loads((trained_copy / "submissions" / "s.json").read_text())
    assert [member["name"] for member in made["members"]] == ["a", "b"]


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output


def snapshot(root):
    return {path: path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["folds"], ["folds.csv", "already exists", "--force"]),
        (["blend", "--name", "x", "--experiments", "a,nope"], ["nope", "experiments: a, b"]),
        (["blend", "--name", "x", "--method", "median"], ["unknown blend method 'median'", "mean"]),
        (["blend", "--name", "bad/name"], ["blend name 'bad/name'"]),
        (["train-folds", "--name", "a", "--lr", "0.5"], ["other settings", "train.lr: 0.001 -> 0.5"]),
        (["train-folds", "--name", "n", "--folds", "7"], ["fold 7 does not exist"]),
        (["train-folds", "--name", "n", "--model", "no_such_net"], ["unknown timm model 'no_such_net'"]),
        (["train-folds", "--name", "n", "--model", "test_convnext"], ["cannot take 16x16 images", "--size"]),
        (["train-folds", "--name", "n", "--epochs", "0"], ["epochs must be at least 1"]),
        (["train-folds", "--name", "n", "--batch-size", "1"], ["batch_size must be at least 2"]),
        (["train-folds", "--name", "n", "--seed", "-1"], ["seed must be between 0 and 4294967295"]),
        (["folds", "--force", "--seed", "4294967296"], ["folds seed must be between 0 and 4294967295, got 4294967296"]),
        (["train-folds", "--name", "r10\n"], ["experiment name 'r10\\n' must start with a letter"]),
        (["blend", "--name", "b" * 300], ["blend name 'bbbbbbbbbbbbbbbbbbbb'... has 300 characters; at most 200"]),
        (["blend", "--name", "x", "--experiments", "all"], ["no experiment named 'all'", "experiments: a, b"]),
        (["train-folds", "--name", "n", "--model", "test_vit", "--size", "40"], ["multiple of its patch size 16, e.g. 32 or 48"]),
        (["train-folds", "--name", "a", "--folds", ",", "--force"], ["--folds: cannot read ','"]),
        (["train-folds", "--name", "n", "--device", "cuda"], ["no CUDA device"]),
        (["folds", "--force", "--k", "13"], ["12 rows in the largest class cannot fill 13 stratified folds", "use --k 12 or fewer"]),
        (["folds", "--force", "--strategy", "group"], ["needs group_column"]),
    ],
)
def test_refusals_are_one_line_and_write_nothing(trained_copy, args, fragments):
    before = snapshot(trained_copy)
    one_line_error(ens(*args, "-w", trained_copy), *fragments)
    assert snapshot(trained_copy) == before


@pytest.mark.parametrize("folds", [[], ["--folds", "1"]])
def test_a_rerun_with_nothing_to_train_succeeds_and_prints_its_scores(trained_copy, folds):
    """A script that reruns the command after a crash must not stop on a finished experiment."""
    before = {path: mtime for path, mtime in snapshot(trained_copy).items() if path.name != "scores.json"}
    result = ens("train-folds", "-w", trained_copy, "--name", "a", *folds)
    assert result.exit_code == 0, result.output
    scores = json.loads((trained_copy / "models" / "a" / "scores.json").read_text())
    assert "nothing trained" in result.stderr and "--force" in result.stderr
    assert "fold scores " + " ".join(f"{score:.4f}" for score in scores["fold_scores"]) in result.stderr
    assert f"OOF accuracy {scores['oof_score']:.4f}" in result.stdout
    assert {path: mtime for path, mtime in snapshot(trained_copy).items() if path.name != "scores.json"} == before
    forced = ens("train-folds", "-w", trained_copy, "--name", "a", "--folds", "1", "--force")
    assert forced.exit_code == 0 and "fold 1 epoch 1/1" in forced.stderr, forced.output


def test_existing_blend_needs_force(trained_copy):
    assert ens("blend", "-w", trained_copy, "--name", "s").exit_code == 0
    before = snapshot(trained_copy)
    one_line_error(ens("blend", "-w", trained_copy, "--name", "s"), "s.csv", "--force")
    assert snapshot(trained_copy) == before
    assert ens("blend", "-w", trained_copy, "--name", "s", "--force").exit_code == 0


def test_missing_workspace_config(tmp_path):
    one_line_error(ens("leaderboard", "-w", tmp_path), "ens.toml", "not found")


def test_a_run_stopped_before_combining_folds_finishes_without_training(trained_copy):
    (trained_copy / "models" / "a" / "oof.npz").unlink()
    (trained_copy / "models" / "a" / "test.npz").unlink()
    result = ens("train-folds", "-w", trained_copy, "--name", "a")
    assert result.exit_code == 0, result.output
    assert "fold 0" not in result.stderr  # nothing trained again
    assert (trained_copy / "models" / "a" / "oof.npz").is_file()
    assert ens("blend", "-w", trained_copy, "--name", "s", "--experiments", "a").exit_code == 0


def test_changing_the_metric_rescores_without_retraining(trained_copy):
    config = trained_copy / "ens.toml"
    config.write_text(config.read_text().replace('metric = "auto"', 'metric = "logloss"'))
    board = json.loads(ens("leaderboard", "-w", trained_copy, "--format", "json").stdout)
    train = pd.read_csv(trained_copy / "data" / "train.csv", dtype=str)
    targets = np.array([("cat", "dog", "owl").index(label) for label in train["label"]])
    for row in board:
        oof = load_logits(trained_copy / "models" / row["name"] / "oof.npz")
        assert row["metric"] == "logloss"
        assert row["oof_score"] == pytest.approx(metrics.logloss(targets, metrics.softmax(oof.values)))
    assert board[0]["oof_score"] <= board[1]["oof_score"]  # lower is better now
    result = ens("train-folds", "-w", trained_copy, "--name", "a", "--folds", "0", "--force")
    assert result.exit_code == 0, result.output  # the metric is not part of what was trained
    blended = ens("blend", "-w", trained_copy, "--name", "l")
    assert blended.exit_code == 0 and "OOF logloss" in blended.stdout


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: text.replace("0001,dog", "0001,owl"),  # relabelled
        lambda text: text.replace("0000,cat\n", ""),  # a row dropped
        lambda text: text.replace(",cat", ",zebra"),  # a class renamed
    ],
)
def test_experiments_trained_on_other_data_are_not_scored_or_blended(trained_copy, edit):
    train_csv = trained_copy / "data" / "train.csv"
    train_csv.write_text(edit(train_csv.read_text()))
    result = ens("leaderboard", "-w", trained_copy, "--format", "json")
    assert result.exit_code == 0, result.output
    for row in json.loads(result.stdout):
        assert row["oof_score"] is None and row["fold_scores"] == [None] * 3
        assert "trained on another train.csv" in row["note"]
    one_line_error(ens("blend", "-w", trained_copy, "--name", "x", "--experiments", "a"), "models/a", "trained on another train.csv")


def test_naming_a_group_column_keeps_experiments(trained_copy):
    from tests.conftest import add_group_column

    add_group_column(trained_copy, "site", lambda row: f"s{row % 6}")
    assert ens("blend", "-w", trained_copy, "--name", "x").exit_code == 0
    board = json.loads(ens("leaderboard", "-w", trained_copy, "--format", "json").stdout)
    assert all(row["oof_score"] is not None and row["note"] is None for row in board)


def test_integer_labels_jpeg_images_and_group_folds_end_to_end(tmp_path):
    from tests.conftest import add_group_column, make_competition

    root = make_competition(tmp_path / "c", labels=("10", "2", "1"), suffix=".jpg", n_train=30)
    frame = add_group_column(root, "site", lambda row: f"s{row % 6}")

    assert ens("folds", "-w", root, "--strategy", "group").exit_code == 0
    folds = pd.read_csv(root / "folds" / "folds.csv", dtype=str).merge(frame, on="id")
    assert folds.groupby("site")["fold"].nunique().max() == 1
    assert ens("train-folds", "-w", root, "-n", "j").exit_code == 0
    assert load_logits(root / "models" / "j" / "oof.npz").classes == ("1", "2", "10")
    assert ens("blend", "-w", root, "-n", "s").exit_code == 0
    written = pd.read_csv(root / "submissions" / "s.csv", dtype=str)
    assert set(written["label"]) <= {"1", "2", "10"}


def test_error_text_in_brackets_is_printed_as_is(tmp_path):
    (tmp_path / "ens.toml").write_text("[trian]\n")
    one_line_error(ens("leaderboard", "-w", tmp_path), "unknown section [trian]; expected: competition, folds, train")


def test_corrupt_image_stops_training_before_anything_is_written(competition_dir):
    assert ens("folds", "-w", competition_dir).exit_code == 0
    (competition_dir / "data" / "test" / "t003.png").write_bytes(b"\\x89PNG broken")
    one_line_error(ens("train-folds", "-w", competition_dir, "-n", "x"), "t003.png: cannot read image for id 't003'")
    assert not (competition_dir / "models" / "x").exists()


def test_module_entry_point():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "ensemble", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"ens {__version__}"


def test_demo_force_never_clears_a_real_workspace(competition_dir):
    before = snapshot(competition_dir)
    one_line_error(ens("demo", competition_dir, "--force"), "not written by `ens demo`")
    assert snapshot(competition_dir) == before


def test_a_renamed_experiment_folder_resumes_and_stale_temporaries_go(trained_copy):
    models = trained_copy / "models"
    (models / "c").mkdir()
    for name in ("settings.json", "scores.json"):
        (models / "c" / name).write_bytes((models / "a" / name).read_bytes())
    (models / "a" / "fold0").rename(models / "c" / "fold0")
    (models / "c" / "fold1").mkdir()
    (models / "c" / "fold1" / ".resume.pt.x1.tmp").write_bytes(b"left by a kill")
    result = ens("train-folds", "-w", trained_copy, "--name", "c")
    assert result.exit_code == 0, result.output
    assert "kept finished folds [0]" in result.stderr
    assert not list(models.glob("c/**/.*.tmp"))


def test_a_fold_that_would_train_on_one_row_is_refused(tmp_path):
    from ensemble.config import Workspace
    from ensemble.data.competition import load_competition
    from tests.conftest import make_competition

    root = make_competition(tmp_path / "c", n_train=4, labels=("x", "y"))
    folds_csv = root / "folds" / "folds.csv"
    folds_csv.parent.mkdir()
    folds_csv.write_text("id,fold\n0000,0\n0001,0\n0002,0\n0003,1\n")  # fold 0 trains on 0003 alone
    meta = {
        "k": 2,
        "train_sha256": load_competition(Workspace.load(root)).train_hash,
        "folds_sha256": sha256_file(folds_csv),
    }
    (root / "folds" / "folds.json").write_text(json.dumps(meta))
    one_line_error(ens("train-folds", "-w", root, "-n", "x"), "fold 0's model would train on fewer than 2 rows")
    assert not (root / "models" / "x").exists()
