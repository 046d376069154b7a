"""An exported bundle predicting a test list against `ens predict --test-csv` of each member in
turn (what a user without `--blend` or a bundle would run), and the bundle's peak RSS as the
test list grows.

    .venv/bin/python benchmarks/bench_export.py [--n 2000] [--grow 4] [--size 32] [--keep DIR]

Builds a competition of --n test images (random PNGs of 40-60 px, three classes), trains two
tiny experiments (test_resnet, test_efficientnet at --size px, 3 folds, one with hflip TTA),
blends them (mean), exports the blend, then times, each in a fresh process:
- members: `python -m ensemble predict -n a --test-csv ...`, then `-n b` (the image cache is
  cleared first, so the first run decodes the images into it, as it would on a new test set);
- bundle: `python -m ensemble predict --bundle ...` (decodes in chunks, no cache file).
Prints wall seconds, the ratio (above 1: the bundle is faster) and each process's peak RSS,
then the bundle's peak RSS on --grow times as many images (the same images listed again under
new ids): a chunked prediction keeps it about flat.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ensemble.data.cache import cache_dir

REPO = Path(__file__).resolve().parents[1]


def make_competition(root: Path, n_train: int, n_test: int, size: int) -> None:
    rng = np.random.default_rng(0)
    labels = ("a", "b", "c")
    for folder, prefix, count in (("train", "", n_train), ("test", "t", n_test)):
        (root / "data" / folder).mkdir(parents=True)
        for index in range(count):
            side = int(rng.integers(40, 60))
            pixels = np.clip(rng.normal(50 + 70 * (index % 3), 25, size=(side, side, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / "data" / folder / f"{prefix}{index:06d}.png")
    train_ids = [f"{index:06d}" for index in range(n_train)]
    pd.DataFrame({"id": train_ids, "label": [labels[index % 3] for index in range(n_train)]}).to_csv(root / "data" / "train.csv", index=False)
    test_ids = [f"t{index:06d}" for index in range(n_test)]
    pd.DataFrame({"id": test_ids}).to_csv(root / "data" / "test.csv", index=False)
    pd.DataFrame({"id": test_ids, "label": "a"}).to_csv(root / "data" / "sample_submission.csv", index=False)
    (root / "ens.toml").write_text(
        '[competition]\ntask = "single_label"\n[folds]\nk = 3\n'
        f'[train]\nmodel = "test_resnet"\nsize = {size}\nepochs = 1\nbatch_size = 32\ndevice = "cpu"\n'
    )


def timed(command: list, cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{' '.join(map(str, command))} failed: {process.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def ens(*args) -> list:
    return [sys.executable, "-m", "ensemble", *map(str, args)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--grow", type=int, default=4)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--keep", type=Path, default=None, help="Build the workspace here and keep it.")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_export_"))
    make_competition(root, 60, args.n, args.size)
    for command in (ens("folds", "-w", root), ens("train-folds", "-w", root, "-n", "a"),
                    ens("train-folds", "-w", root, "-n", "b", "--model", "test_efficientnet", "--tta", "hflip"),
                    ens("blend", "-w", root, "-n", "m"), ens("export", "m", "-w", root, "--out", root / "bundle", "--device", "cpu")):
        subprocess.run(command, cwd=REPO, check=True, capture_output=True)
    test_csv, images = root / "data" / "test.csv", root / "data" / "test"

    shutil.rmtree(cache_dir(root), ignore_errors=True)
    members = [timed(ens("predict", "-w", root, "-n", name, "--test-csv", test_csv, "--test-images", images, "--out", root / f"{name}.csv", "--device", "cpu"), REPO)
               for name in ("a", "b")]
    bundle = timed(ens("predict", "--bundle", root / "bundle", "--test-csv", test_csv, "--test-images", images, "--out", root / "bundle.csv", "--device", "cpu"), REPO)
    member_seconds = sum(seconds for seconds, _ in members)
    print(f"{args.n} test images at {args.size}px, 2 members x 3 folds (b with hflip TTA), {os.cpu_count()} CPU cores")
    for name, (seconds, rss) in zip(("ens predict -n a", "ens predict -n b"), members):
        print(f"  {name:<24} {seconds:7.1f} s   peak RSS {rss:7.0f} MB")
    print(f"  {'members in turn':<24} {member_seconds:7.1f} s")
    print(f"  {'ens predict --bundle':<24} {bundle[0]:7.1f} s   peak RSS {bundle[1]:7.0f} MB")
    print(f"  ratio members / bundle: {member_seconds / bundle[0]:.2f}")

    grown = pd.DataFrame({"id": [f"t{index % args.n:06d}" for index in range(args.n * args.grow)]})
    links = root / "grown"
    links.mkdir(exist_ok=True)
    for index in range(len(grown)):  # each listed id its own file name: symlinks to the same images
        name = f"g{index:07d}"
        os.symlink(images / f"{grown['id'][index]}.png", links / f"{name}.png")
        grown.loc[index, "id"] = name
    grown.to_csv(root / "grown.csv", index=False)
    seconds, rss = timed(ens("predict", "--bundle", root / "bundle", "--test-csv", root / "grown.csv", "--test-images", links, "--out", root / "grown_out.csv", "--device", "cpu"), REPO)
    print(f"  bundle on {len(grown)} images:  {seconds:7.1f} s   peak RSS {rss:7.0f} MB ({len(grown) / seconds:.0f} images/s)")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
