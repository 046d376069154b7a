"""Fold assignment and the folds file, folds/folds.csv (id, fold) with folds/folds.json.

folds.json records the settings and the hash of the train.csv the folds were made for, so a
folds file left over from other data is refused instead of silently misaligning OOF logits.
With dedupe, every strategy also keeps each near-duplicate group of `ens audit` in one fold;
folds.json then records those groups' hash (dedupe_sha256) but reading never checks it: a
later audit does not invalidate folds, the leaderboard notes the groups they split instead.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ensemble.config import FoldSettings, Workspace
from ensemble.data.competition import Competition
from ensemble.data.duplicates import DuplicateGroups, read_duplicates
from ensemble.data.stratify import STRATIFICATIONS, Limit, Stratification
from ensemble.errors import EnsError
from ensemble.io import read_json, sha256_bytes, sha256_file, write_json, write_text
from ensemble.registry import Registry

# split(competition, k, seed, together) -> fold index of each training row, int (n_train,).
# together: None, or int (n_train,) with one label per set of rows that must share a fold
# (near-duplicates; a row in no group has a label of its own).
Splitter = Callable[[Competition, int, int, "np.ndarray | None"], np.ndarray]
STRATEGIES: Registry[Splitter] = Registry("fold strategy")


def stratification(competition: Competition) -> Stratification:
    return STRATIFICATIONS.get(competition.task.name)


def most_folds(competition: Competition) -> Limit:
    """The most folds the competition's targets allow, or its groups where they allow fewer."""
    limit = stratification(competition).most_folds(competition.targets)
    if competition.groups is not None and len(set(competition.groups)) < limit.k:
        return Limit(len(set(competition.groups)), "groups")
    return limit


@STRATEGIES.register("stratified")
def stratified(competition: Competition, k: int, seed: int, together: np.ndarray | None) -> np.ndarray:
    """Each fold keeps the target distribution of the whole train set (as far as `together`
    allows): class shares, each tag's share, or the target's quantiles (data/stratify.py)."""
    limit = stratification(competition).most_folds(competition.targets)
    if limit.k < k:
        raise EnsError(f"{competition.train_csv}: {limit.k} {limit.what} cannot fill {k} stratified folds; use --k {limit.k} or fewer")
    if together is not None:
        return _grouped(competition, k, seed, together, "groups (near-duplicate groups and rows in none)")
    return stratification(competition).split(competition.targets, k, seed, None)


@STRATEGIES.register("group")
def group(competition: Competition, k: int, seed: int, together: np.ndarray | None) -> np.ndarray:
    """No group spans two folds (a patient, a scene); the target distribution kept as far as
    groups allow. With `together`, groups are the union of both relations: rows sharing a group
    value or a near-duplicate group, and so on transitively, share a fold."""
    if competition.groups is None:
        raise EnsError(
            f"{competition.train_csv}: strategy 'group' needs group_column set in ens.toml [competition]"
        )
    if together is None:  # the group values themselves: folds made before dedupe stay as they were
        return _grouped(competition, k, seed, competition.groups, "groups")
    _, group_codes = np.unique(competition.groups, return_inverse=True)
    every_row = np.arange(len(competition.train_ids))
    linked = connected_rows(len(every_row), [(every_row, group_codes), (every_row, together)])
    return _grouped(competition, k, seed, linked, "groups (group column and near-duplicates joined)")


def _grouped(competition: Competition, k: int, seed: int, groups: np.ndarray, what: str) -> np.ndarray:
    n_groups = len(np.unique(groups))
    if n_groups < k:
        raise EnsError(f"{competition.train_csv}: {n_groups} {what} cannot fill {k} folds")
    return stratification(competition).split(competition.targets, k, seed, groups)


def connected_rows(n_rows: int, links: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Component label of each row, int (n_rows,): rows are joined when they share a label in
    any of `links`, each a pair (rows, labels): int (n_pairs,) each. A row in no link is alone."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    # A bipartite graph, rows on one side and each link's labels on the other: its components
    # are the union of the relations without listing every pair of rows that share a label.
    row_nodes, label_nodes, n_nodes = [], [], n_rows
    for rows, labels in links:
        _, codes = np.unique(labels, return_inverse=True)
        row_nodes.append(np.asarray(rows, dtype=np.int64))
        label_nodes.append(n_nodes + codes.reshape(-1))
        n_nodes += int(codes.max()) + 1 if len(codes) else 0
    sources, targets = np.concatenate(row_nodes), np.concatenate(label_nodes)
    graph = coo_matrix((np.ones(len(sources), dtype=np.int8), (sources, targets)), shape=(n_nodes, n_nodes))
    _, component = connected_components(graph, directed=False)
    return component[:n_rows]


def duplicates_together(n_rows: int, duplicates: DuplicateGroups) -> np.ndarray:
    """together: int (n_rows,), one label per near-duplicate group (groups sharing a row joined)."""
    return connected_rows(n_rows, [(duplicates.rows, duplicates.groups)])


def groups_hash(competition: Competition) -> str | None:
    if competition.groups is None:
        return None
    return sha256_bytes("\n".join(competition.groups).encode())


@dataclass(frozen=True)
class FoldsResult:
    path: Path
    fold_sizes: list[int]
    # (what, name, rows) of the rarest class or tag ("class", "cat", 3): below k rows, some folds
    # lack it; None for a regression, where no fold lacks anything.
    rarest: tuple[str, str, int] | None
    dedupe_groups: int | None = None  # near-duplicate groups kept in one fold; None without dedupe


def assign_folds(competition: Competition, settings: FoldSettings, duplicates: DuplicateGroups | None = None) -> np.ndarray:
    """fold_of: int (n_train,), the fold whose model does not see each training row.
    duplicates: the near-duplicate groups that settings.dedupe keeps together (needed then only)."""
    if settings.dedupe != (duplicates is not None):
        raise ValueError(f"assign_folds: dedupe is {settings.dedupe} but duplicates were {'not ' if duplicates is None else ''}given")
    split = STRATEGIES.get(settings.strategy)
    if settings.k > len(competition.train_ids):
        raise EnsError(
            f"{competition.train_csv}: {len(competition.train_ids)} rows cannot fill {settings.k} folds"
        )
    n_rows = len(competition.train_ids)
    together = None if duplicates is None else duplicates_together(n_rows, duplicates)
    with warnings.catch_warnings():
        # scikit-learn warns when a class has fewer members than folds; FoldsResult reports it.
        warnings.simplefilter("ignore", UserWarning)
        return split(competition, settings.k, settings.seed, together)


def write_folds(workspace: Workspace, competition: Competition, settings: FoldSettings, force: bool) -> FoldsResult:
    csv_path, meta_path = folds_paths(workspace)
    if csv_path.exists() and not force:
        raise EnsError(f"{csv_path}: already exists; use --force to replace it")
    duplicates = read_duplicates(workspace, competition) if settings.dedupe else None
    fold_of = assign_folds(competition, settings, duplicates)
    frame = pd.DataFrame({competition.settings.id_column: competition.train_ids, "fold": fold_of})
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    text = buffer.getvalue()
    meta = {
        **dataclasses.asdict(settings),
        "train_csv": str(competition.train_csv),
        "train_sha256": competition.train_hash,
        "groups_sha256": groups_hash(competition) if settings.strategy == "group" else None,
        "folds_sha256": sha256_bytes(text.encode()),
        "n_rows": len(fold_of),
    }
    if duplicates is not None:  # a key of its own: read_folds never compares it (see the docstring)
        meta |= {"dedupe_sha256": duplicates.sha256, "dedupe_groups": duplicates.n_groups}
    # The CSV goes last: an existing folds.json without its CSV is never read alone.
    write_json(meta_path, meta)
    write_text(csv_path, text)
    return FoldsResult(
        path=csv_path,
        fold_sizes=np.bincount(fold_of, minlength=settings.k).tolist(),
        rarest=stratification(competition).rarest(competition.targets, competition.classes),
        dedupe_groups=None if duplicates is None else duplicates.n_groups,
    )


def folds_paths(workspace: Workspace) -> tuple[Path, Path]:
    return workspace.folds_dir / "folds.csv", workspace.folds_dir / "folds.json"


@dataclass(frozen=True)
class Folds:
    """fold_of: int (n_train,) aligned with competition.train_ids; k folds; sha256 of folds.csv."""

    fold_of: np.ndarray
    k: int
    sha256: str


def read_folds(workspace: Workspace, competition: Competition) -> Folds:
    """The folds file, checked against the competition it is used with."""
    csv_path, meta_path = folds_paths(workspace)
    if not csv_path.is_file():
        raise EnsError(f"{csv_path}: not found; run `ens folds` first")
    if not meta_path.is_file():
        raise EnsError(f"{meta_path}: not found, so {csv_path.name} cannot be checked; run `ens folds --force` to make new folds")
    meta = read_json(meta_path)
    if meta.get("train_sha256") != competition.train_hash:
        raise EnsError(
            f"{csv_path}: made for another train.csv (hash differs from {competition.train_csv}); "
            "run `ens folds --force` to make new folds"
        )
    if meta.get("groups_sha256") not in (None, groups_hash(competition)):
        raise EnsError(
            f"{csv_path}: made for other groups than {competition.settings.group_column or 'no group_column'!r} "
            "now gives; run `ens folds --force` to make new folds"
        )
    sha256 = sha256_file(csv_path)
    if meta.get("folds_sha256") != sha256:
        raise EnsError(
            f"{csv_path}: does not match {meta_path} (edited, or half-replaced); "
            "run `ens folds --force` to make new folds"
        )
    id_column = competition.settings.id_column
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    if list(frame.columns) != [id_column, "fold"]:
        raise EnsError(f"{csv_path}: columns must be {id_column}, fold; got {', '.join(frame.columns)}")
    fold_by_id = dict(zip(frame[id_column], frame["fold"]))
    if len(fold_by_id) != len(frame) or len(frame) != len(competition.train_ids):
        raise EnsError(f"{csv_path}: {len(frame)} rows do not match {competition.train_csv}'s ids")
    fold_of = np.empty(len(competition.train_ids), dtype=np.int64)
    k = int(meta.get("k", 0))
    for row, image_id in enumerate(competition.train_ids):
        fold = fold_by_id.get(image_id)
        if fold is None or not fold.isdigit() or int(fold) >= k:
            raise EnsError(f"{csv_path}: no valid fold for id {str(image_id)!r} of {competition.train_csv}")
        fold_of[row] = int(fold)
    return Folds(fold_of=fold_of, k=k, sha256=sha256)
