"""The images' content key (data/content.py) against what it replaced and what it guards.

    .venv/bin/python benchmarks/bench_content.py [--n 20000] [--source-px 256]

Writes N JPEG files, then times (best of 3, warm page cache): the content key (relative path,
size and the first and last 64 KB of each file); the key it replaced (path, size and mtime from
os.stat, which misses a same-size file copied with its time kept); and decoding the same files at
32 px, the work the cache saves. Prints seconds and the ratios key / stat and decode / key.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ensemble.data.content import content_key
from ensemble.data.images import read_images


def stat_key(paths):
    return [(os.path.abspath(path), os.stat(path).st_size, os.stat(path).st_mtime_ns) for path in paths]


def best_of(repeats, run):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--source-px", type=int, default=256)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index in range(args.n):
            path = Path(folder) / f"{index:06d}.jpg"
            pixels = rng.integers(0, 255, (args.source_px // 8, args.source_px // 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).resize((args.source_px, args.source_px)).save(path, quality=90)
            paths.append(path)
        mean_kb = sum(path.stat().st_size for path in paths) / len(paths) / 1024
        key = best_of(3, lambda: content_key(paths, Path(folder)))
        stat = best_of(3, lambda: stat_key(paths))
        decode = best_of(1, lambda: read_images(paths, [path.stem for path in paths], 32))
    print(f"{args.n} JPEGs of {args.source_px} px ({mean_kb:.0f} KB each on average)")
    print(f"content key {key:.2f} s, stat key {stat:.2f} s, decode at 32 px {decode:.2f} s")
    print(f"content key / stat key: {key / stat:.1f}x; decode / content key: {decode / key:.1f}x")


if __name__ == "__main__":
    main()
