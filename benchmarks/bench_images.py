"""Decoding a folder of images into one array: ens's threaded reader vs a plain loop.

    .venv/bin/python benchmarks/bench_images.py [--n 2000] [--source-size 64] [--size 32]

Prints seconds for each and the ratio (plain / ens; above 1 means ens is faster). The
plain loop is what one would write by hand: open, convert to RGB, resize, np.asarray.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ensemble.data.images import read_images


def plain_loop(paths, size):
    return np.stack([np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)) for path in paths])


def best_of(repeats, run):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--source-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index in range(args.n):
            path = Path(folder) / f"{index}.png"
            pixels = rng.integers(0, 255, (args.source_size, args.source_size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path)
            paths.append(path)
        ids = [str(index) for index in range(args.n)]
        plain_seconds, expected = best_of(args.repeats, lambda: plain_loop(paths, args.size))
        ens_seconds, got = best_of(args.repeats, lambda: read_images(paths, ids, args.size))
    assert np.array_equal(expected, got), "the two readers disagree"
    print(f"{args.n} PNG images {args.source_size}px -> {args.size}px, best of {args.repeats}")
    print(f"plain loop   {plain_seconds:.3f}s")
    print(f"ens (threads) {ens_seconds:.3f}s")
    print(f"ratio plain/ens {plain_seconds / ens_seconds:.2f}x")


if __name__ == "__main__":
    main()
