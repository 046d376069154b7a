"""Whole competitions built from scratch for benchmarks: two of the kinds that are not
single-label, and a single-label one harder than the digits demo.

    .venv/bin/python benchmarks/task_competitions.py DIR [--kind tags|counts|digit|both] [--train 2000] [--test 1000]

tags (multi-label, DIR/tags): 56 px colour images, each holding one to three different
handwritten digits (scikit-learn's digits, upscaled to 14-20 px, in random colours, at random
places on a noisy gradient); the tags are the digits' names ("one seven"), 10 tags,
train.csv `id,tags`, a sample of `id,tags`. Test images use other writers' digits than train
images (the 1,797 digits are split 70/30 first), so a model cannot remember glyphs.

counts (regression, DIR/counts): 64 px colour images holding 0-9 small blobs (discs and squares
of 3-6 px, random colours, not touching) among a few faint distractor strokes; the target is
the number of blobs, train.csv `image_id,count`, a sample of zeros, ens.toml with
task = "regression" and metric = "rmse" (whole counts 0-9 could be classes too: the
ambiguous case that ens refuses to guess).

digit (single-label, DIR/digit): 40 px colour images holding one bright handwritten digit
(14-26 px, at a random place) and a faint second digit of another class as a distractor, on
the noisy gradient; the label is the bright digit's name, train.csv `id,label`, a sample of
`id,label`. Other writers at test time, as for tags.

Each competition has its hidden labels in data/test_labels.csv, which no ens command reads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ensemble.config import CompetitionSettings
from ensemble.io import to_toml

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def background(size: int, rng: np.random.Generator) -> np.ndarray:
    """float (size, size, 3): a soft colour gradient with pixel noise."""
    corners = rng.uniform(20, 110, size=(2, 2, 3))
    t = np.linspace(0, 1, size)[:, None, None]
    s = np.linspace(0, 1, size)[None, :, None]
    field = (1 - t) * ((1 - s) * corners[0, 0] + s * corners[0, 1]) + t * ((1 - s) * corners[1, 0] + s * corners[1, 1])
    return field + rng.normal(0, 8, size=(size, size, 3))


def glyph(image: np.ndarray, side: int) -> np.ndarray:
    """A digit (8 x 8, 0..16) resized to side x side, as alpha in 0..1."""
    resized = Image.fromarray(np.uint8(image * 255 / 16)).resize((side, side), Image.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255


def tags_image(glyphs: list[np.ndarray], rng: np.random.Generator, size: int = 56) -> np.ndarray:
    """The digits at random, non-overlapping cells of a 3 x 3 grid, jittered."""
    canvas = background(size, rng)
    cells = rng.choice(9, size=len(glyphs), replace=False)
    cell = size // 3
    for image, where in zip(glyphs, cells):
        side = int(rng.integers(14, 21))
        alpha = glyph(image, side)[..., None]
        top = (where // 3) * cell + int(rng.integers(0, max(1, cell - side + 4)))
        left = (where % 3) * cell + int(rng.integers(0, max(1, cell - side + 4)))
        top, left = min(top, size - side), min(left, size - side)
        colour = rng.uniform(150, 255, size=3) * rng.permutation([1.0, rng.uniform(0.3, 1), rng.uniform(0.3, 1)])
        patch = canvas[top : top + side, left : left + side]
        canvas[top : top + side, left : left + side] = patch * (1 - alpha) + colour * alpha
    return np.clip(canvas, 0, 255).astype(np.uint8)


def digit_image(image: np.ndarray, distractor: np.ndarray, rng: np.random.Generator, size: int = 40) -> np.ndarray:
    """One bright digit anywhere, a faint one of another class behind it."""
    canvas = background(size, rng)
    for pixels, strength in ((distractor, 0.35), (image, 1.0)):
        side = int(rng.integers(14, 27))
        alpha = glyph(pixels, side)[..., None] * strength
        top, left = (int(rng.integers(0, size - side + 1)) for _ in range(2))
        colour = rng.uniform(150, 255, size=3) * rng.permutation([1.0, rng.uniform(0.3, 1), rng.uniform(0.3, 1)])
        patch = canvas[top : top + side, left : left + side]
        canvas[top : top + side, left : left + side] = patch * (1 - alpha) + colour * alpha
    return np.clip(canvas, 0, 255).astype(np.uint8)


def counts_image(count: int, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """`count` blobs that do not touch, and up to three faint strokes that are not blobs."""
    canvas = background(size, rng)
    yy, xx = np.mgrid[:size, :size]
    for _ in range(int(rng.integers(0, 4))):  # distractors: thin faint lines
        row = int(rng.integers(0, size))
        canvas[row, :] += rng.uniform(15, 35)
    placed: list[tuple[float, float, float]] = []
    while len(placed) < count:
        radius = float(rng.uniform(3, 6))
        y, x = rng.uniform(radius + 1, size - radius - 1, size=2)
        if any((y - py) ** 2 + (x - px) ** 2 < (radius + pr + 3) ** 2 for py, px, pr in placed):
            continue
        placed.append((y, x, radius))
        if rng.random() < 0.5:
            mask = (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
        else:
            mask = (np.abs(yy - y) <= radius * 0.8) & (np.abs(xx - x) <= radius * 0.8)
        canvas[mask] = rng.uniform(140, 255, size=3)
    return np.clip(canvas, 0, 255).astype(np.uint8)


def writer_pools(rng: np.random.Generator) -> tuple[object, dict[str, np.ndarray]]:
    """(scikit-learn's digits, {"train": rows, "test": rows}): 70% of the writers' digits for
    training images, the rest for test images, so that a model cannot remember glyphs."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = rng.permutation(len(digits.images))
    return digits, {"train": order[: int(0.7 * len(order))], "test": order[int(0.7 * len(order)) :]}


def digit_images(n: int, pool: np.ndarray, digits, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (n, 40, 40, 3), int (n,) classes): the `digit` competition's images drawn from the digits of `pool`."""
    images, labels = [], []
    for _ in range(n):
        digit, other = rng.choice(10, size=2, replace=False)
        rows = [rng.choice(pool[digits.target[pool] == each]) for each in (digit, other)]
        images.append(digit_image(digits.images[rows[0]], digits.images[rows[1]], rng))
        labels.append(int(digit))
    return np.stack(images), np.array(labels)


def write_competition(root: Path, kind: str, n_train: int, n_test: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    root = root / kind
    if kind == "tags":
        settings = CompetitionSettings(label_column="tags", task="multi_label")
    elif kind == "digit":
        settings = CompetitionSettings()
    else:
        settings = CompetitionSettings(id_column="image_id", label_column="count", task="regression", metric="rmse")
    digits, pools = writer_pools(rng)
    frames = {}
    for split, n in (("train", n_train), ("test", n_test)):
        folder = root / (settings.train_images if split == "train" else settings.test_images)
        folder.mkdir(parents=True, exist_ok=True)
        ids, labels = [], []
        for index in range(n):
            image_id = f"{split}_{index:05d}"
            if kind == "tags":
                chosen = sorted(rng.choice(10, size=int(rng.integers(1, 4)), replace=False))
                rows = [rng.choice(pools[split][digits.target[pools[split]] == digit]) for digit in chosen]
                pixels = tags_image([digits.images[row] for row in rows], rng)
                labels.append(" ".join(NAMES[digit] for digit in chosen))
            elif kind == "digit":
                digit, other = rng.choice(10, size=2, replace=False)
                rows = [rng.choice(pools[split][digits.target[pools[split]] == each]) for each in (digit, other)]
                pixels = digit_image(digits.images[rows[0]], digits.images[rows[1]], rng)
                labels.append(NAMES[digit])
            else:
                count = int(rng.integers(0, 10))
                pixels = counts_image(count, rng)
                labels.append(str(count))
            Image.fromarray(pixels).save(folder / f"{image_id}.png")
            ids.append(image_id)
        frames[split] = pd.DataFrame({settings.id_column: ids, settings.label_column: labels})
    data = root / "data"
    frames["train"].to_csv(root / settings.train_csv, index=False)
    frames["test"][[settings.id_column]].to_csv(root / settings.test_csv, index=False)
    placeholder = "0" if kind == "counts" else "zero"
    pd.DataFrame({settings.id_column: frames["test"][settings.id_column], settings.label_column: placeholder}).to_csv(root / settings.sample_submission, index=False)
    frames["test"].to_csv(data / "test_labels.csv", index=False)
    for folder in ("folds", "models", "submissions"):
        (root / folder).mkdir(exist_ok=True)
    (root / "ens.toml").write_text(to_toml({"competition": settings}))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--kind", choices=["tags", "counts", "digit", "both"], default="both")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for kind in ("tags", "counts") if args.kind == "both" else (args.kind,):
        print(write_competition(args.directory, kind, args.train, args.test, args.seed))


if __name__ == "__main__":
    main()
