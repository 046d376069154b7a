"""`ens init` on folders that are almost a competition: each refusal names what is wrong (issue 16, 14-18, 26)."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from typer.testing import CliRunner

from ensemble.cli import app
from ensemble.config import Workspace, expand_path, quote_path
from ensemble.errors import EnsError
from ensemble.init import Given, init_workspace
from tests.test_init import CLASSES, class_folders, class_folders_with_sample, csv, images, kaggle_style

runner = CliRunner()


def empty_class(root):
    class_folders(root)
    (root / "train" / "yak").mkdir()


def single_class(root):
    images(root / "train" / "cat", [f"c{i}" for i in range(4)], ".png")
    images(root / "test", ["u0"], ".png")


def usage_column(root):
    kaggle_style(root)
    csv(root / "sample_submission.csv", id=[f"tst_{i}" for i in range(4)], label="cat", Usage="Public")


def sample_without_suffix(root):
    class_folders_with_sample(root)
    pd.DataFrame({"file": [f"u{i}" for i in range(3)], "species": "cat"}).to_csv(root / "sample_submission.csv", index=False)


REFUSED = [
    (empty_class, {}, r"train: class folder 'yak' holds no images; add images or remove the folder"),
    (single_class, {}, r"train: one class folder \('cat'\); a competition needs two classes or more"),
    (empty_class, {"train_images": "train"}, r"class folder 'yak' holds no images.*\(--train-images\)"),
    (usage_column, {}, r"sample_submission.csv: extra column 'Usage' beside \['label'\].*name it with sample_submission"),
    (usage_column, {"submission": "probabilities"}, r"needs one column per class; missing \['cat', 'dog', 'owl'\]"),
    (usage_column, {"submission": "labels"}, r"extra column 'Usage'"),
    (sample_without_suffix, {}, r"sample_submission.csv: id 'u0' has no image in .*test \(its ids must be the test images' paths relative to it, such as 'u0.png'\)"),
]


@pytest.mark.parametrize("make, flags, message", REFUSED, ids=lambda value: getattr(value, "__name__", None))
def test_refusal_names_what_is_wrong(tmp_path, make, flags, message):
    make(tmp_path)
    if "train_images" in flags:
        flags = {**flags, "train_images": str(tmp_path / flags["train_images"])}
    with pytest.raises(EnsError, match=message) as raised:
        init_workspace(tmp_path, Given(**flags))
    assert "lists" not in str(raised.value) and "no folder of class folders" not in str(raised.value)
    assert not (tmp_path / "ens.toml").exists() and not (tmp_path / "lists").exists()


def stray_labels_csv(root):
    class_folders(root)
    csv(root / "train" / "labels.csv", name=["a", "b"], tag=["x", "y"])


def test_a_stray_csv_in_class_folders_is_settled_by_layout_or_train_images(tmp_path):
    stray_labels_csv(tmp_path)
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 1 and "use --layout folders" in result.output and result.output.count("\n") == 1
    assert runner.invoke(app, ["init", str(tmp_path), "--layout", "folders"]).exit_code == 0
    assert Workspace.load(tmp_path).competition.train_csv == "lists/train.csv"
    result = runner.invoke(app, ["init", str(tmp_path), "--force", "--train-images", str(tmp_path / "train")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["init", str(tmp_path), "--force", "--layout", "tree"])
    assert result.exit_code == 1 and "--layout: 'tree' is not one of auto, folders, csv" in result.output


def two_words(root):
    class_folders(root)
    for label in CLASSES[2:]:
        for path in (root / "train" / label).iterdir():
            path.unlink()
        (root / "train" / label).rmdir()
    csv(root / "sample_submission.csv", id=["u0.png", "u1.png", "u2.png"], label="cat")


def test_text_labels_name_positive_class_flag(tmp_path):
    two_words(tmp_path)
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "--submission positive_probability --positive-class dog" in result.output
    result = runner.invoke(app, ["init", str(tmp_path), "--force", "--submission", "positive_probability"])
    assert result.exit_code == 1 and "--positive-class" in result.output
    result = runner.invoke(app, ["init", str(tmp_path), "--force", "--submission", "positive_probability", "--positive-class", "dog"])
    assert result.exit_code == 0, result.output
    assert Workspace.load(tmp_path).competition.positive_class == "dog"


@pytest.mark.parametrize("path", ["x$HOME/a", "~x/$$y", "$", "a$", "/abs/$HOME/~", "~/plain", "${HOME}"])
def test_quoted_paths_expand_to_themselves(path):
    assert os.path.normpath(expand_path(quote_path(path))) == os.path.normpath(path)  # ./~x is ~x


def test_init_writes_paths_that_expand_back(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    source = tmp_path / "x$HOME" / "~c"
    kaggle_style(source)
    init_workspace(source, workspace=tmp_path / "elsewhere")
    workspace = Workspace.load(tmp_path / "elsewhere")
    assert workspace.path(workspace.competition.train_csv) == source / "train.csv"
    assert workspace.path(workspace.competition.train_images) == source / "train"
    inside = tmp_path / "~in$HOME"
    kaggle_style(inside)
    init_workspace(inside)
    assert Workspace.load(inside).path(Workspace.load(inside).competition.train_csv) == inside / "train.csv"
