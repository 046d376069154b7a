"""`ens audit`: near-duplicates, train/test near-copies, conflicting labels, train/test shift and image statistics, into audit/.

Files (training and test ids as train.csv and test.csv spell them):
  audit/duplicates.csv   id,group,distance,method: every training row in a near-duplicate group of
                         two or more; group an integer from 0; method and distance of the row's
                         closest pair in its group: "thumbnails" (1 - correlation) or "embeddings"
                         (the relative embedding distance, found by the embeddings alone)
  audit/train_test.csv   test_id,train_id,distance,method: the pairs judged near-copies
  audit/conflicts.csv    group,id,label: the members of groups whose labels differ
  audit/test_like.csv    id,test_probability: the training images most like the test set (shift.py)
  audit/audit.json       every figure, the threshold, the method, counts and seconds; written last
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ensemble.config import Workspace
from ensemble.data.cache import competition_images
from ensemble.data.competition import Competition, load_competition
from ensemble.errors import EnsError
from ensemble.io import write_json, write_text
from ensemble.results.audit.embedded import DEFAULT_EMBEDDING_THRESHOLD, EmbeddingSpace
from ensemble.results.audit.near_copies import (
    EMBEDDINGS,
    MAX_SHIFT,
    NEIGHBOURS,
    POOL,
    REJECT_FACTOR,
    THUMB,
    THUMBNAILS,
    NearCopies,
    find_near_copies,
    grey_thumbnails,
)
from ensemble.results.audit.shift import CLASSIFIER, FEATURES, adversarial_validation, most_test_like, verdict
from ensemble.results.audit.stats import fold_balance, image_distributions, read_headers

AUDIT_DIR = "audit"
FILES = ("duplicates.csv", "train_test.csv", "conflicts.csv", "test_like.csv", "audit.json")
# Measured in benchmarks/bench_audit.py (RESULTS.md): 0.96-1.00 of copies with a shift, brightness,
# noise and JPEG change at once score above it; 0.95 and 0.96 pair distinct images of look-alike
# classes (and chain them into large groups), 0.98 misses a fifth of the combined changes.
DEFAULT_THRESHOLD = 0.97
METHOD = (
    f"thumbnail correlation: {THUMB} px grey thumbnails, each centred and scaled to unit norm; "
    f"a pair's score is the best correlation over shifts of up to {MAX_SHIFT} px; candidate pairs are each "
    f"image's {NEIGHBOURS} nearest neighbours on {POOL}x{POOL}-pooled thumbnails; near-duplicate groups are the "
    "connected components of the pairs at or above the threshold (no CNN embeddings)"
)
METHOD_WITH_EMBEDDINGS = (
    f"thumbnail correlation ({THUMB} px grey thumbnails, best correlation over shifts of up to {MAX_SHIFT} px) and "
    f"cosine similarity of CNN embeddings; candidate pairs are each image's {NEIGHBOURS} nearest neighbours on "
    f"{POOL}x{POOL}-pooled thumbnails and by cosine; a pair is a near-copy when its "
    f"relative embedding distance (1 - cosine over the images' distance to their {NEIGHBOURS}th nearest training image) "
    "is at most the embedding threshold (method 'embeddings'), or when its thumbnails' correlation reaches the threshold "
    f"(method 'thumbnails') unless that distance is beyond {REJECT_FACTOR}x the embedding threshold (a look-alike item of a class); near-duplicate groups are the connected components of the pairs"
)


@dataclass(frozen=True)
class Embeddings:
    """CNN features of every image, computed by the caller (the torch side): train: float32
    (n_train, d); test: float32 (n_test, d); source: how they were made (audit.json records it)."""

    train: np.ndarray
    test: np.ndarray
    source: dict


@dataclass(frozen=True)
class AuditResult:
    """What `ens audit` found and wrote; the figures are also in audit/audit.json."""

    folder: Path
    files: tuple[Path, ...]
    threshold: float
    method: str
    n_train: int
    n_test: int
    n_groups: int  # near-duplicate groups within train
    n_grouped: int  # training images in those groups
    n_test_with_copy: int  # test images with a near-copy in train
    n_conflicts: int  # groups whose members carry different labels
    methods: tuple[str, ...]  # the methods used: ("thumbnails",) or ("thumbnails", "embeddings")
    pairs_by_method: dict  # {"train": {method: pairs}, "test": {method: pairs}} of the pairs judged near-copies
    n_rejected: int  # pairs the thumbnails passed and the embeddings rejected as look-alikes
    shift_auc: float | None  # adversarial validation's ROC AUC, about 0.5 without shift; None with too few images
    shift_verdict: str  # what the AUC says, in words
    seconds: float


def check_threshold(threshold: float) -> None:
    if not 0 < threshold <= 1:
        raise EnsError(f"--threshold: {threshold} is outside (0, 1]; it is a correlation, such as {DEFAULT_THRESHOLD}")


def check_embedding_threshold(threshold: float) -> None:
    if not 0 < threshold < 1:
        raise EnsError(
            f"--embedding-threshold: {threshold} is outside (0, 1); it is a relative embedding distance, such as {DEFAULT_EMBEDDING_THRESHOLD}"
        )


def csv_text(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.4f")
    return buffer.getvalue()


def tables(competition: Competition, copies: NearCopies) -> dict[str, pd.DataFrame]:
    """The three CSV files' rows, sorted by group (then distance) and by test row."""
    grouped = np.flatnonzero(copies.group_of >= 0)
    duplicates = pd.DataFrame(
        {"id": competition.train_ids[grouped], "group": copies.group_of[grouped], "distance": copies.distance[grouped], "method": copies.method[grouped]}
    ).sort_values(["group", "distance"], kind="stable")
    test_rows, train_rows = copies.test_pairs[:, 0], copies.test_pairs[:, 1]
    train_test = pd.DataFrame(
        {
            "test_id": competition.test_ids[test_rows],
            "train_id": competition.train_ids[train_rows],
            "distance": copies.test_distance,
            "method": copies.test_method,
        }
    ).sort_values(["test_id", "distance"], kind="stable")
    labels = pd.DataFrame({"group": copies.group_of[grouped], "id": competition.train_ids[grouped], "label": competition.labels[grouped]})
    # Targets, not the cells' text, decide: "red green" and "green red" are the same tags, 3 and 3.0 the same count.
    targets = np.asarray(competition.targets).reshape(len(competition.train_ids), -1)[grouped]
    target_keys = pd.Series([row.tobytes() for row in targets], index=labels.index)
    n_labels = target_keys.groupby(labels["group"]).transform("nunique")
    conflicts = labels[n_labels > 1].sort_values(["group", "label"], kind="stable")
    return {"duplicates.csv": duplicates, "train_test.csv": train_test, "conflicts.csv": conflicts}


def check_folder(workspace: Workspace, force: bool) -> Path:
    folder = workspace.root / AUDIT_DIR
    if folder.exists() and any(folder.iterdir()) and not force:
        raise EnsError(f"{folder}: already exists; use --force to replace it")
    return folder


def pair_counts(copies: NearCopies) -> dict:
    """Pairs judged near-copies by the method that found them, within train (pairs inside groups are
    counted through their rows' closest pairs) and train/test."""
    rows = copies.method[copies.group_of >= 0]
    return {
        "train_rows": {method: int(np.sum(rows == method)) for method in (THUMBNAILS, EMBEDDINGS)},
        "train_test_pairs": {method: int(np.sum(copies.test_method == method)) for method in (THUMBNAILS, EMBEDDINGS)},
    }


def run_audit(
    workspace: Workspace,
    threshold: float = DEFAULT_THRESHOLD,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    embed: Callable[[Competition], Embeddings] | None = None,
    embedding_threshold: float = DEFAULT_EMBEDDING_THRESHOLD,
) -> AuditResult:
    """Audit the competition's images and write audit/; nothing is written (or removed) before the
    checks pass and every figure is computed. embed: the competition -> its images' embeddings
    (a trained experiment's or a weights file's, computed on the torch side); None: thumbnails alone."""
    check_threshold(threshold)
    check_embedding_threshold(embedding_threshold)
    report = progress or (lambda message: None)
    started = time.perf_counter()
    competition = load_competition(workspace)
    folder = check_folder(workspace, force)
    embeddings = None
    if embed is not None:
        embeddings = embed(competition)
    report(f"reading {len(competition.train_ids)} train and {len(competition.test_ids)} test images at {THUMB} px")
    train, test, read = competition_images(workspace.root, competition, THUMB)
    report("finding near-copies")
    space = None if embeddings is None else EmbeddingSpace(embeddings.train, embeddings.test)
    copies = find_near_copies(grey_thumbnails(train[:]), grey_thumbnails(test[:]), threshold, space=space, embedding_threshold=embedding_threshold)
    rows = tables(competition, copies)
    report("reading image headers")
    train_headers, test_headers = read_headers(competition.train_image_paths()), read_headers(competition.test_image_paths())
    report("measuring train/test shift (adversarial validation)")
    shift = adversarial_validation(train, test, train_headers, test_headers)
    like = most_test_like(shift)
    rows["test_like.csv"] = pd.DataFrame({"id": competition.train_ids[like], "test_probability": shift.test_probability[like]})
    methods = (THUMBNAILS,) if embeddings is None else (THUMBNAILS, EMBEDDINGS)
    headers = (train_headers, test_headers)
    figures = audit_figures(workspace, competition, copies, rows, shift, headers, embeddings, threshold, embedding_threshold, read.seconds)
    seconds = write_audit(folder, rows, figures, started)
    return AuditResult(
        folder=folder,
        files=tuple(folder / name for name in FILES),
        threshold=threshold,
        method=figures["method"],
        n_train=figures["n_train"],
        n_test=figures["n_test"],
        n_groups=figures["n_groups"],
        n_grouped=figures["n_grouped"],
        n_test_with_copy=figures["n_test_with_copy"],
        n_conflicts=figures["n_conflicts"],
        methods=methods,
        pairs_by_method=figures["pairs_by_method"],
        n_rejected=copies.n_rejected,
        shift_auc=shift.auc,
        shift_verdict=verdict(shift.auc),
        seconds=seconds,
    )


def audit_figures(
    workspace: Workspace, competition: Competition, copies, rows: dict, shift, headers: tuple, embeddings, threshold: float, embedding_threshold: float, read_seconds: float
) -> dict:
    """audit.json's figures: how the pairs were found, how many, the train/test shift, the images'
    headers (train, test), the balance of the folds; the total seconds are filled in by write_audit."""
    return {
        "threshold": threshold,
        "methods": [THUMBNAILS] if embeddings is None else [THUMBNAILS, EMBEDDINGS],
        "method": METHOD if embeddings is None else METHOD_WITH_EMBEDDINGS,
        "embeddings": None if embeddings is None else {
            **embeddings.source, "threshold": embedding_threshold, "n_features": int(embeddings.train.shape[1])
        },
        "pairs_by_method": pair_counts(copies),
        "n_rejected_look_alikes": copies.n_rejected,
        "n_train": len(competition.train_ids),
        "n_test": len(competition.test_ids),
        "n_groups": int(copies.group_of.max() + 1),
        "n_grouped": int(np.sum(copies.group_of >= 0)),
        "n_test_with_copy": int(rows["train_test.csv"]["test_id"].nunique()),
        "n_train_test_pairs": len(rows["train_test.csv"]),
        "n_conflicts": int(rows["conflicts.csv"]["group"].nunique()),
        "n_candidate_pairs": copies.n_candidates,
        "shift": {
            "auc": None if shift.auc is None else round(shift.auc, 4),
            "verdict": verdict(shift.auc),
            "features": FEATURES,
            "classifier": CLASSIFIER,
            "folds": shift.folds,
            "most_test_like": [str(image_id) for image_id in rows["test_like.csv"]["id"]],
        },
        "images": {"train": image_distributions(headers[0]), "test": image_distributions(headers[1])},
        "fold_balance": fold_balance(workspace, competition),
        "seconds": {"read_images": round(read_seconds, 2), "total": None},
    }


def write_audit(folder: Path, rows: dict, figures: dict, started: float) -> float:
    """The CSVs, then audit.json last with the whole run's seconds; returns those seconds."""
    for name in FILES:  # a replaced audit leaves nothing of the old one behind if writing fails
        (folder / name).unlink(missing_ok=True)
    for name, frame in rows.items():
        write_text(folder / name, csv_text(frame))
    seconds = time.perf_counter() - started
    figures["seconds"]["total"] = round(seconds, 2)
    write_json(folder / "audit.json", figures)
    return seconds
