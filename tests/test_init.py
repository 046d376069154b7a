"""`ens init` on competition folders laid out as hosts ship them, built here from tiny images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ensemble.cli import app
from ensemble.config import CompetitionSettings, Workspace
from ensemble.errors import EnsError
from ensemble.init import Given, init_workspace
from tests.conftest import write_image

runner = CliRunner()
CLASSES = ("cat", "dog", "owl")


def images(folder: Path, ids, suffix: str, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for index, image_id in enumerate(ids):
        write_image(folder / f"{image_id}{suffix}", index % len(CLASSES), rng, "RGB")


def csv(path: Path, **columns) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(columns).to_csv(path, index=False)


def labels_of(n: int) -> list[str]:
    return [CLASSES[index % len(CLASSES)] for index in range(n)]


def kaggle_style(root: Path) -> CompetitionSettings:
    """train.csv, test.csv, sample_submission.csv and train/ test/ folders side by side."""
    train_ids, test_ids = [f"img_{i}" for i in range(12)], [f"tst_{i}" for i in range(4)]
    csv(root / "train.csv", id=train_ids, label=labels_of(12))
    csv(root / "test.csv", id=test_ids)
    csv(root / "sample_submission.csv", id=test_ids, label="cat")
    images(root / "train", train_ids, ".png")
    images(root / "test", test_ids, ".png")
    return CompetitionSettings(
        train_csv="train.csv", test_csv="test.csv", sample_submission="sample_submission.csv",
        train_images="train", test_images="test", image_suffix=".png", task="single_label", metric="accuracy",
    )


def labels_file_nested(root: Path) -> CompetitionSettings:
    """input/train_labels.csv, no test CSV, a probabilities sample, train_images/ and test_images/ one level down."""
    train_ids, test_ids = [f"a{i}" for i in range(12)], [f"b{i}" for i in range(4)]
    csv(root / "input" / "train_labels.csv", name=train_ids, breed=labels_of(12))
    csv(root / "input" / "sampleSubmission.csv", name=test_ids, owl=0.3, cat=0.3, dog=0.4)
    images(root / "input" / "train_images", train_ids, ".png")
    images(root / "input" / "test_images", test_ids, ".png")
    (root / "input" / "label_names.json").write_text("{}")
    return CompetitionSettings(
        train_csv="input/train_labels.csv", test_csv="input/sampleSubmission.csv", sample_submission="input/sampleSubmission.csv",
        train_images="input/train_images", test_images="input/test_images", id_column="name", label_column="breed",
        image_suffix=".png", task="single_label", metric="logloss",
    )


def leading_zeros(root: Path) -> CompetitionSettings:
    """Integer ids with leading zeros; train.csv has an extra column, so the sample names the label column."""
    train_ids, test_ids = [f"{i:05d}" for i in range(12)], [f"{i:05d}" for i in range(100, 104)]
    csv(root / "data" / "train.csv", image_id=train_ids, patient=[str(i // 2) for i in range(12)], diagnosis=[str(i % 2) for i in range(12)])
    csv(root / "data" / "test.csv", image_id=test_ids)
    csv(root / "data" / "sample_submission.csv", image_id=test_ids, diagnosis="0")
    images(root / "data" / "images", train_ids + test_ids, ".png")  # one folder for both
    return CompetitionSettings(
        train_csv="data/train.csv", test_csv="data/test.csv", sample_submission="data/sample_submission.csv",
        train_images="data/images", test_images="data/images", id_column="image_id", label_column="diagnosis", image_suffix=".png",
        task="single_label", metric="accuracy",
    )


def jpeg(root: Path) -> CompetitionSettings:
    """JPEG files, a zip's doubled folder (train/train/), and stray non-image files."""
    train_ids, test_ids = [f"p{i}" for i in range(12)], [f"q{i}" for i in range(4)]
    csv(root / "train.csv", id=train_ids, label=labels_of(12))
    csv(root / "sample_submission.csv", id=test_ids, label="dog")
    images(root / "train" / "train", train_ids, ".jpg")
    images(root / "test", test_ids, ".jpg")
    (root / "test" / "Thumbs.db").write_bytes(b"x")
    (root / "README.txt").write_text("competition rules")
    return CompetitionSettings(
        train_csv="train.csv", test_csv="sample_submission.csv", sample_submission="sample_submission.csv",
        train_images="train/train", test_images="test", image_suffix=".jpg", task="single_label", metric="accuracy",
    )


def class_folders(root: Path, with_test: bool = True) -> CompetitionSettings:
    """train/<class>/<image> with mixed suffixes, beside a test folder of images."""
    for label in CLASSES:
        images(root / "train" / label, [f"{label}_{i}" for i in range(4)], ".png")
        images(root / "train" / label, [f"{label}_x"], ".jpeg")
    if with_test:
        images(root / "test", [f"u{i}" for i in range(3)], ".png")
    return CompetitionSettings(
        train_csv="lists/train.csv", test_csv="lists/test.csv", sample_submission="lists/sample_submission.csv",
        train_images="train", test_images="test", image_suffix="", submission="labels", task="single_label", metric="accuracy",
    )


def class_folders_with_sample(root: Path) -> CompetitionSettings:
    """Class folders and a sample submission whose ids are the test file names (plant-seedlings
    style), saved with a byte-order mark."""
    class_folders(root)
    frame = pd.DataFrame({"file": [f"u{i}.png" for i in range(3)], "species": "cat"})
    frame.to_csv(root / "sample_submission.csv", index=False, encoding="utf-8-sig")
    return CompetitionSettings(
        train_csv="lists/train.csv", test_csv="lists/test.csv", sample_submission="sample_submission.csv",
        train_images="train", test_images="test", id_column="file", label_column="species", image_suffix="",
        task="single_label", metric="accuracy",
    )


LAYOUTS = {"class-folders-sample": class_folders_with_sample, "kaggle": kaggle_style, "labels-file": labels_file_nested, "leading-zeros": leading_zeros, "jpeg": jpeg, "class-folders": class_folders}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_init_infers_the_expected_settings(tmp_path, layout):
    expected = LAYOUTS[layout](tmp_path)
    result = init_workspace(tmp_path)
    workspace = Workspace.load(tmp_path)  # the written file loads as it is
    assert workspace.competition == expected
    assert workspace.folds.k == next(finding.value for finding in result.findings if finding.key == "k")
    assert result.config_path == tmp_path / "ens.toml"
    text = result.config_path.read_text()
    assert "# Written by `ens init`" in text and "# model = " in text  # commented, train defaults shown


def test_class_folders_write_lists_with_relative_paths(tmp_path):
    class_folders(tmp_path)
    result = init_workspace(tmp_path)
    train = pd.read_csv(tmp_path / "lists" / "train.csv", dtype=str)
    assert train.columns.tolist() == ["id", "label"] and len(train) == 15
    assert "dog/dog_x.jpeg" in set(train["id"]) and set(train["label"]) == set(CLASSES)
    test = pd.read_csv(tmp_path / "lists" / "test.csv", dtype=str)
    assert test["id"].tolist() == ["u0.png", "u1.png", "u2.png"]
    sample = pd.read_csv(tmp_path / "lists" / "sample_submission.csv", dtype=str)
    assert sample["id"].tolist() == test["id"].tolist() and result.submission_kind == "labels"
    assert result.classes == CLASSES and result.layout == "class folders"
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".lists")]  # no staging left


def test_flags_override_guesses_and_workspace_may_be_elsewhere(tmp_path):
    source = tmp_path / "comp"
    leading_zeros(source)
    given = Given(label_column="patient", train_images=str(source / "data" / "images"), metric="logloss", group_column="image_id")
    init_workspace(source, given, workspace=tmp_path / "ws")
    workspace = Workspace.load(tmp_path / "ws")
    competition = workspace.competition
    assert competition.label_column == "patient" and competition.metric == "logloss" and competition.group_column == "image_id"
    assert workspace.folds.strategy == "group" and workspace.folds.k == 2  # the largest class (a patient) has 2 rows
    assert competition.train_csv == str(source / "data" / "train.csv")  # outside the workspace: absolute
    assert not (source / "ens.toml").exists()


def ambiguous_label(root: Path) -> None:
    kaggle_style(root)
    csv(root / "train.csv", id=[f"img_{i}" for i in range(12)], label_a=labels_of(12), label_b=labels_of(12)[::-1])
    csv(root / "sample_submission.csv", id=[f"tst_{i}" for i in range(4)], target="cat")


def mixed_suffixes(root: Path) -> None:
    kaggle_style(root)
    for index in range(0, 12, 2):
        (root / "train" / f"img_{index}.png").rename(root / "train" / f"img_{index}.jpg")


def two_samples(root: Path) -> None:
    kaggle_style(root)
    csv(root / "extra" / "sample_submission_v2.csv", id=["x"], label="cat")


def existing_config(root: Path) -> None:
    kaggle_style(root)
    (root / "ens.toml").write_text("# mine\n")


REFUSED = [
    (ambiguous_label, "several columns could be the label: \\['label_a', 'label_b'\\]; choose with --label-column"),
    (mixed_suffixes, "images found .jpg for 6, .png for 6 of 12 ids; ens needs one suffix"),
    (two_samples, "several CSVs could be the sample submission: extra/sample_submission_v2.csv, sample_submission.csv"),
    (lambda root: class_folders(root, with_test=False), "one folder per class, but no test folder of images beside it; name one with --test-images DIR"),
    (existing_config, "ens.toml: already exists; use --force"),
    (lambda root: (root / "notes").mkdir(), "no train CSV .* and no folder of class folders"),
]


@pytest.mark.parametrize("make, message", REFUSED, ids=lambda value: getattr(value, "__name__", "")[:20] or None)
def test_init_refuses_with_one_line_listing_candidates(tmp_path, make, message):
    make(tmp_path)
    before = sorted(path.name for path in tmp_path.rglob("*"))
    with pytest.raises(EnsError, match=message):
        init_workspace(tmp_path)
    assert sorted(path.name for path in tmp_path.rglob("*")) == before  # nothing written
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 1 and result.output.startswith("error: ") and result.output.count("\n") == 1


def test_refused_guess_is_settled_by_a_flag(tmp_path):
    ambiguous_label(tmp_path)
    result = runner.invoke(app, ["init", str(tmp_path), "--label-column", "label_b"])
    assert result.exit_code == 0, result.output
    assert "label_column       'label_b'" in result.stdout and "given with --label-column" in result.stdout
    assert Workspace.load(tmp_path).competition.label_column == "label_b"
    assert runner.invoke(app, ["init", str(tmp_path)]).exit_code == 1  # ens.toml exists now
    result = runner.invoke(app, ["init", str(tmp_path), "--force", "--label-column", "label_a"])
    assert result.exit_code == 0 and Workspace.load(tmp_path).competition.label_column == "label_a"


def test_inferred_class_folder_workspace_trains_end_to_end(tmp_path):
    class_folders(tmp_path)
    assert runner.invoke(app, ["init", str(tmp_path)]).exit_code == 0
    result = runner.invoke(app, ["folds", "-w", str(tmp_path), "--k", "2"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["train-folds", "-w", str(tmp_path), "-n", "tiny", "--model", "test_resnet", "--size", "16", "--epochs", "1", "--batch-size", "8"]
    )
    assert result.exit_code == 0, result.output
    assert "tiny: OOF accuracy" in result.stdout
    assert (tmp_path / "models" / "tiny" / "oof.npz").is_file()


def test_given_settings_dataclass_matches_the_competition_fields():
    # Every flag of init names a CompetitionSettings key, so a guess can always be overridden.
    competition_keys = {field.name for field in dataclasses.fields(CompetitionSettings)}
    assert {field.name for field in dataclasses.fields(Given)} == competition_keys
