"""Defaults that follow the data (size = "auto"), and defaults that change under an existing experiment."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from test_cli import ens

from ensemble.artifacts.identity import recorded_defaults
from ensemble.config import AUTO_SIZE_RANGE, TrainSettings, auto_size
from ensemble.data.images import median_side
from ensemble.errors import EnsError
from ensemble.io import to_toml


@pytest.mark.parametrize("side, expected", [(8, 56), (28, 56), (40, 56), (56, 56), (61, 64), (64, 64), (500, 64)])
def test_auto_size_is_the_images_side_rounded_to_8_within_the_range(side, expected):
    assert auto_size(side) == expected and AUTO_SIZE_RANGE == (56, 64)


def test_median_side_reads_headers_and_names_a_bad_file(tmp_path):
    paths = []
    for index, size in enumerate([(40, 30), (50, 50), (60, 20)]):
        paths.append(tmp_path / f"{index}.png")
        Image.new("RGB", size).save(paths[-1])
    assert median_side(paths, ["a", "b", "c"]) == 50
    paths[1].write_bytes(b"not an image")
    with pytest.raises(EnsError, match=r"1\.png: cannot read image for id 'b'"):
        median_side(paths, ["a", "b", "c"])


def test_a_changed_default_is_kept_only_where_nobody_set_the_key():
    existing = {"train": {"size": 32, "epochs": 6, "lr": 0.001, "device": "cpu"}}
    record = {"train": {"size": 56, "epochs": 10, "lr": 0.002}}
    assert recorded_defaults(existing, record, {"lr"}) == {"epochs": (6, 10), "size": (32, 56)}
    assert recorded_defaults(existing, record, {"lr", "size", "epochs"}) == {}


def test_an_experiment_resumes_with_its_recorded_values_when_the_defaults_changed(competition_dir):
    # ens.toml sets neither size nor epochs: today's defaults (auto, 10) apply to new experiments.
    config = competition_dir / "ens.toml"
    text = config.read_text()
    train = text[text.index("[train]"):]
    config.write_text(text.replace(train, to_toml({"train": {"model": "test_resnet", "batch_size": 16}})))
    assert ens("folds", "-w", competition_dir).exit_code == 0
    first = ens("train-folds", "-w", competition_dir, "-n", "a", "--folds", "0", "--size", "16", "--epochs", "1")
    assert first.exit_code == 0, first.output
    resumed = ens("train-folds", "-w", competition_dir, "-n", "a")  # as if the defaults changed under it
    assert resumed.exit_code == 0, resumed.output
    assert "note: a resumes with its recorded epochs 1 (default now 10), size 16 (default now 56)" in resumed.stderr
    settings = json.loads((competition_dir / "models" / "a" / "settings.json").read_text())
    assert (settings["train"]["size"], settings["train"]["epochs"]) == (16, 1)
    assert all(len(json.loads((competition_dir / "models" / "a" / f"fold{fold}" / "result.json").read_text())["history"]) == 1 for fold in range(3))
    # size = "auto" written in ens.toml is today's rule, as if left out: still resumed, not refused.
    config.write_text(text.replace(train, to_toml({"train": {"model": "test_resnet", "batch_size": 16, "size": "auto"}})))
    written = ens("train-folds", "-w", competition_dir, "-n", "a")
    assert written.exit_code == 0 and "size 16 (default now 56)" in written.stderr, written.output
    # A value the user gives is never replaced: a different one is refused as before.
    refused = ens("train-folds", "-w", competition_dir, "-n", "a", "--epochs", "2")
    assert refused.exit_code == 1 and "train.epochs: 1 -> 2" in refused.stderr
    # A new experiment takes today's defaults: the images' own side (6-13 px here) within 56..64.
    new = ens("train-folds", "-w", competition_dir, "-n", "b", "--folds", "0", "--epochs", "1")
    assert new.exit_code == 0, new.output
    assert json.loads((competition_dir / "models" / "b" / "settings.json").read_text())["train"]["size"] == 56
    assert TrainSettings().size == "auto"
