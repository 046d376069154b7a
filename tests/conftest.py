"""Fixtures that make tiny real competitions on disk; nothing is downloaded."""

from __future__ import annotations

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
