"""Fold assignment and the folds file, folds/folds.csv (id, fold) with folds/folds.json.

folds.json records the settings and the hash of the train.csv the folds were made for, so a
folds file left over from other data is refused instead of silently misaligning OOF logits.
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
from ensemble.errors import EnsError
from ensemble.io import read_json, sha256_bytes, sha256_file, write_json, write_text
from ensemble.registry import Registry

# split(competition, k, seed) -> fold index of each training row, int (n_train,)
Splitter = Callable[[Competition, int, int], np.ndarray]
STRATEGIES: Registry[Splitter] = Registry("fold strategy")


def _fold_of(splits, n_rows: int) -> np.ndarray:
    fold_of = np.full(n_rows, -1, dtype=np.int64)
    for fold, (_, valid_rows) in enumerate(splits):
        fold_of[valid_rows] = fold
    return fold_of


@STRATEGIES.register("stratified")
def stratified(competition: Competition, k: int, seed: int) -> np.ndarray:
    """Each fold keeps the class proportions of the whole train set."""
    from sklearn.model_selection import StratifiedKFold

    largest = int(np.bincount(competition.targets).max())
    if largest < k:
        raise EnsError(f"{competition.train_csv}: no class has {k} rows, so {k} stratified folds cannot be made; use a smaller --k")
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return _fold_of(splitter.split(competition.train_ids, competition.targets), len(competition.train_ids))


@STRATEGIES.register("group")
def group(competition: Competition, k: int, seed: int) -> np.ndarray:
    """No group spans two folds (a patient, a scene); class proportions kept as far as groups allow."""
    from sklearn.model_selection import StratifiedGroupKFold

    if competition.groups is None:
        raise EnsError(
            f"{competition.train_csv}: strategy 'group' needs group_column set in ens.toml [competition]"
        )
    n_groups = len(set(competition.groups))
    if n_groups < k:
        raise EnsError(f"{competition.train_csv}: {n_groups} groups cannot fill {k} folds")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    splits = splitter.split(competition.train_ids, competition.targets, competition.groups)
    return _fold_of(splits, len(competition.train_ids))


def groups_hash(competition: Competition) -> str | None:
    if competition.groups is None:
        return None
    return sha256_bytes("\n".join(competition.groups).encode())


@dataclass(frozen=True)
class FoldsResult:
    path: Path
    fold_sizes: list[int]
    smallest_class: tuple[str, int]  # (label, count): below k, some folds lack that class


def assign_folds(competition: Competition, settings: FoldSettings) -> np.ndarray:
    """fold_of: int (n_train,), the fold whose model does not see each training row."""
    split = STRATEGIES.get(settings.strategy)
    if settings.k > len(competition.train_ids):
        raise EnsError(
            f"{competition.train_csv}: {len(competition.train_ids)} rows cannot fill {settings.k} folds"
        )
    with warnings.catch_warnings():
        # scikit-learn warns when a class has fewer members than folds; FoldsResult reports it.
        warnings.simplefilter("ignore", UserWarning)
        return split(competition, settings.k, settings.seed)


def write_folds(workspace: Workspace, competition: Competition, settings: FoldSettings, force: bool) -> FoldsResult:
    csv_path, meta_path = folds_paths(workspace)
    if csv_path.exists() and not force:
        raise EnsError(f"{csv_path}: already exists; use --force to replace it")
    fold_of = assign_folds(competition, settings)
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
    # The CSV goes last: an existing folds.json without its CSV is never read alone.
    write_json(meta_path, meta)
    write_text(csv_path, text)
    labels, counts = np.unique(competition.labels, return_counts=True)
    return FoldsResult(
        path=csv_path,
        fold_sizes=np.bincount(fold_of, minlength=settings.k).tolist(),
        smallest_class=(str(labels[counts.argmin()]), int(counts.min())),
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
