"""Teacher and student (issue 20) on a whole single-label competition: pseudo-labels from a
nested teacher against the leaky one, and a distilled small student against its blend.

    .venv/bin/python benchmarks/bench_teacher.py DIR [--train 2000] [--test 1000] [--alphas 0.5]

DIR/digit is the competition benchmarks/task_competitions.py writes (made when missing): 40 px
handwritten digits with a faint distractor digit, other writers at test time, hidden answers
in data/test_labels.csv that no ens command reads. In it, one command after another:

    ens folds
    ens train-folds -n base                                                  # the defaults
    ens train-folds -n m48 --size 48 --augment shift:0.1,scale:0.8-1 --label-smoothing 0.1
    ens blend -n hb --method hill --experiments base,m48
    ens train-folds -n pl <m48's recipe> --pseudo hb                          # nested teacher
    (library) the same with the leaky teacher: the full blend for every fold -> pl-leaky
    ens train-folds -n pl32 --model resnet10t --size 32 --pseudo hb           # the students' reference
    ens train-folds -n kd-A --model resnet10t --size 32 --distill hb --distill-alpha A --pseudo hb
    ens blend -n kd-A-alone --method mean --experiments kd-A
    ens predict --blend hb / --blend kd-A-alone on the test images, each timed

(The issue's second member flips; a flipped digit is another digit or none, so this one
shifts and scales instead.) Prints each experiment's OOF and hidden accuracy and their gap
(the inflation), the pseudo student against its recipe's member, and the distilled students
against the blend: accuracy, and prediction time as a ratio, both the time `ens predict`
reports (decoding and every fold model's forward passes) and the command's whole wall time
(with the interpreter's and torch's start, the same for both). Run it alone: two CPU cores
shared with another run make every epoch many times slower.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from task_competitions import write_competition  # noqa: E402

from ensemble.artifacts.store import load_logits  # noqa: E402

ENS = f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.argv[0] = 'ens'; from ensemble.cli import main; main()"
M48 = ["--size", "48", "--augment", "shift:0.1,scale:0.8-1", "--label-smoothing", "0.1"]
LEAKY = """
import sys; sys.path.insert(0, {root!r})
from ensemble.blend.teacher import TeacherOptions
from ensemble.config import Workspace, override
from ensemble.workflows.teach import train_student
workspace = Workspace.load('.')
settings = override(workspace.train, size=48, augment='shift:0.1,scale:0.8-1', label_smoothing=0.1, sizes='')
train_student(workspace, 'pl-leaky', settings, TeacherOptions(pseudo='hb', nested=False))
"""


def ens(*args, cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", ENS, *map(str, args)], cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def timed_predict(*args, cwd: Path) -> tuple[float, float]:
    """(seconds `ens predict` reports for decoding and predicting, the command's wall seconds)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", ENS, "predict", *map(str, args)], cwd=cwd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    said = re.search(r"predicted \d+/\d+ images in ([\d.]+)s", done.stdout + done.stderr)
    return float(said.group(1)), wall


def once(name: str, root: Path, *args) -> None:
    """Train experiment `name` unless it is finished (a rerun of the benchmark resumes)."""
    if not (root / "models" / name / "oof.npz").is_file():
        ens("train-folds", "-n", name, *args, cwd=root)


def hidden_accuracy(root: Path, labels: pd.Series, name: str) -> float:
    logits = load_logits(root / "models" / name / "test.npz")
    predicted = pd.Series(np.asarray(logits.classes)[logits.values.argmax(axis=1)], index=logits.ids)
    return float((predicted[labels.index] == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--alphas", default="0.5", help="distill alphas to measure, e.g. 0.5,1")
    args = parser.parse_args()
    root = args.directory / "digit"
    if not (root / "ens.toml").is_file():
        write_competition(args.directory, "digit", args.train, args.test, seed=0)
    if not (root / "folds" / "folds.csv").is_file():
        ens("folds", cwd=root)
    started = time.perf_counter()
    once("base", root)
    once("m48", root, *M48)
    if not (root / "submissions" / "hb.json").is_file():
        ens("blend", "-n", "hb", "--method", "hill", "--experiments", "base,m48", cwd=root)
    once("pl", root, *M48, "--pseudo", "hb")
    if not (root / "models" / "pl-leaky" / "oof.npz").is_file():
        subprocess.run([sys.executable, "-c", LEAKY.format(root=str(ROOT))], cwd=root, check=True, stdout=subprocess.DEVNULL)
    once("pl32", root, "--model", "resnet10t", "--size", "32", "--pseudo", "hb")
    students = [f"kd-{alpha}" for alpha in args.alphas.split(",")]
    for alpha, student in zip(args.alphas.split(","), students):
        once(student, root, "--model", "resnet10t", "--size", "32", "--distill", "hb", "--distill-alpha", alpha, "--pseudo", "hb")
    print(f"trained in {time.perf_counter() - started:.0f}s")

    truth = pd.read_csv(root / "data" / "test_labels.csv", dtype=str).set_index("id")["label"]
    board = json.loads(subprocess.run([sys.executable, "-c", ENS, "leaderboard", "--format", "json"], cwd=root, check=True, capture_output=True, text=True).stdout)
    oof = {row["name"]: row["oof_score"] for row in board}
    hidden = {name: hidden_accuracy(root, truth, name) for name in oof}
    print(f"{'experiment':<12} {'OOF':>7} {'hidden':>7} {'OOF - hidden':>13}")
    for name in ["base", "m48", "pl", "pl-leaky", "pl32", *students]:
        print(f"{name:<12} {oof[name]:7.4f} {hidden[name]:7.4f} {oof[name] - hidden[name]:+13.4f}")
    blend = json.loads((root / "submissions" / "hb.json").read_text())
    submitted = pd.read_csv(root / "submissions" / "hb.csv", dtype=str).set_index("id")["label"]
    blend_hidden = float((submitted[truth.index] == truth).mean())
    print(f"{'blend hb':<12} {blend['oof_score_out_of_fold']:7.4f} {blend_hidden:7.4f} {blend['oof_score_out_of_fold'] - blend_hidden:+13.4f}")
    print(f"pseudo-labelled student - its recipe's member, hidden: {hidden['pl'] - hidden['m48']:+.4f} (target >= +0.01)")
    print(f"pseudo student's OOF - hidden: nested {oof['pl'] - hidden['pl']:+.4f} (target within 0.025), leaky {oof['pl-leaky'] - hidden['pl-leaky']:+.4f}")

    test_args = ["--test-csv", root / "data" / "test.csv", "--test-images", root / "data" / "test", "--force"]
    blend_seconds, blend_wall = timed_predict("--blend", "hb", "--out", root / "hb-again.csv", *test_args, cwd=root)
    for student in students:
        if not (root / "submissions" / f"{student}-alone.json").is_file():
            ens("blend", "-n", f"{student}-alone", "--method", "mean", "--experiments", student, cwd=root)
        seconds, wall = timed_predict("--blend", f"{student}-alone", "--out", root / f"{student}.csv", *test_args, cwd=root)
        print(
            f"{student}: hidden {hidden[student]:.4f} vs blend {blend_hidden:.4f} ({hidden[student] - blend_hidden:+.4f}, target >= -0.01); "
            f"OOF - hidden {oof[student] - hidden[student]:+.4f} vs pl32's {oof['pl32'] - hidden['pl32']:+.4f} (the same student undistilled)"
        )
        print(
            f"  ens predict {seconds:.1f}s vs the blend's {blend_seconds:.1f}s: {blend_seconds / seconds:.2f}x faster (target >= 1.8x); "
            f"whole commands {wall:.1f}s vs {blend_wall:.1f}s: {blend_wall / wall:.2f}x"
        )


if __name__ == "__main__":
    main()
