"""Refusals and repairs made on main without a test of their own (issue 15, section 3.4)."""

from __future__ import annotations

import shutil

import pandas as pd
from typer.testing import CliRunner

from ensemble.cli import app

runner = CliRunner()


def ens(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def snapshot(root):
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def new_test_set(root, tmp_path):
    """A later batch of test images: the first four of test.csv, copied elsewhere."""
    ids = pd.read_csv(root / "data" / "test.csv", dtype=str)["id"].tolist()[:4]
    (tmp_path / "batch").mkdir()
    for image_id in ids:
        shutil.copy(root / "data" / "test" / f"{image_id}.png", tmp_path / "batch" / f"{image_id}.png")
    pd.DataFrame({"id": ids}).to_csv(tmp_path / "batch.csv", index=False)
    return ("--test-csv", tmp_path / "batch.csv", "--test-images", tmp_path / "batch")


def test_keep_views_with_a_new_test_set_is_one_line(trained_dir, tmp_path):
    args = new_test_set(trained_dir, tmp_path)
    before = snapshot(trained_dir)
    result = ens("predict", "-w", trained_dir, "-n", "a", *args, "--out", tmp_path / "out.csv", "--keep-views")
    one_line_error(result, "--keep-views keeps the views of an --as experiment")
    assert not (tmp_path / "out.csv").exists() and snapshot(trained_dir) == before


def test_keep_views_on_an_experiment_predicted_without_them_writes_every_fold(trained_copy):
    assert ens("predict", "-w", trained_copy, "-n", "a", "--tta", "hflip", "--as", "h").exit_code == 0
    folds = sorted((trained_copy / "models" / "h").glob("fold*"))
    assert folds and not any((fold / "views.npz").exists() for fold in folds)
    result = ens("predict", "-w", trained_copy, "-n", "a", "--tta", "hflip", "--as", "h", "--keep-views")
    assert result.exit_code == 0, result.output
    assert all((fold / "views.npz").is_file() for fold in folds)


def test_predict_never_replaces_a_trained_experiment_even_with_force(trained_copy):
    before = snapshot(trained_copy)
    result = ens("predict", "-w", trained_copy, "-n", "a", "--tta", "hflip", "--as", "b", "--force")
    one_line_error(result, "a trained experiment; predict never replaces trained weights")
    assert snapshot(trained_copy) == before


def test_a_new_test_set_is_read_through_the_image_cache(trained_copy, tmp_path):
    args = new_test_set(trained_copy, tmp_path)
    cache = trained_copy / "cache"
    before = set(cache.glob("images-*")) if cache.exists() else set()
    result = ens("predict", "-w", trained_copy, "-n", "a", *args, "--out", tmp_path / "out.csv")
    assert result.exit_code == 0, result.output
    assert set(cache.glob("images-*")) - before, "the new images were decoded outside the cache"


def test_jobs_with_a_cluster_is_refused_before_anything_is_written(trained_copy):
    before = snapshot(trained_copy)
    result = ens("train-folds", "-w", trained_copy, "-n", "x", "--jobs", "2", "--cluster", "tcp://127.0.0.1:1")
    one_line_error(result, "--jobs 2 with --cluster")
    assert snapshot(trained_copy) == before


def test_an_unreadable_resume_state_is_one_line_naming_it(trained_copy):
    fold = trained_copy / "models" / "a" / "fold0"
    (fold / "result.json").unlink()
    (fold / "resume.pt").write_bytes(b"not a torch file")
    result = ens("train-folds", "-w", trained_copy, "-n", "a")
    assert result.exit_code == 1, result.output
    *progress, last = result.output.splitlines()  # progress lines first, then the one error line
    assert last.startswith("error: ") and not any(line.startswith("error") for line in progress)
    for fragment in (str(fold / "resume.pt"), "cannot read the fold's resume state", "--force"):
        assert fragment in last


def test_the_network_check_builds_the_net_with_its_attention(monkeypatch):
    from ensemble.config import TrainSettings
    from ensemble.nets import networks
    from ensemble.training.preflight import check_network

    built = []
    real = networks.create_net
    monkeypatch.setattr(networks, "create_net", lambda *args: built.append(args) or real(*args))
    check_network(TrainSettings(model="resnet10t", sizes="16,32", attention="se", attention_in_blocks=True), 3)
    assert built and all(args[3:] == ("se", True) for args in built)
