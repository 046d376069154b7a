"""Fixtures that make tiny real competitions on disk; nothing is downloaded."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ensemble.config import CompetitionSettings
from ensemble.io import to_toml

# Tiny timm models: fast on two CPU cores, and they accept 16x16 images.
TINY_TRAIN = {"model": "test_resnet", "size": 16, "epochs": 1, "batch_size": 16}


def write_image(path: Path, label_index: int, rng: np.random.Generator, mode: str) -> None:
    """A small image whose brightness depends on the class, in one of several modes and sizes."""
    height, width = rng.integers(6, 14, size=2)
    level = 40 + 80 * label_index
    pixels = np.clip(rng.normal(level, 20, size=(height, width, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, mode="RGB")
    if mode == "L":
        image = image.convert("L")
    elif mode == "RGBA":
        image = image.convert("RGBA")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def make_competition(
    root: Path,
    n_train: int = 36,
    n_test: int = 10,
    labels=("cat", "dog", "owl"),
    suffix: str = ".png",
    sample: str = "labels",
    train_section: dict | None = None,
    seed: int = 0,
) -> Path:
    """Write a competition and its ens.toml into root; returns root.

    Mixed image modes and sizes; ids with leading zeros; sample submission kind
    'labels' (id, label) or 'probabilities' (id, one column per class, shuffled order).
    """
    rng = np.random.default_rng(seed)
    settings = CompetitionSettings(image_suffix=suffix)
    modes = ["RGB", "L", "RGBA"] if suffix == ".png" else ["RGB", "L"]
    train_ids = [f"{index:04d}" for index in range(n_train)]
    train_labels = [labels[index % len(labels)] for index in range(n_train)]
    for index, (image_id, label) in enumerate(zip(train_ids, train_labels)):
        write_image(root / settings.train_images / f"{image_id}{suffix}", labels.index(label), rng, modes[index % len(modes)])
    test_ids = [f"t{index:03d}" for index in range(n_test)]
    for index, image_id in enumerate(test_ids):
        write_image(root / settings.test_images / f"{image_id}{suffix}", index % len(labels), rng, modes[index % len(modes)])
    pd.DataFrame({"id": train_ids, "label": train_labels}).to_csv(root / settings.train_csv, index=False)
    pd.DataFrame({"id": test_ids}).to_csv(root / settings.test_csv, index=False)
    # The sample lists the test ids in another order than test.csv: submissions follow the sample.
    sample_ids = list(reversed(test_ids))
    if sample == "labels":
        frame = pd.DataFrame({"id": sample_ids, "label": labels[0]})
    else:
        frame = pd.DataFrame({"id": sample_ids, **{label: 1 / len(labels) for label in reversed(labels)}})
    frame.to_csv(root / settings.sample_submission, index=False)
    sections = {"competition": settings, "folds": {"k": 3}, "train": {**TINY_TRAIN, **(train_section or {})}}
    (root / "ens.toml").write_text(to_toml(sections))
    return root


TAGS = ("red", "green", "blue")


def make_multi_label_competition(root: Path, n_train: int = 36, n_test: int = 10, sample: str = "tags", seed: int = 0, train_section: dict | None = None) -> Path:
    """A multi-label competition: `id,tags` with space-separated tags from TAGS, each tag
    lighting its colour channel; sample 'tags' (id, tags) or 'probabilities' (one column per tag)."""
    rng = np.random.default_rng(seed)
    settings = CompetitionSettings()

    def tags_of(index: int) -> list[str]:
        chosen = [tag for tag in TAGS if rng.random() < 0.4]
        return chosen or [TAGS[index % len(TAGS)]]

    def write(path: Path, tags: list[str]) -> None:
        pixels = np.clip(rng.normal(30, 15, size=(12, 12, 3)), 0, 255)
        for tag in tags:
            pixels[..., TAGS.index(tag)] += 170
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB").save(path)

    train_ids = [f"{index:04d}" for index in range(n_train)]
    train_tags = [tags_of(index) for index in range(n_train)]
    for image_id, tags in zip(train_ids, train_tags):
        write(root / settings.train_images / f"{image_id}.png", tags)
    test_ids = [f"t{index:03d}" for index in range(n_test)]
    for index, image_id in enumerate(test_ids):
        write(root / settings.test_images / f"{image_id}.png", tags_of(index))
    pd.DataFrame({"id": train_ids, "tags": [" ".join(tags) for tags in train_tags]}).to_csv(root / settings.train_csv, index=False)
    pd.DataFrame({"id": test_ids}).to_csv(root / settings.test_csv, index=False)
    sample_ids = list(reversed(test_ids))
    if sample == "tags":
        frame = pd.DataFrame({"id": sample_ids, "tags": "red"})
    else:
        frame = pd.DataFrame({"id": sample_ids, **{tag: 0.5 for tag in reversed(TAGS)}})
    frame.to_csv(root / settings.sample_submission, index=False)
    competition = dataclasses.replace(settings, label_column="tags", task="multi_label")
    sections = {"competition": competition, "folds": {"k": 3}, "train": {**TINY_TRAIN, **(train_section or {})}}
    (root / "ens.toml").write_text(to_toml(sections))
    return root


def make_regression_competition(root: Path, n_train: int = 36, n_test: int = 10, seed: int = 0, train_section: dict | None = None) -> Path:
    """A regression competition: `image_id,count` with whole counts 0-9 (the ambiguous case:
    ens.toml says task = "regression", metric = "rmse"), the image's brightness growing with the count."""
    rng = np.random.default_rng(seed)
    settings = CompetitionSettings(id_column="image_id", label_column="count", task="regression", metric="rmse")

    def write(path: Path, count: int) -> None:
        pixels = np.clip(rng.normal(20 + 22 * count, 10, size=(12, 12, 3)), 0, 255).astype(np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode="RGB").save(path)

    train_ids = [f"{index:04d}" for index in range(n_train)]
    counts = [index % 10 for index in range(n_train)]
    for image_id, count in zip(train_ids, counts):
        write(root / settings.train_images / f"{image_id}.png", count)
    test_ids = [f"t{index:03d}" for index in range(n_test)]
    for index, image_id in enumerate(test_ids):
        write(root / settings.test_images / f"{image_id}.png", index % 10)
    pd.DataFrame({"image_id": train_ids, "count": counts}).to_csv(root / settings.train_csv, index=False)
    pd.DataFrame({"image_id": test_ids}).to_csv(root / settings.test_csv, index=False)
    pd.DataFrame({"image_id": list(reversed(test_ids)), "count": 0}).to_csv(root / settings.sample_submission, index=False)
    sections = {"competition": settings, "folds": {"k": 3}, "train": {**TINY_TRAIN, **(train_section or {})}}
    (root / "ens.toml").write_text(to_toml(sections))
    return root


def add_group_column(root: Path, column: str, group_of_row) -> pd.DataFrame:
    """Give train.csv a group column (group_of_row(row) -> group) and name it in ens.toml."""
    train_csv = root / "data" / "train.csv"
    frame = pd.read_csv(train_csv, dtype=str)
    frame[column] = [group_of_row(row) for row in range(len(frame))]
    frame.to_csv(train_csv, index=False)
    config = root / "ens.toml"
    config.write_text(config.read_text().replace('group_column = ""', f'group_column = "{column}"'))
    return frame


@pytest.fixture
def competition_dir(tmp_path) -> Path:
    return make_competition(tmp_path / "comp")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    """A test_resnet weights file, as `--pretrained FILE` reads one (the frozen-features tests)."""
    import timm
    import torch

    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("weights") / "test_resnet.pt"
    torch.save(timm.create_model("test_resnet").state_dict(), path)
    return path


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory) -> Path:
    """A workspace with folds and two finished experiments ('a', 'b'); copy it before changing it."""
    from ensemble.config import Workspace, override
    from ensemble.data.competition import load_competition
    from ensemble.data.folds import write_folds
    from ensemble.training.experiment import train_experiment

    root = make_competition(tmp_path_factory.mktemp("trained") / "comp")
    workspace = Workspace.load(root)
    write_folds(workspace, load_competition(workspace), workspace.folds, force=False)
    train_experiment(workspace, "a", workspace.train)
    train_experiment(workspace, "b", override(workspace.train, model="test_efficientnet", epochs=2))
    return root


@pytest.fixture
def trained_copy(trained_dir, tmp_path) -> Path:
    return Path(shutil.copytree(trained_dir, tmp_path / "copy"))


@pytest.fixture
def multi_label_dir(tmp_path) -> Path:
    return make_multi_label_competition(tmp_path / "tags")


@pytest.fixture
def regression_dir(tmp_path) -> Path:
    return make_regression_competition(tmp_path / "counts")
