"""ens audit's near-copy search: recall, precision and false pairs on synthetic competitions, and its speed.

    .venv/bin/python benchmarks/bench_audit.py [--n 3000] [--data textures|digits] [--timing 5000,20000]

Quality: n originals (random textures of 48 px; ten classes of textures whose items share
--likeness of their pixels with a class prototype; or scikit-learn's digits upscaled to 32 px,
where items of one class look alike) of which --copied get one near-copy in train (a 1-2 px
shift, brightness +-10%, Gaussian noise sigma 6, JPEG quality 70, one of them at random or all
together with --combined) and --test-copies test images are near-copies of train images. Every
image is resized to 28 px as ens decodes it (Pillow, bilinear). Prints, per threshold, the
recall and precision of the within-train copy pairs (every pair inside a found group counts
as a pair found), of the test images with a near-copy, and the false pairs per image on the
same competition without injected copies.

Timing: the search alone on --timing numbers of 28 px textures held in memory (decoding is
bench_images.py's), in seconds and images/s; --end-to-end N times the whole `ens audit` on N
PNG files (decoding, search, header counts, files).
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image
from scipy.ndimage import zoom

from ensemble.results.audit.near_copies import THUMB, find_near_copies, grey_thumbnails


def textures(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (n, size, size, 3): smooth random colour fields with some fine detail."""
    coarse = rng.uniform(0, 255, size=(n, 6, 6, 3)).astype(np.float32)
    smooth = zoom(coarse, (1, size / 6, size / 6, 1), order=3)
    detail = rng.normal(0, 12, size=smooth.shape)
    return np.clip(smooth + detail, 0, 255).astype(np.uint8)


def look_alikes(n: int, likeness: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (n, 48, 48, 3), int classes (n,)): ten classes whose items share `likeness` of their pixels
    with the class prototype, the rest their own texture (items of one class look alike, as clothing photos do)."""
    prototypes = textures(10, 48, np.random.default_rng(12345)).astype(np.float32)
    own = textures(n, 48, rng).astype(np.float32)
    classes = rng.integers(0, 10, size=n)
    return (likeness * prototypes[classes] + (1 - likeness) * own).astype(np.uint8), classes


def digits(rows: np.ndarray) -> np.ndarray:
    """uint8 (len(rows), 32, 32, 3): those rows of scikit-learn's 1,797 digits, upscaled."""
    from sklearn.datasets import load_digits

    images = load_digits().images[rows]  # (n, 8, 8), 0..16
    big = zoom(images * 15.0, (1, 4, 4), order=1)
    return np.repeat(np.clip(big, 0, 255).astype(np.uint8)[..., None], 3, axis=3)


def alter(pixels: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One near-copy of uint8 (s, s, 3) pixels."""
    if kind == "shift":
        dy, dx = rng.integers(1, 3, size=2) * rng.choice([-1, 1], size=2)
        return np.roll(pixels, (dy, dx), axis=(0, 1))
    if kind == "brightness":
        return np.clip(pixels * rng.choice([0.9, 1.1]), 0, 255).astype(np.uint8)
    if kind == "noise":
        return np.clip(pixels + rng.normal(0, 6, size=pixels.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=70)
    return np.asarray(Image.open(buffer).convert("RGB"))


KINDS = ("shift", "brightness", "noise", "jpeg")


def copy_of(pixels, rng, combined: bool):
    for kind in KINDS if combined else [rng.choice(KINDS)]:
        pixels = alter(pixels, kind, rng)
    return pixels


def to_thumbs(images: np.ndarray) -> np.ndarray:
    small = np.stack([np.asarray(Image.fromarray(image).resize((THUMB, THUMB), Image.Resampling.BILINEAR)) for image in images])
    return grey_thumbnails(small)


def competition(args, rng, with_copies: bool):
    """(train thumbs, test thumbs, true train pairs set, test row -> train row)."""
    if args.data == "textures":
        originals, test = textures(args.n, 48, rng), textures(args.n_test, 48, rng)
    elif args.data == "classes":
        originals, test = look_alikes(args.n, args.likeness, rng)[0], look_alikes(args.n_test, args.likeness, rng)[0]
    else:  # train and test from disjoint digits: the clean competition holds no copies
        order = rng.permutation(1797)
        originals, test = digits(order[: args.n]), digits(order[args.n : args.n + args.n_test])
    pairs, test_truth = set(), {}
    if with_copies:
        sources = rng.choice(args.n, size=args.copied + args.test_copies, replace=False)
        copies = np.stack([copy_of(originals[row], rng, args.combined) for row in sources[: args.copied]])
        originals = np.concatenate([originals, copies])
        pairs = {(int(row), args.n + index) for index, row in enumerate(sources[: args.copied])}
        for index, row in enumerate(sources[args.copied :]):
            test[index] = copy_of(originals[row], rng, args.combined)
            test_truth[index] = int(row)
    return to_thumbs(originals), to_thumbs(test), pairs, test_truth


def found_pairs(group_of: np.ndarray) -> set:
    found = set()
    for group in np.unique(group_of[group_of >= 0]):
        members = np.flatnonzero(group_of == group)
        found |= {(int(a), int(b)) for index, a in enumerate(members) for b in members[index + 1 :]}
    return found


def quality(args) -> None:
    rng = np.random.default_rng(args.seed)
    train, test, truth, test_truth = competition(args, rng, with_copies=True)
    clean_train, clean_test, _, _ = competition(args, np.random.default_rng(args.seed + 1), with_copies=False)
    print(f"{args.data}: {len(train)} train ({len(truth)} copy pairs), {len(test)} test ({len(test_truth)} near-copies of train)"
          f"{', all four changes at once' if args.combined else ', one change each'}")
    print("threshold | train pairs recall  precision | test copies recall  precision | clean: false pairs per image (train, test)")
    for threshold in args.thresholds:
        copies = find_near_copies(train, test, threshold)
        found = found_pairs(copies.group_of)
        hits = len(found & truth)
        test_found = {}
        for test_row, train_row in copies.test_pairs:
            test_found.setdefault(int(test_row), set()).add(int(train_row))
        test_hits = sum(1 for row, partners in test_found.items() if test_truth.get(row) in partners)
        clean = find_near_copies(clean_train, clean_test, threshold)
        false_train = len(found_pairs(clean.group_of)) / len(clean_train)
        false_test = len(clean.test_pairs) / len(clean_test)
        print(f"{threshold:9.2f} | {hits / max(1, len(truth)):18.3f} {hits / max(1, len(found)):10.3f} | "
              f"{test_hits / max(1, len(test_truth)):18.3f} {test_hits / max(1, len(test_found)):10.3f} | {false_train:.4f}, {false_test:.4f}")


def timing(sizes: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    previous = None
    for n in sizes:
        thumbs = grey_thumbnails(textures(n, THUMB, rng))
        test = thumbs[: n // 5]
        started = time.perf_counter()
        find_near_copies(thumbs, test, 0.95)
        seconds = time.perf_counter() - started
        growth = f", {seconds / previous[1]:.1f}x the time of {previous[0]} for {n / previous[0]:.1f}x the images" if previous else ""
        print(f"timing: {n} train + {len(test)} test thumbnails: {seconds:.1f}s, {(n + len(test)) / seconds:.0f} images/s{growth}")
        previous = (n, seconds)


def end_to_end(n: int, seed: int) -> None:
    """`ens audit` (run_audit) on a workspace of n train and n // 5 test PNG textures of 48 px:
    decoding into the image cache, the search, the header counts and the files."""
    import json
    import tempfile
    from pathlib import Path

    import pandas as pd

    from ensemble.config import CompetitionSettings, Workspace
    from ensemble.io import to_toml
    from ensemble.results.audit import run_audit

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        settings = CompetitionSettings()
        for name, count, images in (("train", n, settings.train_images), ("test", n // 5, settings.test_images)):
            (root / images).mkdir(parents=True)
            ids = [f"{name}{index:06d}" for index in range(count)]
            for start in range(0, count, 2000):
                for image_id, pixels in zip(ids[start : start + 2000], textures(min(2000, count - start), 48, rng)):
                    Image.fromarray(pixels).save(root / images / f"{image_id}.png")
            table = {"id": ids, "label": rng.choice(["a", "b"], size=count)} if name == "train" else {"id": ids}
            pd.DataFrame(table).to_csv(root / (settings.train_csv if name == "train" else settings.test_csv), index=False)
        pd.DataFrame({"id": ids, "label": "a"}).to_csv(root / settings.sample_submission, index=False)
        (root / "ens.toml").write_text(to_toml({"competition": settings}))
        started = time.perf_counter()
        result = run_audit(Workspace.load(root))
        seconds = time.perf_counter() - started
        read = json.loads((root / "audit" / "audit.json").read_text())["seconds"]["read_images"]
        print(f"end to end: ens audit on {n} train + {n // 5} test PNGs of 48 px: {seconds:.1f}s ({read:.1f}s decoding into the cache), "
              f"{(n + n // 5) / seconds:.0f} images/s; {result.n_groups} groups found")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["textures", "classes", "digits"], default="textures")
    parser.add_argument("--likeness", type=float, default=0.7, help="classes: the share of an item's pixels from its class prototype")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--copied", type=int, default=300)
    parser.add_argument("--test-copies", type=int, default=100)
    parser.add_argument("--combined", action="store_true")
    parser.add_argument("--thresholds", type=lambda text: [float(part) for part in text.split(",")], default=[0.9, 0.93, 0.95, 0.97])
    parser.add_argument("--timing", type=lambda text: [int(part) for part in text.split(",") if part], default=[])
    parser.add_argument("--end-to-end", type=int, default=0, help="also time run_audit on this many PNG files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.n:
        quality(args)
    timing(args.timing, args.seed)
    if args.end_to_end:
        end_to_end(args.end_to_end, args.seed)


if __name__ == "__main__":
    main()
