"""Multi-label and regression competitions end to end: ens's defaults against pixel baselines.

    .venv/bin/python benchmarks/bench_tasks.py DIR [--kind tags|counts|both] [--skip-ens]

DIR holds the competitions benchmarks/task_competitions.py writes (made there when missing).
For each: the hand-written baseline (tags: one logistic regression per tag on 28 px grey
pixels, one global threshold chosen by 5-fold CV on train; counts: ridge regression on 32 px
grey pixels, alpha by 5-fold CV), then ens with its defaults, timed:

    ens folds && ens train-folds -n d && ens blend -n d

Both are scored on the hidden test labels (data/test_labels.csv): mean F1 per image for tags,
RMSE for counts. The submission is checked to have the sample's shape.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from task_competitions import write_competition  # noqa: E402

from ensemble import metrics  # noqa: E402


def pixels(folder: Path, ids, side: int) -> np.ndarray:
    return np.stack([np.asarray(Image.open(folder / f"{i}.png").convert("L").resize((side, side), Image.BILINEAR), dtype=np.float32).ravel() / 255 for i in ids])


def tag_matrix(cells, tags: list[str]) -> np.ndarray:
    return np.array([[tag in cell.split() for tag in tags] for cell in cells], dtype=np.float32)


def baseline_tags(root: Path) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    train, test = pd.read_csv(root / "data/train.csv", dtype=str), pd.read_csv(root / "data/test_labels.csv", dtype=str)
    tags = sorted({tag for cell in train["tags"] for tag in cell.split()})
    x, y = pixels(root / "data/train", train["id"], 28), tag_matrix(train["tags"], tags)
    x_test, y_test = pixels(root / "data/test", test["id"], 28), tag_matrix(test["tags"], tags)
    oof = np.zeros_like(y)
    for fit_rows, held in KFold(5, shuffle=True, random_state=0).split(x):
        for tag in range(len(tags)):
            oof[held, tag] = LogisticRegression(C=0.1, max_iter=500).fit(x[fit_rows], y[fit_rows, tag]).predict_proba(x[held])[:, 1]
    grid = np.linspace(0.1, 0.9, 33)
    best = max(grid, key=lambda t: metrics.f1_samples(y, shift(oof, t)))
    probs = np.stack([LogisticRegression(C=0.1, max_iter=500).fit(x, y[:, tag]).predict_proba(x_test)[:, 1] for tag in range(len(tags))], axis=1)
    return metrics.f1_samples(y_test, shift(probs, best))


def shift(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Probabilities moved so that `threshold` decides as 0.5 does (each logit less logit(threshold))."""
    probs = np.clip(probs, 1e-7, 1 - 1e-7)
    logits = np.log(probs / (1 - probs)) - np.log(threshold / (1 - threshold))
    return 1 / (1 + np.exp(-logits))


def baseline_counts(root: Path) -> float:
    from sklearn.linear_model import RidgeCV

    train, test = pd.read_csv(root / "data/train.csv", dtype=str), pd.read_csv(root / "data/test_labels.csv", dtype=str)
    x, y = pixels(root / "data/train", train["image_id"], 32), train["count"].astype(float).to_numpy()
    x_test, y_test = pixels(root / "data/test", test["image_id"], 32), test["count"].astype(float).to_numpy()
    model = RidgeCV(alphas=np.logspace(-2, 4, 13), cv=5).fit(x, y)
    return metrics.rmse(y_test, model.predict(x_test)[:, None])


def run_ens(root: Path) -> tuple[float, float]:
    """(hidden test score, seconds) of ens's defaults."""
    ens = str(Path(sys.executable).parent / "ens")
    started = time.perf_counter()
    for command in (["folds"], ["train-folds", "-n", "d"], ["blend", "-n", "d"]):
        subprocess.run([ens, *command, "-w", str(root), "--force"], check=True)
    seconds = time.perf_counter() - started
    submission = pd.read_csv(root / "submissions/d.csv", dtype=str)
    sample = pd.read_csv(root / "data/sample_submission.csv", dtype=str)
    assert list(submission.columns) == list(sample.columns) and submission.iloc[:, 0].tolist() == sample.iloc[:, 0].tolist(), "not the sample's shape"
    truth = pd.read_csv(root / "data/test_labels.csv", dtype=str).set_index(sample.columns[0]).loc[submission.iloc[:, 0]]
    if "tags" in sample.columns:
        tags = sorted({tag for cell in truth["tags"] for tag in cell.split()} | {tag for cell in submission["tags"] for tag in cell.split()})
        predicted = tag_matrix(submission["tags"], tags)
        return metrics.f1_samples(tag_matrix(truth["tags"], tags), np.where(predicted > 0, 0.9, 0.1)), seconds
    return metrics.rmse(truth["count"].astype(float).to_numpy(), submission["count"].astype(float).to_numpy()[:, None]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--kind", choices=["tags", "counts", "both"], default="both")
    parser.add_argument("--skip-ens", action="store_true", help="baselines only")
    args = parser.parse_args()
    for kind in ("tags", "counts") if args.kind == "both" else (args.kind,):
        root = args.directory / kind
        if not (root / "ens.toml").is_file():
            write_competition(args.directory, kind, 2000, 1000, 0)
        metric = "mean F1 per image" if kind == "tags" else "RMSE"
        started = time.perf_counter()
        base = baseline_tags(root) if kind == "tags" else baseline_counts(root)
        print(f"{kind}: baseline {metric} {base:.4f} ({time.perf_counter() - started:.0f} s)", flush=True)
        if not args.skip_ens:
            score, seconds = run_ens(root)
            print(f"{kind}: ens defaults {metric} {score:.4f} in {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
