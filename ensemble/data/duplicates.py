"""Near-duplicate groups found by `ens audit`: audit/duplicates.csv (id, group, distance).

Folds read them to keep each group in one fold (`ens folds --dedupe`); the leaderboard reads
them to say when the current folds split some (an audit run after the folds never invalidates
folds or experiments: it only adds that note). numpy and pandas only: the leaderboard imports
this without scikit-learn or scipy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.config import Workspace
from ensemble.data.competition import Competition
from ensemble.errors import EnsError
from ensemble.io import sha256_bytes

COLUMNS = ("id", "group")  # `distance` is the audit's business: folds do not need it


def duplicates_path(workspace: Workspace) -> Path:
    return workspace.root / "audit" / "duplicates.csv"


@dataclass(frozen=True)
class DuplicateGroups:
    """One (row, group) pair per line of duplicates.csv: rows, groups: int (n_pairs,), rows
    indexing competition.train_ids. A row may sit in two groups (the two are then linked).
    sha256: of the sorted `id,group` lines, the groups as folds use them."""

    path: Path
    rows: np.ndarray
    groups: np.ndarray
    sha256: str

    @property
    def n_groups(self) -> int:
        return len(np.unique(self.groups))

    def split_by(self, fold_of: np.ndarray) -> int:
        """How many groups have members in two folds or more; fold_of: int (n_train,)."""
        pairs = np.unique(np.stack([self.groups, fold_of[self.rows]], axis=1), axis=0)
        _, folds_per_group = np.unique(pairs[:, 0], return_counts=True)
        return int((folds_per_group > 1).sum())


def read_duplicates(workspace: Workspace, competition: Competition) -> DuplicateGroups:
    """audit/duplicates.csv, checked against the competition's training ids."""
    path = duplicates_path(workspace)
    if not path.is_file():
        raise EnsError(f"{path}: not found; run `ens audit` first")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise EnsError(f"{path}: not a CSV ({type(error).__name__}: {str(error).strip()})") from None
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise EnsError(f"{path}: columns must include id, group; got {', '.join(frame.columns) or 'none'}")
    row_of = {image_id: row for row, image_id in enumerate(competition.train_ids)}
    rows = np.empty(len(frame), dtype=np.int64)
    groups = np.empty(len(frame), dtype=np.int64)
    for line, (image_id, group) in enumerate(zip(frame["id"], frame["group"]), start=2):
        if image_id not in row_of:
            raise EnsError(f"{path}: id {image_id!r} (line {line}) is not in {competition.train_csv}")
        try:
            groups[line - 2] = int(group)
        except ValueError:
            raise EnsError(f"{path}: group {group!r} of id {image_id!r} (line {line}) is not an integer") from None
        rows[line - 2] = row_of[image_id]
    lines = sorted({f"{image_id},{group}" for image_id, group in zip(frame["id"], groups.tolist())})
    return DuplicateGroups(path=path, rows=rows, groups=groups, sha256=sha256_bytes("\n".join(lines).encode()))
