"""A real colour competition from the package registries: the category of an emoji picture.

    npm pack emoji-datasource-apple emoji-datasource-google emoji-datasource-twitter emoji-datasource-facebook
    .venv/bin/python benchmarks/emoji_competition.py DIR --packages FOLDER_OF_TGZ [--train 2000] [--test 1000]
        [--categories "Smileys & Emotion,..."] [--name emoji]

The npm packages emoji-datasource-<vendor> ship every emoji drawn by one vendor as a 64 px RGBA
PNG, and emoji.json with each emoji's Unicode category (Smileys & Emotion, People & Body,
Animals & Nature, Food & Drink, Travel & Places, Activities, Objects, Symbols, Flags; the five
skin-tone "Component" swatches are left out). Each image is the vendor's drawing on a white
background; the label is the category: nine imbalanced classes of natural and drawn things, in
the spirit of the issue's small product photos (which are not on this machine).

Each emoji appears in two vendors' drawings, picked at random, and both land in the same split:
test emoji are never seen in training, by any vendor. train.csv has a `emoji` column, and
ens.toml groups folds by it (`[folds] strategy = "group"`), so that no fold is scored on an
emoji another vendor drew for its training folds.

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

from ensemble.config import CompetitionSettings, FoldSettings
from ensemble.io import to_toml

VENDORS = ("apple", "google", "twitter", "facebook")


def unpack(packages: Path, cache: Path) -> dict[str, Path]:
    """{vendor: folder holding package/emoji.json and package/img/<vendor>/64}, unpacked once."""
    folders = {}
    for vendor in VENDORS:
        archives = sorted(packages.glob(f"emoji-datasource-{vendor}-*.tgz"))
        if not archives:
            raise SystemExit(f"{packages}: no emoji-datasource-{vendor}-*.tgz (run `npm pack emoji-datasource-{vendor}` there)")
        folder = cache / vendor
        if not (folder / "package" / "emoji.json").exists():
            folder.mkdir(parents=True, exist_ok=True)
            with tarfile.open(archives[-1]) as archive:
                archive.extractall(folder, filter="data")
        folders[vendor] = folder / "package"
    return folders


def on_white(path: Path) -> np.ndarray:
    """uint8 (64, 64, 3): the RGBA drawing over a white background."""
    with Image.open(path) as image:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(canvas, rgba).convert("RGB"))


def write_competition(root: Path, packages: Path, n_train: int, n_test: int, seed: int, categories: list[str] | None = None) -> Path:
    """categories: the classes kept (default: every one but the skin-tone swatches)."""
    rng = np.random.default_rng(seed)
    folders = unpack(packages, root.parent / f".{root.name}-packages")
    emoji = json.loads((folders["google"] / "emoji.json").read_text())
    kept = set(categories) if categories else {e["category"] for e in emoji} - {"Component"}
    unknown = kept - {e["category"] for e in emoji}
    if unknown:
        raise SystemExit(f"unknown categories {sorted(unknown)}; emoji.json has {sorted({e['category'] for e in emoji})}")
    usable = [e for e in emoji if e["category"] in kept and all(e[f"has_img_{v}"] for v in VENDORS)]
    order = rng.permutation(len(usable))
    n_train_emoji, n_test_emoji = n_train // 2, n_test // 2
    if n_train_emoji + n_test_emoji > len(usable):
        raise SystemExit(f"only {len(usable)} emoji are drawn by every vendor: at most {2 * len(usable)} images in all")
    picks = {"train": order[:n_train_emoji], "test": order[n_train_emoji : n_train_emoji + n_test_emoji]}
    settings = CompetitionSettings(group_column="emoji")
    frames = {}
    for split, rows in picks.items():
        folder = root / (settings.train_images if split == "train" else settings.test_images)
        folder.mkdir(parents=True, exist_ok=True)
        records = []
        for row in rows:
            entry = usable[row]
            for vendor in rng.choice(VENDORS, size=2, replace=False):
                image_id = f"{split}_{len(records):05d}"
                pixels = on_white(folders[vendor] / "img" / vendor / "64" / entry["image"])
                Image.fromarray(pixels).save(folder / f"{image_id}.png")
                records.append({"id": image_id, "label": entry["category"], "emoji": entry["unified"]})
        frame = pd.DataFrame(records)
        frames[split] = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    (root / "data").mkdir(exist_ok=True)
    frames["train"].to_csv(root / settings.train_csv, index=False)
    frames["test"][["id"]].to_csv(root / settings.test_csv, index=False)
    sample = pd.DataFrame({"id": frames["test"]["id"], "label": frames["train"]["label"].iloc[0]})
    sample.to_csv(root / settings.sample_submission, index=False)
    frames["test"][["id", "label"]].to_csv(root / "data" / "test_labels.csv", index=False)
    for name in ("folds", "models", "submissions"):
        (root / name).mkdir(exist_ok=True)
    (root / "ens.toml").write_text(to_toml({"competition": settings, "folds": FoldSettings(strategy="group")}))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="the competition is written to DIRECTORY/NAME")
    parser.add_argument("--packages", type=Path, required=True, help="folder holding the four emoji-datasource-*.tgz")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--categories", help="comma list of the classes kept, e.g. a seven-class set of a few hundred icons")
    parser.add_argument("--name", default="emoji", help="the competition's folder under DIRECTORY")
    args = parser.parse_args()
    categories = [name.strip() for name in args.categories.split(",")] if args.categories else None
    print(write_competition(args.directory / args.name, args.packages, args.train, args.test, args.seed, categories))


if __name__ == "__main__":
    main()
