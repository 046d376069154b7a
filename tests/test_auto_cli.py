"""`ens auto` through the CLI on tiny real workspaces: the dry run, a whole run on every task kind
within its budget, resume after an interrupt, and views measured on a set where vflip changes the class."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_competition, make_multi_label_competition, make_regression_competition
from PIL import Image
from typer.testing import CliRunner

from ensemble.cli import app
from ensemble.config import CompetitionSettings, Workspace
from ensemble.io import to_toml

runner = CliRunner()
# A tiny timm model, one or two epochs: seconds on two CPU cores.
AUTO = '\n[auto]\nmodels = "test_resnet"\nepochs = 1\nmin_epochs = 1\nmax_epochs = 2\nviews = "hflip"\n'


def ens(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def with_auto(root: Path, section: str = AUTO) -> Path:
    (root / "ens.toml").write_text((root / "ens.toml").read_text() + section)
    return root


def test_dry_run_prints_the_plan_and_trains_nothing(tmp_path):
    root = with_auto(make_competition(tmp_path / "comp"))
    result = ens("auto", "--time-limit", "2m", "--dry-run", "-w", root)
    assert result.exit_code == 0, result.output
    assert "plan for" in result.output and "auto-test_resnet-16: test_resnet at 16px" in result.output
    assert "probe test_resnet@16: trains" in result.output and "dry run: nothing trained" in result.output
    assert not (root / "models").exists() and not (root / "folds").exists() and not (root / "submissions").exists()
    assert "training at 16px (ens.toml [train] size)" in result.output  # a size the user set is the base size


def test_a_view_that_cannot_be_checked_or_trained_is_refused_before_anything_runs(tmp_path):
    for views, why in [("hflip,bogus", "unknown TTA view 'bogus'"), ("shift:0.7", "F must be between 0 and 0.5")]:
        root = with_auto(make_competition(tmp_path / views.replace(":", "_")), AUTO.replace('views = "hflip"', f'views = "{views}"'))
        result = ens("auto", "--time-limit", "2m", "-w", root)
        assert result.exit_code == 1 and f"[auto] views '{views}'" in result.output and why in result.output
        assert len(result.output.strip().splitlines()) == 1 and not (root / "folds").exists() and not (root / "auto").exists()


@pytest.mark.parametrize("make", [make_competition, make_multi_label_competition, make_regression_competition])
def test_auto_writes_a_submission_within_its_budget_on_every_task_kind(tmp_path, make):
    root = with_auto(make(tmp_path / "comp"))
    started = time.perf_counter()
    result = ens("auto", "--time-limit", "40s", "-w", root)
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    assert seconds < 40 + 5
    document = json.loads((root / "submissions" / "auto.json").read_text())
    made_by = document["made_by"]
    assert made_by["chosen_blend"]["by"] == "out-of-fold blend score"
    assert document["method"] == made_by["chosen_blend"]["method"] and document["oof_score"] == made_by["chosen_blend"]["oof_score"]
    assert made_by["speeds"] and made_by["plan"]["experiments"] and made_by["views"]["verdicts"][0]["family"] == "hflip"
    assert any(command.startswith("ens train-folds -n auto-test_resnet-16") for command in made_by["commands"])
    assert (root / "submissions" / "auto.csv").is_file() and (root / "report.html").is_file()
    assert "chosen:" in result.output and "used of 0:40" in result.output
    again = ens("auto", "--time-limit", "40s", "-w", root)
    assert again.exit_code == 1 and "has finished; --force starts it over" in again.output
    if make is make_competition:  # --force trains the finished experiments again, every fold (not only the first)
        checkpoints = sorted((root / "models" / "auto-test_resnet-16").glob("fold*/model.pt"))
        before = [checkpoint.stat().st_mtime_ns for checkpoint in checkpoints]
        forced = ens("auto", "--time-limit", "40s", "--force", "-w", root)
        assert forced.exit_code == 0, forced.output
        assert len(checkpoints) > 1 and "fold 0: training on" in forced.output
        assert all(checkpoint.stat().st_mtime_ns != mtime for checkpoint, mtime in zip(checkpoints, before))


def test_a_rerun_after_an_interrupt_finishes_without_retraining_finished_folds(tmp_path, monkeypatch):
    from ensemble.training import fold_job

    root = with_auto(make_competition(tmp_path / "comp"))
    real, ends = fold_job.train_and_write, []

    def interrupted(job, progress, slot):
        if len(ends) == 2:
            raise KeyboardInterrupt
        ends.append((job.experiment.name, job.fold))
        return real(job, progress, slot)

    monkeypatch.setattr(fold_job, "train_and_write", interrupted)
    stopped = ens("auto", "--time-limit", "1m", "-w", root)
    assert stopped.exit_code == 130 and "run the same command again to resume" in stopped.output
    finished = {fold: (root / "models" / "auto-test_resnet-16" / f"fold{fold}" / "result.json").stat().st_mtime_ns for fold in (0, 1)}
    trained = []
    monkeypatch.setattr(fold_job, "train_and_write", lambda job, progress, slot: trained.append((job.experiment.name, job.fold)) or real(job, progress, slot))
    resumed = ens("auto", "--time-limit", "1m", "-w", root)
    assert resumed.exit_code == 0, resumed.output
    assert "continuing the plan of an earlier run" in resumed.output
    assert ("auto-test_resnet-16", 0) not in trained and ("auto-test_resnet-16", 1) not in trained and ("auto-test_resnet-16", 2) in trained
    assert all((root / "models" / "auto-test_resnet-16" / f"fold{fold}" / "result.json").stat().st_mtime_ns == mtime for fold, mtime in finished.items())
    assert (root / "submissions" / "auto.json").is_file()


def make_up_down(root: Path, n_train: int = 90, n_test: int = 12, seed: int = 0) -> Path:
    """Two classes a vertical flip swaps and a horizontal one keeps: 'up' is bright on top, 'down' below."""
    rng = np.random.default_rng(seed)
    settings = CompetitionSettings()

    def write(path: Path, label: str) -> None:
        pixels = rng.normal(40, 15, size=(16, 16, 3))
        half = slice(0, 8) if label == "up" else slice(8, 16)
        pixels[half] += 170
        pixels[:, : int(rng.integers(2, 14))] += 20  # a left-right pattern hflip moves, the label ignores
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB").save(path)

    labels = ["up" if index % 2 else "down" for index in range(n_train)]
    ids = [f"{index:04d}" for index in range(n_train)]
    for image_id, label in zip(ids, labels):
        write(root / settings.train_images / f"{image_id}.png", label)
    test_ids = [f"t{index:03d}" for index in range(n_test)]
    for index, image_id in enumerate(test_ids):
        write(root / settings.test_images / f"{image_id}.png", "up" if index % 2 else "down")
    pd.DataFrame({"id": ids, "label": labels}).to_csv(root / settings.train_csv, index=False)
    pd.DataFrame({"id": test_ids}).to_csv(root / settings.test_csv, index=False)
    pd.DataFrame({"id": test_ids, "label": "up"}).to_csv(root / settings.sample_submission, index=False)
    sections = {"competition": settings, "folds": {"k": 3}, "train": {"batch_size": 16, "lr": 0.003, "size": 32}}
    (root / "ens.toml").write_text(to_toml(sections))
    return root


@pytest.mark.slow  # two experiments of six epochs, TTA and three blends: about 20 s on a quiet machine, a minute on a busy one
def test_views_that_change_labels_are_found_and_the_ones_that_keep_them_are_used(tmp_path):
    section = '\n[auto]\nmodels = "test_efficientnet,test_resnet"\nepochs = 6\nmin_epochs = 6\nmax_epochs = 6\nviews = "hflip,vflip"\n'
    root = with_auto(make_up_down(tmp_path / "updown"), section)
    result = ens("auto", "--time-limit", "3m", "-w", root)
    assert result.exit_code == 0, result.output
    assert "hflip: keeps labels" in result.output and "vflip: changes them" in result.output
    record = json.loads((root / "auto" / "auto.json").read_text())
    assert record["views"]["safe"] == ["hflip"]
    assert record["experiments"]["test_efficientnet-32"]["augment"] == "none"  # trained before the views were found
    assert record["experiments"]["test_resnet-32"]["augment"] == "hflip"  # after
    assert record["tta"]["auto-test_efficientnet-32-tta"]["views"] == "hflip"
    settings = json.loads((root / "models" / "auto-test_efficientnet-32-tta" / "settings.json").read_text())
    assert settings["train"]["tta"] == "hflip"
    assert Workspace.load(root).auto.views == "hflip,vflip"


@pytest.mark.slow  # a real process killed with SIGKILL mid-plan, then the same command again: about 20 s
def test_a_rerun_after_sigkill_finishes_the_plan_without_retraining_finished_folds(tmp_path):
    import signal
    import subprocess
    import sys

    root = with_auto(make_competition(tmp_path / "comp", n_train=60))
    command = [sys.executable, "-m", "ensemble", "auto", "--time-limit", "1m", "-w", str(root)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_fold = root / "models" / "auto-test_resnet-16" / "fold0" / "result.json"
    deadline = time.monotonic() + 60
    while not first_fold.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first_fold.exists(), "auto ended before its first fold was written: nothing was killed mid-plan"
    assert not (root / "submissions" / "auto.json").exists()
    written = first_fold.stat().st_mtime_ns

    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "continuing the plan of an earlier run" in finished.stdout + finished.stderr
    assert first_fold.stat().st_mtime_ns == written  # a finished fold is never trained again
    assert (root / "submissions" / "auto.json").is_file() and (root / "submissions" / "auto.csv").is_file()


def test_a_weights_folder_brings_frozen_candidates_probed_as_one_pass(tmp_path):
    import timm
    import torch

    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(timm.create_model("test_resnet").state_dict(), weights / "test_resnet.pt")
    root = with_auto(make_competition(tmp_path / "comp"))
    result = ens("auto", "--time-limit", "2m", "--dry-run", "--pretrained-dir", weights, "-w", root)
    assert result.exit_code == 0, result.output
    assert "probe test_resnet@288+pretrained+frozen: features of" in result.output and "its head trains" in result.output
    assert "auto-test_resnet-frozen288: test_resnet at 288px" in result.output and "of its head" in result.output
    # The top stages trained on the frozen ones' maps: probed on stand-in maps of their shape.
    assert "probe test_resnet@224+pretrained+frozen+top2: features of" in result.output and "its top stages train" in result.output
    assert "auto-test_resnet-top2-224: test_resnet at 224px" in result.output and "of its top stages" in result.output
    assert "probe test_resnet@224+pretrained+frozen+top1" in result.output
