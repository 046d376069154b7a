"""Time `ens report` on a workspace of many cached experiments (no training: the files are made up).

    .venv/bin/python benchmarks/bench_report.py [--experiments 20] [--k 5] [--epochs 10] [--rows 2000] [--classes 10]

Writes the competition CSVs, then for each experiment the files `ens train-folds` leaves
(settings.json, scores.json, fold<k>/result.json with a per-epoch history, fold and combined
logits), a mean blend with its OOF probabilities, and times write_report end to end: reading,
scoring, drawing and writing the HTML.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble import metrics
from ensemble.artifacts import store
from ensemble.config import Workspace
from ensemble.data.competition import load_competition
from ensemble.io import write_json
from ensemble.results.report import write_report


def make_workspace(root: Path, n_experiments: int, k: int, epochs: int, n_rows: int, n_classes: int) -> Workspace:
    rng = np.random.default_rng(0)
    (root / "data").mkdir(parents=True)
    ids = [f"{row:06d}" for row in range(n_rows)]
    pd.DataFrame({"id": ids, "label": rng.integers(0, n_classes, n_rows)}).to_csv(root / "data/train.csv", index=False)
    pd.DataFrame({"id": ["t0", "t1"]}).to_csv(root / "data/test.csv", index=False)
    pd.DataFrame({"id": ["t0", "t1"], "label": "0"}).to_csv(root / "data/sample_submission.csv", index=False)
    (root / "ens.toml").write_text("[competition]\n")
    workspace = Workspace.load(root)
    competition = load_competition(workspace, check_images=False)
    fold_of = np.arange(n_rows) % k
    oofs = []
    for index in range(n_experiments):
        experiment = store.ExperimentDir(workspace.models_dir, f"exp{index:02d}")
        write_json(experiment.settings_path, {
            "name": experiment.name, "train": {"model": "resnet10t", "size": 32 + index, "epochs": epochs},
            "classes": list(competition.classes), "train_sha256": competition.train_hash, "versions": {"ens": "0.1.0"},
        })
        oof = rng.normal(size=(n_rows, n_classes)).astype(np.float32) + 2 * np.eye(n_classes, dtype=np.float32)[competition.targets]
        oofs.append(metrics.softmax(oof))
        for fold in range(k):
            rows = fold_of == fold
            store.save_logits(experiment.fold_oof_path(fold), store.Logits(competition.train_ids[rows], competition.classes, oof[rows]))
            history = [
                {"fold": fold, "epoch": epoch, "epochs": epochs, "train_loss": 2 / epoch, "valid_loss": 2.2 / epoch,
                 "valid_score": 1 - 1 / (epoch + 1), "metric": "accuracy", "seconds": 1.0}
                for epoch in range(1, epochs + 1)
            ]
            write_json(experiment.fold_result_path(fold), {"fold": fold, "metric": "accuracy", "score": 0.5, "seconds": 10.0, "history": history})
        test = np.zeros((2, n_classes), dtype=np.float32)
        store.save_logits(experiment.test_path, store.Logits(competition.test_ids, competition.classes, test))
        store.save_logits(experiment.oof_path, store.Logits(competition.train_ids, competition.classes, oof))
        write_json(experiment.scores_path, {"name": experiment.name, "model": "resnet10t", "metric": "accuracy",
                                                  "fold_scores": [None] * k, "seconds": [10.0] * k})
    members = [{"name": f"exp{index:02d}", "weight": 1 / n_experiments, "oof_score": None} for index in range(n_experiments)]
    write_json(workspace.submissions_dir / "all.json", {"name": "all", "method": "mean", "metric": "accuracy", "oof_score": None, "members": members})
    np.savez(workspace.submissions_dir / "all.oof.npz", ids=competition.train_ids, classes=np.array(competition.classes), probs=np.mean(oofs, axis=0))
    return workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=20)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workspace = make_workspace(Path(folder), args.experiments, args.k, args.epochs, args.rows, args.classes)
        started, cpu_started = time.perf_counter(), time.process_time()
        result = write_report(workspace)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        print(
            f"report of {result.n_experiments} experiments x {args.k} folds x {args.epochs} epochs, "
            f"{args.rows} rows, {args.classes} classes: {seconds:.2f}s wall, {cpu:.2f}s CPU, "
            f"{result.path.stat().st_size / 1e6:.2f} MB"
        )


if __name__ == "__main__":
    main()
