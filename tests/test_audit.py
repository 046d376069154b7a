"""ens audit on a tiny competition with injected near-copies: groups, train/test pairs, conflicts, files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_competition
from PIL import Image
from scipy.ndimage import zoom
from typer.testing import CliRunner

from ensemble.cli import app
from ensemble.config import Workspace
from ensemble.results.audit import run_audit
from ensemble.results.audit.near_copies import shift_correlation

runner = CliRunner()
SIDE = 48


def texture(rng: np.random.Generator) -> np.ndarray:
    """uint8 (SIDE, SIDE, 3): a smooth random colour field with fine detail, unlike any other."""
    coarse = rng.uniform(0, 255, size=(6, 6, 3))
    return np.clip(zoom(coarse, (SIDE / 6, SIDE / 6, 1), order=3) + rng.normal(0, 10, (SIDE, SIDE, 3)), 0, 255).astype(np.uint8)


def jpeg(pixels: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=70)
    return np.asarray(Image.open(buffer).convert("RGB"))


# copy id <- (source id, change); labels are ("cat", "dog", "owl")[row % 3] as make_competition gives them
TRAIN_COPIES = {
    "0003": ("0000", lambda p: np.roll(p, 1, axis=1)),  # cat, cat
    "0004": ("0001", lambda p: np.clip(p * 1.1, 0, 255).astype(np.uint8)),  # dog, dog
    "0010": ("0001", jpeg),  # dog: a group of three
    "0006": ("0005", lambda p: np.roll(p, (2, -1), axis=(0, 1))),  # owl, cat: a conflict
}
TEST_COPIES = {"t000": ("0008", lambda p: np.roll(p, -1, axis=0)), "t001": ("0009", jpeg)}


def competition(root: Path, copies: bool) -> Path:
    """make_competition's files with every image replaced by a distinct texture, and (copies) the near-copies."""
    make_competition(root, n_train=24, n_test=6)
    rng = np.random.default_rng(1)
    images = {path: texture(rng) for path in sorted((root / "data").rglob("*.png"))}
    if copies:
        for folder, table in (("train", TRAIN_COPIES), ("test", TEST_COPIES)):
            for copy_id, (source, change) in table.items():
                path = next(p for p in images if p.stem == copy_id and folder in p.parent.name)
                images[path] = change(images[next(p for p in images if p.stem == source and "train" in p.parent.name)])
    for path, pixels in images.items():
        Image.fromarray(pixels).save(path)
    return root


@pytest.fixture
def copies_dir(tmp_path) -> Path:
    return competition(tmp_path / "comp", copies=True)


def read(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / "audit" / name, dtype={"id": str, "train_id": str, "test_id": str})


def test_finds_groups_pairs_and_conflicts(copies_dir):
    result = run_audit(Workspace.load(copies_dir))
    duplicates = read(copies_dir, "duplicates.csv")
    assert list(duplicates.columns) == ["id", "group", "distance", "method"] and set(duplicates["method"]) == {"thumbnails"}
    groups = sorted(sorted(members) for members in duplicates.groupby("group")["id"].apply(list))
    assert groups == [["0000", "0003"], ["0001", "0004", "0010"], ["0005", "0006"]]
    assert duplicates["distance"].between(0, 0.05).all()
    train_test = read(copies_dir, "train_test.csv")
    assert list(train_test.columns) == ["test_id", "train_id", "distance", "method"]
    assert sorted(zip(train_test["test_id"], train_test["train_id"])) == [("t000", "0008"), ("t001", "0009")]
    conflicts = read(copies_dir, "conflicts.csv")
    assert list(conflicts.columns) == ["group", "id", "label"]
    assert sorted(zip(conflicts["id"], conflicts["label"])) == [("0005", "owl"), ("0006", "cat")]
    assert (result.n_groups, result.n_grouped, result.n_test_with_copy, result.n_conflicts) == (3, 7, 2, 1)
    figures = json.loads((copies_dir / "audit" / "audit.json").read_text())
    assert figures["threshold"] == 0.97 and "thumbnail correlation" in figures["method"] and figures["methods"] == ["thumbnails"]
    assert figures["embeddings"] is None and figures["pairs_by_method"]["train_rows"] == {"thumbnails": 7, "embeddings": 0}
    assert figures["images"]["train"]["formats"] == {"PNG": 24} and figures["fold_balance"] is None
    shift = figures["shift"]
    assert 0 <= shift["auc"] <= 1 and shift["classifier"] and shift["features"]
    test_like = read(copies_dir, "test_like.csv")
    assert list(test_like.columns) == ["id", "test_probability"] and len(test_like) == 20
    assert list(test_like["id"]) == shift["most_test_like"] and test_like["test_probability"].is_monotonic_decreasing


def test_without_copies_finds_none(tmp_path):
    root = competition(tmp_path / "clean", copies=False)
    result = run_audit(Workspace.load(root))
    assert (result.n_groups, result.n_test_with_copy) == (0, 0)
    assert len(read(root, "duplicates.csv")) == 0 and len(read(root, "train_test.csv")) == 0


def test_shift_correlation_sees_through_a_shift():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(28, 28)).astype(np.float32)
    shifted = np.roll(image, (2, -2), axis=(0, 1))
    other = rng.normal(size=(28, 28)).astype(np.float32)
    scores = shift_correlation(np.stack([image, image]), np.stack([shifted, other]), np.array([[0, 0], [1, 1]]))
    assert scores[0] == pytest.approx(1, abs=1e-5) and abs(scores[1]) < 0.3


def test_cli_summary_force_and_fold_balance(copies_dir):
    assert runner.invoke(app, ["folds", "-w", str(copies_dir)]).exit_code == 0
    result = runner.invoke(app, ["audit", "-w", str(copies_dir)])
    assert result.exit_code == 0, result.output
    assert "3 near-duplicate groups covering 7 of 24 training images" in result.stdout
    assert "2 of 6 test images have a near-copy in train" in result.stdout and "1 group with conflicting labels" in result.stdout
    balance = json.loads((copies_dir / "audit" / "audit.json").read_text())["fold_balance"]
    assert balance["k"] == 3 and sum(sum(fold.values()) for fold in balance["counts"].values()) == 24
    again = runner.invoke(app, ["audit", "-w", str(copies_dir)])
    assert again.exit_code == 1 and "use --force" in again.stderr
    assert runner.invoke(app, ["audit", "--force", "--threshold", "0.999", "-w", str(copies_dir)]).exit_code == 0
    assert len(read(copies_dir, "duplicates.csv")) < 7  # replaced by the stricter audit


def test_a_brighter_test_set_is_told_from_train(tmp_path):
    root = competition(tmp_path / "bright", copies=False)
    for path in (root / "data" / "test").glob("*.png"):
        Image.fromarray(np.clip(np.asarray(Image.open(path)).astype(int) + 90, 0, 255).astype(np.uint8)).save(path)
    result = runner.invoke(app, ["audit", "-w", str(root)])
    assert result.exit_code == 0, result.output
    shift = json.loads((root / "audit" / "audit.json").read_text())["shift"]
    assert shift["auc"] > 0.9 and "train/test shift: adversarial AUC" in result.stdout and "the test set differs" in result.stdout
    assert len(read(root, "test_like.csv")) == 20


@pytest.mark.parametrize("threshold", ["0", "-0.5", "1.5"])
def test_threshold_out_of_range_is_refused(copies_dir, threshold):
    result = runner.invoke(app, ["audit", "--threshold", threshold, "-w", str(copies_dir)])
    assert result.exit_code == 1 and "--threshold" in result.stderr and "outside (0, 1]" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (copies_dir / "audit").exists()


def test_unreadable_image_is_one_line(copies_dir):
    (copies_dir / "data" / "train" / "0002.png").write_bytes(b"not an image")
    result = runner.invoke(app, ["audit", "-w", str(copies_dir)])
    assert result.exit_code == 1 and "0002.png" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1


def test_help_gives_an_example():
    result = runner.invoke(app, ["audit", "--help"])
    assert result.exit_code == 0 and "Example: ens audit" in result.stdout


def test_the_audits_groups_are_what_folds_dedupe_keeps_together(copies_dir):
    # The workflow docs give: ens audit, then ens folds --dedupe; the audit's own file, not a hand-written one.
    assert runner.invoke(app, ["audit", "-w", str(copies_dir)]).exit_code == 0
    folded = runner.invoke(app, ["folds", "--dedupe", "-w", str(copies_dir)])
    assert folded.exit_code == 0, folded.output
    groups = read(copies_dir, "duplicates.csv")
    folds = pd.read_csv(copies_dir / "folds" / "folds.csv", dtype=str)
    fold_of = dict(zip(folds["id"], folds["fold"]))
    assert len(groups) == 7 and groups.groupby("group")["id"].apply(lambda ids: len({fold_of[i] for i in ids})).max() == 1
    board = runner.invoke(app, ["leaderboard", "-w", str(copies_dir)])
    assert "folds split" not in board.stderr
