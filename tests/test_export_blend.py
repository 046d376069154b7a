"""`ens predict --blend`: a recorded blend applied to new images reproduces `ens blend`'s
submission on the competition's own test images, for every method and task kind, through the
CLI on tiny real trained workspaces."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_multi_label_competition, make_regression_competition
from tests.test_cli import ens, one_line_error


def probability_sample(root) -> None:
    """The sample submission made one probability column per class (the sample may change
    after training: experiments do not record it), so submissions hold probabilities to compare."""
    path = root / "data" / "sample_submission.csv"
    sample = pd.read_csv(path, dtype=str)
    classes = ["owl", "cat", "dog"]
    pd.DataFrame({"id": sample["id"], **{label: 1 / 3 for label in classes}}).to_csv(path, index=False)


def predict_blend(root, name: str, out, *extra):
    """--test-csv is the sample submission: the hidden test's ids in the submission's order."""
    return ens("predict", "-w", root, "--blend", name, "--test-csv", root / "data" / "sample_submission.csv", "--test-images", root / "data" / "test", "--out", out, *extra)


def assert_same_submission(predicted_path, blended_path) -> None:
    """Same columns and ids; labels or tags equal; numbers within 1e-5."""
    predicted, blended = pd.read_csv(predicted_path, dtype=str, keep_default_na=False), pd.read_csv(blended_path, dtype=str, keep_default_na=False)
    assert list(predicted.columns) == list(blended.columns)
    assert predicted.iloc[:, 0].tolist() == blended.iloc[:, 0].tolist()
    for column in predicted.columns[1:]:
        try:
            numbers = blended[column].astype(float)
        except ValueError:
            assert predicted[column].tolist() == blended[column].tolist(), column
            continue
        np.testing.assert_allclose(predicted[column].astype(float), numbers, atol=1e-5, rtol=0)


METHODS = [("mean", ()), ("rank", ()), ("power", ("--power", "3")), ("weighted", ()), ("hill", ("--hill-steps", "5")), ("stack", ()),
           ("stack", ("--meta", "lgbm")), ("stack", ("--stack-test", "mean-logits"))]


@pytest.mark.parametrize("method, options", METHODS)
def test_single_label_blend_reproduces_its_submission(trained_copy, tmp_path, method, options):
    probability_sample(trained_copy)
    name = method + ("-" + options[-1] if options else "")
    assert ens("blend", "-w", trained_copy, "-n", name, "--method", method, *options).exit_code == 0
    result = predict_blend(trained_copy, name, tmp_path / "new.csv")
    assert result.exit_code == 0, result.output
    assert_same_submission(tmp_path / "new.csv", trained_copy / "submissions" / f"{name}.csv")
    assert "images/s" in result.stdout


def test_labels_and_tuned_biases_reproduce(trained_copy, tmp_path):
    assert ens("blend", "-w", trained_copy, "-n", "tuned", "--method", "hill", "--metric", "f1_macro", "--tune-thresholds").exit_code == 0
    assert json.loads((trained_copy / "submissions" / "tuned.json").read_text())["fitted"]["decisions"] is not None
    assert predict_blend(trained_copy, "tuned", tmp_path / "new.csv").exit_code == 0
    assert (tmp_path / "new.csv").read_text() == (trained_copy / "submissions" / "tuned.csv").read_text()


def test_new_images_in_the_test_csv_order(trained_copy, tmp_path):
    """A new batch: three of the test images under new names, in another order."""
    assert ens("blend", "-w", trained_copy, "-n", "m").exit_code == 0
    new = tmp_path / "new"
    new.mkdir()
    for old, fresh in (("t004", "x1"), ("t001", "x2"), ("t007", "x3")):
        shutil.copy(trained_copy / "data" / "test" / f"{old}.png", new / f"{fresh}.png")
    pd.DataFrame({"id": ["x1", "x2", "x3"]}).to_csv(tmp_path / "new.csv", index=False)
    result = ens("predict", "-w", trained_copy, "--blend", "m", "--test-csv", tmp_path / "new.csv", "--test-images", new, "--out", tmp_path / "out.csv")
    assert result.exit_code == 0, result.output
    written = pd.read_csv(tmp_path / "out.csv", dtype=str).set_index("id")["label"]
    blended = pd.read_csv(trained_copy / "submissions" / "m.csv", dtype=str).set_index("id")["label"]
    assert written.tolist() == [blended["t004"], blended["t001"], blended["t007"]]


def test_refusals_are_one_line(trained_copy, tmp_path):
    assert ens("blend", "-w", trained_copy, "-n", "m").exit_code == 0
    (trained_copy / "data" / "test" / "t003.png").unlink()
    one_line_error(predict_blend(trained_copy, "m", tmp_path / "x.csv"), "t003.png: image not found for id 't003'")
    one_line_error(predict_blend(trained_copy, "nope", tmp_path / "x.csv"), "no blend 'nope'; run `ens blend -n nope` first")
    one_line_error(ens("predict", "-w", trained_copy, "--blend", "m", "-n", "a"), "give exactly one of --name, --blend and --bundle")
    one_line_error(ens("predict", "-w", trained_copy, "--blend", "m", "--tta", "hflip", "--test-csv", "a", "--test-images", "b", "--out", "c"), "--tta, --tta-merge")
    # A JSON written before blends recorded their parameters (hashes made to agree, as the old ens wrote them).
    path = trained_copy / "submissions" / "m.json"
    document = json.loads(path.read_text())
    del document["fitted"]
    path.write_text(json.dumps(document))
    one_line_error(predict_blend(trained_copy, "m", tmp_path / "x.csv"), "without the blend's fitted parameters; run `ens blend -n m --force`")


def test_a_blend_whose_member_changed_is_refused(trained_copy, tmp_path):
    assert ens("blend", "-w", trained_copy, "-n", "m").exit_code == 0
    test_npz = trained_copy / "models" / "b" / "test.npz"
    test_npz.write_bytes(test_npz.read_bytes() + b"\0")
    one_line_error(predict_blend(trained_copy, "m", tmp_path / "x.csv"), "models/b/test.npz: not the file blend m was fitted on")


@pytest.fixture(scope="module")
def task_workspaces(tmp_path_factory):
    """A multi-label (tags submission) and a regression workspace, each with two trained experiments, one with TTA."""
    roots = {}
    for kind, make in (("multi_label", make_multi_label_competition), ("regression", make_regression_competition)):
        root = make(tmp_path_factory.mktemp(kind) / "comp")
        assert ens("folds", "-w", root).exit_code == 0
        assert ens("train-folds", "-w", root, "-n", "a").exit_code == 0
        assert ens("train-folds", "-w", root, "-n", "b", "--model", "test_efficientnet", "--tta", "hflip").exit_code == 0
        roots[kind] = root
    return roots


TASK_BLENDS = [
    ("multi_label", "hill", ("--hill-steps", "4")),
    ("multi_label", "stack", ()),
    ("multi_label", "mean", ("--tune-thresholds",)),
    ("regression", "weighted", ()),
    ("regression", "stack", ()),
    ("regression", "hill", ()),
]


@pytest.mark.parametrize("kind, method, options", TASK_BLENDS)
def test_task_kinds_reproduce_their_submission(task_workspaces, tmp_path, kind, method, options):
    root = task_workspaces[kind]
    if "--tune-thresholds" in options:  # thresholds per tag, compared on probability columns moved by them
        root = shutil.copytree(root, tmp_path / "copy")
        sample = pd.read_csv(root / "data" / "sample_submission.csv", dtype=str)
        pd.DataFrame({"id": sample["id"], "red": 0.5, "blue": 0.5, "green": 0.5}).to_csv(root / "data" / "sample_submission.csv", index=False)
    name = f"{method}{len(options)}"
    result = ens("blend", "-w", root, "-n", name, "--method", method, *options, "--force")
    assert result.exit_code == 0, result.output
    assert predict_blend(root, name, tmp_path / "new.csv").exit_code == 0
    assert_same_submission(tmp_path / "new.csv", root / "submissions" / f"{name}.csv")
    if kind == "multi_label":
        assert json.loads((root / "submissions" / f"{name}.json").read_text())["thresholds"] is not None
