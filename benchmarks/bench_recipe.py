"""The training recipe, one technique at a time: OOF score and seconds on two small competitions.

    .venv/bin/python benchmarks/bench_recipe.py [--rows 360] [--epochs 6] [--quick] [--only digits] [--recipes TEXT]

Datasets, built here from files on this machine: `digits` (scikit-learn's 8x8 scans, the
demo's competition, grey) and `shapes` (four shape classes drawn with Pillow at 48 px in
random colours, sizes, positions and angles on noisy, sometimes striped, backgrounds). Each is cut to
its first --rows training rows and split into 3 stratified folds. Every row of the table
trains resnet10t on all 3 folds: the baseline, the baseline plus one technique, and the
defaults of `ens train-folds` with no flag. Prints a markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from ensemble.config import CONFIG_FILE, CompetitionSettings, FoldSettings, TrainSettings, Workspace, to_toml
from ensemble.data.competition import load_competition
from ensemble.data.digits import write_digits_competition
from ensemble.data.folds import write_folds
from ensemble.training.experiment import train_experiment

SHAPES = ("circle", "square", "triangle", "cross")


def draw_shape(kind: str, rng: np.random.Generator, side: int = 48) -> Image.Image:
    background = rng.integers(0, 256, 3)
    pixels = np.clip(background + rng.normal(0, 15, (side, side, 3)), 0, 255)
    if rng.random() < 0.3:  # stripes at a random period and angle
        period, angle = rng.uniform(4, 12), rng.uniform(0, np.pi)
        rows, cols = np.mgrid[:side, :side]
        stripes = np.sin((rows * np.cos(angle) + cols * np.sin(angle)) * 2 * np.pi / period) > 0
        pixels[stripes] = np.clip(pixels[stripes] * 0.6, 0, 255)
    image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    colour = tuple(int(value) for value in (background + rng.integers(80, 176, 3)) % 256)
    radius = rng.uniform(0.25, 0.42) * side
    cx, cy = rng.uniform(radius, side - radius, 2)
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    else:
        corners = {
            "square": [(-1, -1), (1, -1), (1, 1), (-1, 1)],
            "triangle": [(0, -1), (1, 0.8), (-1, 0.8)],
            "cross": [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1), (-0.3, 1),
                      (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)],
        }[kind]
        turn = rng.uniform(0, 2 * np.pi)
        points = [(cx + radius * (x * np.cos(turn) - y * np.sin(turn)), cy + radius * (x * np.sin(turn) + y * np.cos(turn))) for x, y in corners]
        draw.polygon(points, fill=colour)
    return image


def write_shapes_competition(directory: Path, n_train: int, n_test: int = 60, seed: int = 0) -> Workspace:
    rng = np.random.default_rng(seed)
    settings = CompetitionSettings()
    frames = {}
    for split, count, folder in (("train", n_train, settings.train_images), ("test", n_test, settings.test_images)):
        (directory / folder).mkdir(parents=True, exist_ok=True)
        labels = [SHAPES[index % len(SHAPES)] for index in range(count)]
        ids = [f"{split}{index:05d}" for index in range(count)]
        for image_id, label in zip(ids, labels):
            draw_shape(label, rng).save(directory / folder / f"{image_id}.png")
        frames[split] = pd.DataFrame({"id": ids, "label": labels})
    frames["train"].to_csv(directory / settings.train_csv, index=False)
    frames["test"][["id"]].to_csv(directory / settings.test_csv, index=False)
    frames["test"].assign(label=SHAPES[0]).to_csv(directory / settings.sample_submission, index=False)
    (directory / CONFIG_FILE).write_text(to_toml({"competition": settings}))
    return Workspace.load(directory)


def write_digits(directory: Path, n_train: int) -> Workspace:
    workspace = write_digits_competition(directory)
    for csv, rows in ((workspace.competition.train_csv, n_train), (workspace.competition.test_csv, 60)):
        path = workspace.path(csv)
        pd.read_csv(path, dtype=str).head(rows).to_csv(path, index=False)
    sample = workspace.path(workspace.competition.sample_submission)
    pd.read_csv(sample, dtype=str).head(60).to_csv(sample, index=False)
    return workspace


GEOMETRY = "shift:0.1,scale:0.75-1,rotate:10"


def experiments(epochs: int, size: int) -> dict[str, TrainSettings]:
    """Name -> settings: main's loop, the baseline, each technique alone on top of it, candidates."""
    baseline = TrainSettings(
        model="resnet10t", size=size, epochs=epochs, batch_size=32, augment="none", ema=0.0, mixup=0.0,
        cutmix=0.0, label_smoothing=0.0, schedule="onecycle", optimizer="adamw",
    )
    alone = {
        f"augment {GEOMETRY}": {"augment": GEOMETRY},
        "ema 0.99": {"ema": 0.99},
        "mixup 0.2": {"mixup": 0.2},
        "cutmix 1.0": {"cutmix": 1.0},
        "label smoothing 0.1": {"label_smoothing": 0.1},
        f"sizes {size // 2},{size} (epochs {epochs // 2},{epochs - epochs // 2})": {
            "sizes": f"{size // 2},{size}", "epochs": f"{epochs // 2},{epochs - epochs // 2}"
        },
    }
    candidate = {"augment": GEOMETRY, "ema": 0.99, "label_smoothing": 0.1}
    runs = {
        "main before this issue (3 epochs, batch 64)": dataclasses.replace(baseline, epochs=3, batch_size=64),
        f"baseline ({epochs} epochs, batch 32)": baseline,
    }
    runs |= {f"+ {name}": dataclasses.replace(baseline, **change) for name, change in alone.items()}
    runs[f"candidate: {GEOMETRY} + ema 0.99 + smoothing 0.1"] = dataclasses.replace(baseline, **candidate)
    if TrainSettings() == baseline:  # the defaults are the baseline: one row, not the same run twice
        runs = {("baseline = defaults of ens train-folds" if settings is baseline else name): settings for name, settings in runs.items()}
    else:
        runs[f"defaults of ens train-folds ({TrainSettings().epochs} epochs)"] = TrainSettings()
    return runs


def measure(workspace: Workspace, runs: dict[str, TrainSettings]) -> list[tuple[str, float, float]]:
    write_folds(workspace, load_competition(workspace), FoldSettings(k=3), force=True)
    rows = []
    for index, (name, settings) in enumerate(runs.items()):
        started = time.perf_counter()
        result = train_experiment(workspace, f"run{index}", settings, force=True)
        rows.append((name, result.oof_score, time.perf_counter() - started))
        print(f"  {name}: {result.oof_score:.4f} in {rows[-1][2]:.0f}s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=360, help="training rows of each dataset")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--recipes", default="", help="only the rows whose name contains this text (or one of a|b)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared machine)")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--only", choices=("digits", "shapes"), help="one dataset")
    parser.add_argument("--quick", action="store_true", help="a tiny run that checks the script: 90 rows, 2 epochs, 3 rows")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.quick:
        args.rows, args.epochs = 90, 2
    tables = {}
    with tempfile.TemporaryDirectory() as scratch:
        for dataset in ("digits", "shapes"):
            if args.only and dataset != args.only:
                continue
            root = Path(scratch) / dataset
            workspace = write_digits(root, args.rows) if dataset == "digits" else write_shapes_competition(root, args.rows)
            runs = experiments(args.epochs, args.size)
            if args.quick:
                runs = dict(list(runs.items())[1:3] + list(runs.items())[-1:])
            wanted = args.recipes.split("|")
            runs = {name: settings for name, settings in runs.items() if any(text in name for text in wanted)}
            print(f"{dataset}: {args.rows} rows, 3 folds, {args.size}px", flush=True)
            tables[dataset] = measure(workspace, runs)
    names = list(next(iter(tables.values())))
    print()
    print("| recipe | " + " | ".join(f"{dataset} OOF acc | s" for dataset in tables) + " |")
    print("|---|" + "---|---|" * len(tables))
    for row, (name, *_) in enumerate(names):
        cells = " | ".join(f"{tables[d][row][1]:.4f} | {tables[d][row][2]:.0f}" for d in tables)
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
