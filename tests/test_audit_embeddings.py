"""ens audit with CNN embeddings: what they find and reject, --experiment and --pretrained through the CLI, refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_audit import competition, read
from typer.testing import CliRunner

from ensemble.cli import app
from ensemble.inference.embeddings import MIN_PRETRAINED_SIZE
from ensemble.results.audit.embedded import EmbeddingSpace
from ensemble.results.audit.near_copies import find_near_copies, judge

runner = CliRunner()


def thumbnails_with_pairs(rng: np.random.Generator, n: int = 40) -> np.ndarray:
    """float32 (n, 28, 28) distinct noise thumbnails; row 1 a noisy copy of row 0 (correlation about
    0.98), row 3 a near-exact twin of row 2 (correlation about 0.999)."""
    thumbs = rng.normal(size=(n, 28, 28)).astype(np.float32)
    thumbs[1] = thumbs[0] + rng.normal(0, 0.2, size=(28, 28))
    thumbs[3] = thumbs[2] + rng.normal(0, 0.02, size=(28, 28))
    return thumbs


def test_embeddings_find_what_too_strict_thumbnails_miss_and_reject_look_alikes():
    rng = np.random.default_rng(0)
    thumbs = thumbnails_with_pairs(rng)
    test = rng.normal(size=(5, 28, 28)).astype(np.float32)
    features = rng.normal(size=(40, 16)).astype(np.float32)
    features[1] = features[0] + rng.normal(0, 0.01, size=16)  # a near-copy to the network too
    # rows 2 and 3: a look-alike pair: nearly the same thumbnail, unrelated features
    alone = find_near_copies(thumbs, test, 0.995)
    assert sorted(np.flatnonzero(alone.group_of >= 0)) == [2, 3]  # 0.995 is too strict for rows 0, 1
    space = EmbeddingSpace(features, rng.normal(size=(5, 16)).astype(np.float32))
    both = find_near_copies(thumbs, test, 0.995, space=space, embedding_threshold=0.2)
    assert sorted(np.flatnonzero(both.group_of >= 0)) == [0, 1] and list(both.method[[0, 1]]) == ["embeddings", "embeddings"]
    assert both.n_rejected == 1 and both.group_of[2] == -1 and len(both.test_pairs) == 0


def test_embeddings_reject_a_thumbnail_pair_only_when_it_is_no_closer_than_a_typical_neighbour():
    # Relative distance 1 is the images' distance to their 10th nearest neighbour. True copies under
    # a trained classifier reach 0.6-1.0 (a tenth of them, measured), look-alikes lie beyond.
    keep, method, _, rejected = judge(np.array([0.99, 0.99, 0.99, 0.5]), np.array([0.1, 0.8, 1.2, 0.15]), 0.97, 0.2)
    assert keep.tolist() == [True, True, False, True] and rejected == 1
    assert list(method) == ["thumbnails", "thumbnails", "thumbnails", "embeddings"]


def test_a_test_near_copy_found_by_both_is_labelled_thumbnails():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(30, 28, 28)).astype(np.float32)
    test = np.stack([train[4] + rng.normal(0, 0.05, size=(28, 28)), rng.normal(size=(28, 28))]).astype(np.float32)
    features = rng.normal(size=(30, 64)).astype(np.float32)
    space = EmbeddingSpace(features, np.stack([features[4] * 1.01, rng.normal(size=64)]).astype(np.float32))
    copies = find_near_copies(train, test, 0.97, space=space, embedding_threshold=0.2)
    assert copies.test_pairs.tolist() == [[0, 4]] and list(copies.test_method) == ["thumbnails"]


@pytest.fixture(scope="module")
def trained_copies(tmp_path_factory) -> Path:
    """test_audit's competition with near-copies, folds and a finished tiny experiment 'a' (test_resnet, 16 px)."""
    root = competition(tmp_path_factory.mktemp("emb") / "comp", copies=True)
    for args in (["folds"], ["train-folds", "-n", "a"]):
        result = runner.invoke(app, [*args, "-w", str(root)])
        assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def workspace(trained_copies, tmp_path) -> Path:
    return Path(shutil.copytree(trained_copies, tmp_path / "copy"))


def figures(root: Path) -> dict:
    return json.loads((root / "audit" / "audit.json").read_text())


def test_experiment_embeddings_through_the_cli(workspace):
    result = runner.invoke(app, ["audit", "--experiment", "a", "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    found = figures(workspace)
    assert found["methods"] == ["thumbnails", "embeddings"] and "cosine similarity of CNN embeddings" in found["method"]
    source = found["embeddings"]
    assert (source["kind"], source["experiment"], source["fold"], source["model"], source["threshold"]) == ("experiment", "a", 0, "test_resnet", 0.2)
    duplicates = read(workspace, "duplicates.csv")
    assert list(duplicates.columns) == ["id", "group", "distance", "method"] and set(duplicates["method"]) <= {"thumbnails", "embeddings"}
    rows = found["pairs_by_method"]["train_rows"]
    assert rows["thumbnails"] + rows["embeddings"] == found["n_grouped"] == len(duplicates)
    assert "methods: thumbnails + embeddings" in result.stdout and "rejected as look-alikes" in result.stdout
    assert set(read(workspace, "train_test.csv").columns) >= {"test_id", "train_id", "distance", "method"}
    # the report's Data section still renders, and names the embeddings' source
    report = runner.invoke(app, ["report", "-w", str(workspace)])
    assert report.exit_code == 0, report.output
    page = (workspace / "report.html").read_text()
    assert 'id="data"' in page and "embeddings from" in page and "test_resnet" in page


def test_pretrained_weights_file_through_the_cli(workspace):
    import timm
    import torch

    weights = workspace / "backbone.pt"
    torch.manual_seed(0)
    torch.save(timm.create_model("test_resnet").state_dict(), weights)
    result = runner.invoke(app, ["audit", "--pretrained", str(weights), "--model", "test_resnet", "--embedding-threshold", "0.1", "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    source = figures(workspace)["embeddings"]
    # trained at 16 px, embedded at MIN_PRETRAINED_SIZE: below it ImageNet-sized features collapse
    assert (source["kind"], source["model"], source["size"], source["threshold"]) == ("pretrained", "test_resnet", MIN_PRETRAINED_SIZE, 0.1)
    assert source["weights"] == str(weights) and "matched by name" in source["matched"]


def one_line(result, *fragments: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def unfinished(root: Path) -> list[str]:
    assert runner.invoke(app, ["train-folds", "-n", "half", "--folds", "0", "-w", str(root)]).exit_code == 0
    return ["--experiment", "half"]


def stale(root: Path) -> list[str]:
    train = pd.read_csv(root / "data" / "train.csv", dtype=str)
    train.loc[0, "label"] = "dog" if train.loc[0, "label"] != "dog" else "cat"
    train.to_csv(root / "data" / "train.csv", index=False)
    return ["--experiment", "a"]


def changed_images(root: Path) -> list[str]:
    shutil.copy(root / "data" / "train" / "0011.png", root / "data" / "train" / "0012.png")
    return ["--experiment", "a"]


@pytest.mark.parametrize(
    "make_args, fragments",
    [
        (lambda root: ["--experiment", "nope"], ["nope"]),
        (unfinished, ["half", "not every fold is trained"]),
        (stale, ["trained on another train.csv"]),
        (changed_images, ["trained on other train images"]),
        (lambda root: ["--pretrained", str(root / "missing.pt")], ["--pretrained", "missing.pt", "not found"]),
        (lambda root: ["--model", "test_resnet"], ["--model", "--pretrained FILE"]),
        (lambda root: ["--experiment", "a", "--pretrained", "x.pt"], ["give one"]),
        (lambda root: ["--embedding-threshold", "0.2"], ["--embedding-threshold", "no embeddings"]),
        (lambda root: ["--experiment", "a", "--embedding-threshold", "1.5"], ["--embedding-threshold", "outside (0, 1)"]),
        (lambda root: ["--experiment", "a", "--threshold", "2"], ["--threshold", "outside (0, 1]"]),
    ],
)
def test_refusals_are_one_line_and_write_nothing(workspace, make_args, fragments):
    args = make_args(workspace)
    result = runner.invoke(app, ["audit", *args, "-w", str(workspace)])
    one_line(result, *fragments)
    assert not (workspace / "audit").exists()


def test_a_refused_experiment_keeps_the_previous_audit(workspace):
    assert runner.invoke(app, ["audit", "-w", str(workspace)]).exit_code == 0
    before = (workspace / "audit" / "duplicates.csv").read_bytes()
    one_line(runner.invoke(app, ["audit", "--force", "--experiment", "nope", "-w", str(workspace)]), "nope")
    assert (workspace / "audit" / "duplicates.csv").read_bytes() == before


def test_audit_without_embeddings_does_not_import_torch(workspace):
    code = (
        "import sys; from ensemble.config import Workspace; from ensemble.workflows.audit import audit;"
        f"audit(Workspace.load({str(workspace)!r}), force=True);"
        "heavy = [m for m in ('torch', 'timm') if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
