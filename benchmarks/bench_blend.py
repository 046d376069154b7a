"""Blending speed and memory: hill climbing vs a straightforward numpy version, SLSQP with
vs without the analytic log-loss gradient, and the peak memory of a large blend.

    .venv/bin/python benchmarks/bench_blend.py [--rows 100000] [--members 20] [--classes 10]
                                               [--memory-rows 1000000] [--steps 10]

Prints seconds and ratios (straightforward / ours: above 1 means ours is faster), then the
peak resident memory of a child process that reads 20 members of 1,000,000 x 10 from
logits files (the same reading code as `ens blend`), fits and scores mean, weighted and
hill, in sample and out of fold. Synthetic data: member m is right on 40-80% of rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ensemble import metrics
from ensemble.blend.base import member_probabilities
from ensemble.blend.hill import select
from ensemble.blend.weighted import fit_weights, true_class_probabilities


def synthetic(rows: int, members: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, classes, rows)
    logits = rng.normal(size=(members, rows, classes)).astype(np.float32)
    for member in range(members):
        right = rng.random(rows) < 0.4 + 0.4 * member / max(1, members - 1)
        logits[member, right, targets[right]] += 2.0
    return logits, targets


def straightforward_hill(probs, targets, metric, steps):
    """What one writes first: at every step, rebuild each candidate blend from all the chosen
    members and score it with one metric call."""
    single = [metric.score(targets, member) for member in probs]
    chosen = [int(np.argmax(single) if metric.greater_is_better else np.argmin(single))]
    for _ in range(steps):
        scores = [metric.score(targets, probs[chosen + [candidate]].mean(axis=0)) for candidate in range(len(probs))]
        chosen.append(int(np.argmax(scores) if metric.greater_is_better else np.argmin(scores)))
    return np.bincount(chosen, minlength=len(probs)) / len(chosen)


def timed(run):
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def speed(args) -> None:
    logits, targets = synthetic(args.rows, args.members, args.classes)
    probs = member_probabilities(logits)
    print(f"{args.rows:,} rows x {args.members} members x {args.classes} classes, {args.steps} hill steps")
    for name in ("logloss", "accuracy"):
        metric = metrics.get(name)
        naive_seconds, _ = timed(lambda: straightforward_hill(probs, targets, metric, args.steps))
        ours_seconds, _ = timed(lambda: select(probs, targets, metric, np.arange(len(probs)), args.steps, 1))
        print(f"hill ({name}): straightforward {naive_seconds:.2f}s, ours {ours_seconds:.2f}s, ratio {naive_seconds / ours_seconds:.1f}x")
    picked = true_class_probabilities(logits, targets)
    without_seconds, without = timed(lambda: fit_weights(picked, gradient=False))
    with_seconds, with_gradient = timed(lambda: fit_weights(picked, gradient=True))
    losses = [metrics.logloss(targets, np.tensordot(weights, probs, axes=1)) for weights in (without, with_gradient)]
    print(
        f"weighted (SLSQP): without gradient {without_seconds:.2f}s (logloss {losses[0]:.5f}), "
        f"with gradient {with_seconds:.2f}s (logloss {losses[1]:.5f}), ratio {without_seconds / with_seconds:.1f}x"
    )


CHILD = """
import json, resource, sys, time
import numpy as np
from pathlib import Path
from ensemble import metrics
from ensemble.artifacts import store
from ensemble.blend import METHODS
from ensemble.blend.members import aligned
from ensemble.blend.nested import out_of_fold_probabilities

folder, members, rows, classes = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ids = np.array([f"r{index}" for index in range(rows)])
targets = np.load(folder / "targets.npy")
fold_of = np.arange(rows) % 5
started = time.perf_counter()
stack = np.empty((members, rows, classes), dtype=np.float32)
for member in range(members):
    path = folder / f"m{member}.npz"
    aligned(store.load_logits(path), path, ids, tuple(str(c) for c in range(classes)), stack[member])
peaks = {"read": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
for method, params in (("mean", {}), ("weighted", {}), ("hill", {"metric": "logloss", "hill_steps": 5})):
    blender = METHODS.get(method)(**params)
    blender.fit(stack, targets).predict_proba(stack)
    out_of_fold_probabilities(blender, stack, targets, fold_of)
    peaks[method] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"peaks_gib": peaks, "seconds": time.perf_counter() - started}))
"""


def memory(args) -> None:
    from ensemble.artifacts.store import Logits, save_logits

    rows, members, classes = args.memory_rows, args.members, args.classes
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        ids = np.array([f"r{index}" for index in range(rows)])
        np.save(Path(folder) / "targets.npy", rng.integers(0, classes, rows))
        for member in range(members):
            values = rng.normal(size=(rows, classes)).astype(np.float32)
            save_logits(Path(folder) / f"m{member}.npz", Logits(ids, tuple(str(c) for c in range(classes)), values))
        logits_gib = members * rows * classes * 4 / 2**30
        print(f"memory: {members} members x {rows:,} rows x {classes} classes ({logits_gib:.2f} GiB of float32 logits)")
        child = subprocess.run(
            [sys.executable, "-c", CHILD, folder, str(members), str(rows), str(classes)], capture_output=True, text=True, check=True
        )
        report = json.loads(child.stdout)
        peaks = ", ".join(f"after {stage} {gib:.2f} GiB" for stage, gib in report["peaks_gib"].items())
        print(f"peak resident memory: {peaks} (target < 4 GiB); {report['seconds']:.0f}s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--memory-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    speed(args)
    if args.memory_rows:
        memory(args)


if __name__ == "__main__":
    main()
