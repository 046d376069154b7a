"""`ens demo`: the digits competition (data/digits.py) run end to end: folds, two experiments, a blend,
and the submission scored against the held-out answers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ensemble.artifacts import store
from ensemble.blend.run import BlendResult, blend_experiments
from ensemble.config import Workspace, override
from ensemble.data.competition import load_competition
from ensemble.data.digits import MARKER, write_digits_competition
from ensemble.data.folds import FoldsResult, folds_paths, read_folds, write_folds
from ensemble.errors import EnsError
from ensemble.training.events import Progress
from ensemble.training.experiment import ExperimentResult, train_experiment

# Two different models, so the blend has something to gain; sized to train 5 folds each on
# two CPU cores in about a minute.
EXPERIMENTS = {
    "resnet10t": {"model": "resnet10t", "size": 24, "epochs": 5, "batch_size": 64},
    "convnext": {"model": "test_convnext", "size": 32, "epochs": 12, "lr": 5e-3, "batch_size": 64},
}
BLEND_NAME = "demo-mean"


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
