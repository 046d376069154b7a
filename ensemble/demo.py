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
from ensemble.folds import FoldsResult, folds_paths, read_folds, write_folds
from ensemble.runs import ExperimentResult, train_experiment
from ensemble.train import Progress

# Two different models, so the blend has something to gain; sized to train 5 folds each on
# two CPU cores in about a minute.
EXPERIMENTS = {
    "resnet10t": {"model": "resnet10t", "size": 24, "epochs": 5},
    "convnext": {"model": "test_convnext", "size": 32, "epochs": 12, "lr": 5e-3},
}
BLEND_NAME = "demo-mean"
MARKER = ".ens-demo"  # says a folder was written by the demo, so --force may clear it
WRITTEN = ("data", "folds", "models", "submissions", CONFIG_FILE, MARKER)


def write_digits_competition(directory: Path, force: bool = False, seed: int = 0) -> Workspace:
    """Write the digits competition into `directory`, or reuse the one an interrupted demo wrote.

    Refuses a path that is a file, and a non-empty folder the demo did not write: the demo
    never replaces a user's files.
    """
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise EnsError(f"{directory}: is a file; give `ens demo` a new or empty folder")
    ours = (directory / MARKER).exists()
    if directory.is_dir() and any(directory.iterdir()) and not ours:
        raise EnsError(f"{directory}: not empty and not written by `ens demo`; give it a new or empty folder")
    if ours and (directory / CONFIG_FILE).exists() and not force:
        return Workspace.load(directory)  # written in full (ens.toml comes last): resume
    if ours:  # written by the demo, in part, or in full and --force given
        for name in WRITTEN:
            path = directory / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    # The marker first, so a folder the demo was stopped in the middle of writing is its own.
    store.write_text(directory / MARKER, "written by `ens demo`; `ens demo --force` may replace this folder's contents\n")

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
    store.write_text(directory / CONFIG_FILE, to_toml({"competition": settings}))
    return Workspace.load(directory)


@dataclass(frozen=True)
class DemoResult:
    workspace: Workspace
    folds: FoldsResult | None  # None when a resumed demo kept the folds it had written
    experiments: list[ExperimentResult]  # the experiments trained by this run
    blend: BlendResult
    test_accuracy: float  # of the submission, against data/test_labels.csv
    test_rows: int
    seconds: float


def run_demo(directory: Path, force: bool = False, progress: Progress | None = None) -> DemoResult:
    """Run the demo; run again after a stop, it resumes: the competition, the folds and the
    finished experiments are kept. A finished demo is run again only with force."""
    started = time.perf_counter()
    submission = Path(directory) / "submissions" / f"{BLEND_NAME}.json"
    if (Path(directory) / MARKER).exists() and submission.exists() and not force:
        raise EnsError(f"{submission}: the demo has already run; use --force to run it again")
    workspace = write_digits_competition(directory, force)
    competition = load_competition(workspace)
    folds_csv, _ = folds_paths(workspace)
    if folds_csv.exists():
        read_folds(workspace, competition)  # refuses a damaged one
        folds = None
    else:
        folds = write_folds(workspace, competition, workspace.folds, force=False)
    experiments = [
        train_experiment(workspace, name, override(workspace.train, **settings), progress=progress)
        for name, settings in EXPERIMENTS.items()
        if not store.ExperimentDir(workspace.models_dir, name).is_complete()
    ]
    # The demo's own submission, not finished (its JSON is missing): replace what a stop left.
    blend = blend_experiments(workspace, BLEND_NAME, "mean", force=True)
    submitted = pd.read_csv(blend.csv_path, dtype=str)
    answers = pd.read_csv(workspace.root / "data" / "test_labels.csv", dtype=str)
    merged = submitted.merge(answers, on="id", suffixes=("_predicted", "_true"))
    test_accuracy = float((merged["label_predicted"] == merged["label_true"]).mean())
    return DemoResult(workspace, folds, experiments, blend, test_accuracy, len(merged), time.perf_counter() - started)
