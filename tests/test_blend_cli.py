"""`ens blend` methods and options, and the leaderboard's columns, through the CLI on the
tiny trained workspace (two experiments, three folds)."""

from __future__ import annotations

import errno
import json
import shutil

import numpy as np
import pytest

from ensemble import metrics
from ensemble.artifacts.store import load_logits
from ensemble.blend import METHODS
from tests.test_cli import ens, one_line_error, snapshot

LONG = "effnet-b0-size224-epochs20-lr3e-4-seed1"


def targets_of(root):
    import pandas as pd

    train = pd.read_csv(root / "data" / "train.csv", dtype=str)
    return np.array([("cat", "dog", "owl").index(label) for label in train["label"]])


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_writes_csv_json_and_oof_with_both_scores(trained_copy, method):
    result = ens("blend", "-w", trained_copy, "-n", "s", "--method", method)
    assert result.exit_code == 0, result.output
    made = json.loads((trained_copy / "submissions" / "s.json").read_text())
    oof = np.load(trained_copy / "submissions" / "s.oof.npz")
    assert oof["ids"].tolist()[:2] == ["0000", "0001"] and oof["classes"].tolist() == ["cat", "dog", "owl"]
    targets = targets_of(trained_copy)
    # The recorded scores are the metric of the saved probabilities: out of fold and in sample.
    assert made["oof_score_out_of_fold"] == pytest.approx(metrics.accuracy(targets, oof["probs"]))
    assert made["oof_score_in_sample"] == pytest.approx(metrics.accuracy(targets, oof["in_sample_probs"]))
    assert f"in sample {made['oof_score_in_sample']:.4f}, out of fold {made['oof_score_out_of_fold']:.4f}" in result.stdout
    assert "(submission kind: labels)" in result.stdout and made["submission"]["kind"] == "labels"
    # Labels taken from per-class ranks lean toward equal class counts: said for rank alone.
    assert ("note: rank blends per-class ranks, and labels taken from them lean toward equal class counts" in result.stderr) == (method == "rank")
    weights = [member["weight"] for member in made["members"]]
    assert weights == [None, None] if method == "stack" else sum(weights) == pytest.approx(1)
    assert set(made["inputs_sha256"]) == {"a", "b"} and made["metric"] == "accuracy"


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--method", "mean", "--power", "3"], ["--power does not apply to --method mean; it applies to: power"]),
        (["--method", "hill", "--meta", "lgbm"], ["--meta does not apply to --method hill; it applies to: stack"]),
        (["--method", "stack", "--hill-steps", "5"], ["--hill-steps does not apply to --method stack; it applies to: hill"]),
        (["--method", "power", "--power", "-1"], ["--power must be in (0, 16]"]),
        (["--method", "stack", "--meta", "xgb"], ["--meta: unknown meta-learner 'xgb'"]),
        (["--method", "stack", "--stack-test", "median"], ["--stack-test: unknown value 'median'"]),
        (["--method", "hill", "--hill-bags", "0"], ["--hill-bags must be an integer of at least 1"]),
        (["--tune-thresholds"], ["--tune-thresholds works with the metrics f1_macro, qwk, not 'accuracy'"]),
        (["--metric", "f2"], ["unknown metric 'f2'", "accuracy, auc, f1_macro, f1_samples"]),
    ],
)
def test_bad_blend_options_are_one_line_and_write_nothing(trained_copy, args, fragments):
    before = snapshot(trained_copy)
    one_line_error(ens("blend", "-w", trained_copy, "-n", "x", *args), *fragments)
    assert snapshot(trained_copy) == before


def test_metric_option_overrides_ens_toml_and_tuning_runs_for_f1(trained_copy):
    result = ens("blend", "-w", trained_copy, "-n", "f", "--method", "weighted", "--metric", "f1_macro", "--tune-thresholds")
    assert result.exit_code == 0, result.output
    made = json.loads((trained_copy / "submissions" / "f.json").read_text())
    assert made["metric"] == "f1_macro" and made["optimised"] == "logloss" and len(made["tuned_biases"]) == 3
    assert "weighted is fit by minimising logloss" in result.stdout
    board = json.loads(ens("leaderboard", "-w", trained_copy, "--format", "json", "--metric", "qwk").stdout)
    assert {row["metric"] for row in board} == {"qwk"}


@pytest.mark.parametrize("stack_test", ["per-fold", "mean-logits"])
def test_stack_applies_the_meta_learner_to_each_fold_models_test_logits(trained_copy, stack_test):
    from ensemble.blend.stack import StackBlender

    result = ens("blend", "-w", trained_copy, "-n", "st", "--method", "stack", "--stack-test", stack_test)
    assert result.exit_code == 0, result.output
    models = trained_copy / "models"
    oof = np.stack([load_logits(models / name / "oof.npz").values for name in "ab"])
    stack = StackBlender(stack_test=stack_test).fit(oof, targets_of(trained_copy))
    if stack_test == "per-fold":
        expected = np.mean(
            [stack.predict_proba(np.stack([load_logits(models / name / f"fold{fold}" / "test.npz").values for name in "ab"])) for fold in range(3)],
            axis=0,
        )
    else:
        expected = stack.predict_proba(np.stack([load_logits(models / name / "test.npz").values for name in "ab"]))
    labels = np.array(["cat", "dog", "owl"])[expected.argmax(axis=1)]
    import pandas as pd

    written = pd.read_csv(trained_copy / "submissions" / "st.csv", dtype=str)
    test_ids = load_logits(models / "a" / "test.npz").ids.tolist()
    assert written["label"].tolist() == [labels[test_ids.index(i)] for i in written["id"]]


def test_folds_come_from_the_members_own_fold_files_not_folds_csv(trained_copy):
    assert ens("folds", "-w", trained_copy, "--force", "--seed", "7").exit_code == 0  # folds.csv made again
    assert ens("blend", "-w", trained_copy, "-n", "s", "--experiments", "a,b").exit_code == 0
    fold = np.load(trained_copy / "submissions" / "s.oof.npz")["fold"]
    ids = load_logits(trained_copy / "models" / "a" / "oof.npz").ids.tolist()
    for k in range(3):
        for image_id in load_logits(trained_copy / "models" / "a" / f"fold{k}" / "oof.npz").ids:
            assert fold[ids.index(image_id)] == k


def move_one_id_between_folds(root, name):
    """Rewrite models/NAME/fold0 and fold1 as if one id had been held out by fold 1."""
    from ensemble.artifacts.store import Logits, save_logits

    zero, one = (load_logits(root / "models" / name / f"fold{k}" / "oof.npz") for k in (0, 1))
    save_logits(root / "models" / name / "fold0" / "oof.npz", Logits(zero.ids[1:], zero.classes, zero.values[1:]))
    save_logits(
        root / "models" / name / "fold1" / "oof.npz",
        Logits(np.r_[one.ids, zero.ids[:1]], one.classes, np.r_[one.values, zero.values[:1]]),
    )
    return zero.ids[0]


def test_members_trained_on_other_folds_are_refused_or_left_out(trained_copy):
    moved = move_one_id_between_folds(trained_copy, "b")
    one_line_error(
        ens("blend", "-w", trained_copy, "-n", "x", "--experiments", "a,b"),
        "models/b", "trained on other folds than a", f"id '{moved}' is in its fold 1, in a's fold 0",
    )
    result = ens("blend", "-w", trained_copy, "-n", "x")
    assert result.exit_code == 0, result.output
    assert "note: left out b: trained on other folds than a" in result.stderr


def test_a_stale_experiment_is_left_out_of_a_default_blend_with_a_note(trained_copy):
    settings = trained_copy / "models" / "b" / "settings.json"
    record = json.loads(settings.read_text())
    record["train_sha256"] = "0" * 64  # trained on another train.csv
    settings.write_text(json.dumps(record))
    result = ens("blend", "-w", trained_copy, "-n", "s")
    assert result.exit_code == 0, result.output
    assert "note: left out b: trained on another train.csv" in result.stderr
    made = json.loads((trained_copy / "submissions" / "s.json").read_text())
    assert [member["name"] for member in made["members"]] == ["a"]
    one_line_error(ens("blend", "-w", trained_copy, "-n", "t", "--experiments", "a,b"), "models/b", "trained on another train.csv")


def test_a_csv_without_its_json_counts_as_not_written(trained_copy):
    assert ens("blend", "-w", trained_copy, "-n", "s").exit_code == 0
    (trained_copy / "submissions" / "s.json").unlink()
    result = ens("blend", "-w", trained_copy, "-n", "s")  # no --force needed
    assert result.exit_code == 0, result.output
    assert (trained_copy / "submissions" / "s.json").is_file()


class Killed(BaseException):
    pass


def test_a_kill_between_the_renames_leaves_a_group_that_counts_as_not_written(trained_copy, monkeypatch):
    import os

    from ensemble.blend.run import blend_experiments
    from ensemble.config import Workspace
    from ensemble.io import group_complete
    from ensemble.results.report.collect import collect

    workspace, submissions = Workspace.load(trained_copy), trained_copy / "submissions"
    assert ens("blend", "-w", trained_copy, "-n", "b", "--method", "mean").exit_code == 0
    mean_json = (submissions / "b.json").read_text()
    real_replace, renamed = os.replace, []

    def killed_after_the_first_rename(source, target):
        if renamed:
            raise Killed
        renamed.append(target)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", killed_after_the_first_rename)
    with pytest.raises(Killed):
        blend_experiments(workspace, "b", method="hill", force=True)
    monkeypatch.undo()
    # hill's CSV beside mean's JSON: the JSON's hashes say so, and the group is not written.
    assert renamed == [submissions / "b.csv"] and (submissions / "b.json").read_text() == mean_json
    assert not group_complete(submissions / "b.json")
    assert "b" not in [blend.name for blend in collect(workspace).blends]
    for leftover in (".b.csv.x1.tmp", ".b.oof.npz.x2.tmp", ".bb.csv.x3.tmp"):  # as a SIGKILL leaves them
        (submissions / leftover).write_bytes(b"left by a kill")
    # Not replaced unasked (a hand-edited CSV looks the same): the same command as the cut one, --force and all.
    refused = ens("blend", "-w", trained_copy, "-n", "b", "--method", "hill")
    assert refused.exit_code == 1 and "files do not agree with it" in refused.output and "--force" in refused.output
    result = ens("blend", "-w", trained_copy, "-n", "b", "--method", "hill", "--force")
    assert result.exit_code == 0, result.output
    assert group_complete(submissions / "b.json") and json.loads((submissions / "b.json").read_text())["method"] == "hill"
    assert sorted(path.name for path in submissions.glob(".*.tmp")) == [".bb.csv.x3.tmp"]  # another blend's is left alone
    assert "b" in [blend.name for blend in collect(workspace).blends]
    one_line_error(ens("blend", "-w", trained_copy, "-n", "b"), "b.json: already exists; use --force")


def test_a_full_disk_writes_no_file_of_the_submission(trained_copy, monkeypatch):
    import tempfile

    real_mkstemp = tempfile.mkstemp
    calls = []

    def disk_full_at_the_second_file(*args, **kwargs):
        if kwargs.get("prefix") in (".s.csv.", ".s.oof.npz.", ".s.json."):  # the submission's files, not the blend's lock
            calls.append(kwargs["prefix"])
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", disk_full_at_the_second_file)
    one_line_error(ens("blend", "-w", trained_copy, "-n", "s"), "submissions/s.oof.npz: cannot write: No space left on device")
    assert [path.name for path in (trained_copy / "submissions").iterdir() if path.name != ".locks"] == []  # no file, no temporary
    assert list((trained_copy / "submissions" / ".locks").iterdir()) == []  # and the lock let go


def test_tables_keep_every_score_at_80_columns(trained_copy):
    """CliRunner's terminal is 80 columns wide, as a pipe is: long names wrap, scores stay whole."""
    shutil.copytree(trained_copy / "models" / "a", trained_copy / "models" / LONG)
    board = json.loads(ens("leaderboard", "-w", trained_copy, "--format", "json").stdout)
    table = ens("leaderboard", "-w", trained_copy).stdout
    assert "…" not in table
    for row in board:
        assert f"{row['oof_score']:.4f}" in table
    blended = ens("blend", "-w", trained_copy, "-n", "s")
    assert blended.exit_code == 0, blended.output
    made = json.loads((trained_copy / "submissions" / "s.json").read_text())
    assert "…" not in blended.stdout and f"{made['oof_score']:.4f}" in blended.stdout
    for member in made["members"]:
        assert f"{member['oof_score']:.4f}" in blended.stdout and f"{member['weight']:.3f}" in blended.stdout


def test_wide_leaderboard_and_correlation(trained_copy):
    shutil.copytree(trained_copy / "models" / "a", trained_copy / "models" / LONG)
    board = json.loads(ens("leaderboard", "-w", trained_copy, "--format", "json", "--correlation").stdout)
    default = ens("leaderboard", "-w", trained_copy).stdout
    assert max(len(line) for line in default.splitlines()) <= 80
    header = default.splitlines()[1].split()  # no experiment has attention or TTA: their columns give way
    assert "experiment" in header and "attention" not in header and "TTA" not in header
    table = ens("leaderboard", "-w", trained_copy, "--wide", "--correlation").stdout
    assert "…" not in table and "TTA" in table
    for row in board:
        for score in [row["oof_score"], row["fold_mean"], row["fold_std"], *row["fold_scores"]]:
            assert f"{score:.4f}" in table
        assert row["attention"] == "none" and row["sizes"] == [16] and row["tta"] == "-"
        assert set(row["correlation"]) == {"a", "b", LONG} and row["correlation"][row["name"]] == pytest.approx(1)
    a = next(row for row in board if row["name"] == "a")
    assert a["correlation"][LONG] == pytest.approx(1) and f"{a['correlation']['b']:.3f}" in table  # a copy of a


def test_leaderboard_reads_attention_sizes_and_tta_when_settings_have_them(trained_copy):
    settings = trained_copy / "models" / "a" / "settings.json"
    record = json.loads(settings.read_text())
    for key in ("attention", "stages", "tta", "tta_merge"):  # as an experiment trained before they existed
        record["train"].pop(key, None)
    settings.write_text(json.dumps(record))
    row = next(row for row in json.loads(ens("leaderboard", "-w", trained_copy, "--format", "json").stdout) if row["name"] == "a")
    assert (row["attention"], row["sizes"], row["tta"]) == ("-", [16], "-")
    stages = [{"size": 16, "epochs": 1, "trainable": "head"}, {"size": 16, "epochs": 1}, {"size": 24, "epochs": 2}]
    record["train"].update(attention="cbam", stages=stages, tta="hflip,vflip", tta_merge="gmean")
    settings.write_text(json.dumps(record))
    row = next(row for row in json.loads(ens("leaderboard", "-w", trained_copy, "--format", "json").stdout) if row["name"] == "a")
    assert (row["attention"], row["sizes"], row["tta"]) == ("cbam", [16, 24], "hflip,vflip (gmean)")
    assert "16,24" in ens("leaderboard", "-w", trained_copy).stdout


def test_two_blends_of_one_name_never_write_at_once(trained_copy, monkeypatch):
    # While one ens blend -n b is between its checks and its renames, another is refused in one
    # line: it would remove the first one's temporaries and write beside it.
    from ensemble.blend import run

    real_write_group, inner = run.write_group, []

    def another_blend_meanwhile(*args, **kwargs):
        inner.append(ens("blend", "-w", trained_copy, "-n", "b", "--method", "hill", "--force"))
        real_write_group(*args, **kwargs)

    monkeypatch.setattr(run, "write_group", another_blend_meanwhile)
    assert ens("blend", "-w", trained_copy, "-n", "b").exit_code == 0
    one_line_error(inner[0], "submissions/b: is being written by another ens blend")
    assert json.loads((trained_copy / "submissions" / "b.json").read_text())["method"] == "mean"
