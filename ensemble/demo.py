"""`ens demo`: a small real competition made from scikit-learn's bundled digits, run end to end.

The 1,797 8x8 digit scans become PNG files; a stratified fifth is held out as the test set,
whose answers go to data/test_labels.csv (read only here, to score the submission the
pipeline writes without them).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble import store
from ensemble.blend.run import BlendResult, blend_experiments
from ensemble.competition import load_competition
from ensemble.config import CONFIG_FILE, CompetitionSettings, Workspace, override, to_toml
from ensemble.errors import EnsError
from ensemble.folds import FoldsResult, write_folds
from ensemble.runs import ExperimentResult, train_experiment
from ensemble.train import Progress

# Two different models, so the blend has something to gain; sized to train 5 folds each on
# two CPU cores in about a minute.
EXPERIMENTS = {
    "resnet10t": {"model": "resnet10t", "size": 24, "epochs": 5, "batch_size": 64},
    "convnext": {"model": "test_convnext", "size": 32, "epochs": 12, "lr": 5e-3, "batch_size": 64},
}
BLEND_NAME = "demo-mean"
MARKER = ".ens-demo"  # says a folder was written by the demo, so --force may clear it
WRITTEN = ("data", "folds", "models", "submissions", CONFIG_FILE, MARKER)


def write_digits_competition(directory: Path, force: bool = False, seed: int = 0) -> Workspace:
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    directory = Path(directory)
    if (directory / CONFIG_FILE).exists():
        if not force:
            raise EnsError(f"{directory / CONFIG_FILE}: already exists; use --force to write the demo again")
        if not (directory / MARKER).exists():
            raise EnsError(f"{directory / CONFIG_FILE}: not written by `ens demo`; refusing to replace a real workspace")
        for name in WRITTEN:
            path = directory / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    digits = load_digits()
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)
    ids = np.array([f"digit{index:04d}" for index in range(len(pixels))])
    train_rows, test_rows = train_test_split(
        np.arange(len(ids)), test_size=0.2, stratify=digits.target, random_state=seed
    )
    settings = CompetitionSettings()
    data = directory / "data"
    for rows, folder in ((train_rows, settings.train_images), (test_rows, settings.test_images)):
        (directory / folder).mkdir(parents=True, exist_ok=True)
        for row in rows:
            Image.fromarray(pixels[row], mode="L").save(directory / folder / f"{ids[row]}{settings.image_suffix}")
    labels = digits.target.astype(str)
    pd.DataFrame({"id": ids[train_rows], "label": labels[train_rows]}).to_csv(directory / settings.train_csv, index=False)
    pd.DataFrame({"id": ids[test_rows]}).to_csv(directory / settings.test_csv, index=False)
    pd.DataFrame({"id": ids[test_rows], "label": "0"}).to_csv(directory / settings.sample_submission, index=False)
    pd.DataFrame({"id": ids[test_rows], "label": labels[test_rows]}).to_csv(data / "test_labels.csv", index=False)
    for folder in ("folds", "models", "submissions"):
        (directory / folder).mkdir(exist_ok=True)
    store.write_text(directory / MARKER, "written by `ens demo`; `ens demo --force` may replace this folder's contents\n")
    store.write_text(directory / CONFIG_FILE, to_toml({"competition": settings}))
    return Workspace.load(directory)


@dataclass(frozen=True)
class DemoResult:
    workspace: Workspace
    folds: FoldsResult
    experiments: list[ExperimentResult]
    blend: BlendResult
    test_accuracy: float  # of the submission, against data/test_labels.csv
    test_rows: int
    seconds: float


def run_demo(directory: Path, force: bool = False, progress: Progress | None = None) -> DemoResult:
    started = time.perf_counter()
    workspace = write_digits_competition(directory, force)
    folds = write_folds(workspace, load_competition(workspace), workspace.folds, force=False)
    experiments = [
        train_experiment(workspace, name, override(workspace.train, **settings), progress=progress)
        for name, settings in EXPERIMENTS.items()
    ]
    blend = blend_experiments(workspace, BLEND_NAME, "mean")
    submitted = pd.read_csv(blend.csv_path, dtype=str)
    answers = pd.read_csv(workspace.root / "data" / "test_labels.csv", dtype=str)
    merged = submitted.merge(answers, on="id", suffixes=("_predicted", "_true"))
    test_accuracy = float((merged["label_predicted"] == merged["label_true"]).mean())
    return DemoResult(workspace, folds, experiments, blend, test_accuracy, len(merged), time.perf_counter() - started)
