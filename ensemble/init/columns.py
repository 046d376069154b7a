"""Which CSV plays which role, and which of its columns are the id and the label.

Each function returns a Choice: what it chose, whether the files left no doubt, and
the reason in words. Where it cannot decide it raises an error listing the candidates and the
flag that settles it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from ensemble.errors import EnsError


class Choice(NamedTuple):
    """What was chosen, whether the files left no doubt, and why, in words."""

    value: Any
    sure: bool
    why: str


def names(paths: list[Path], source: Path) -> str:
    return ", ".join(str(path.relative_to(source)) if path.is_relative_to(source) else str(path) for path in paths)


def pick_csv(candidates: list[Path], source: Path, role: str, flag: str) -> Choice:
    """The one candidate CSV for `role`; none is (None, ...); several are refused."""
    if len(candidates) == 1:
        return Choice(candidates[0], True, f"the only CSV named like a {role}")
    if not candidates:
        return Choice(None, True, f"no CSV named like a {role}")
    raise EnsError(f"{source}: several CSVs could be the {role}: {names(candidates, source)}; choose with {flag}")


def pick_train_csv(candidates: list[Path], frames: dict[Path, pd.DataFrame], sample: pd.DataFrame, source: Path) -> Choice:
    """Among several train CSVs (train.csv beside train_labels.csv), the one with the sample's columns."""
    if len(candidates) <= 1:
        return pick_csv(candidates, source, "train CSV", "--train-csv")
    wanted = [column for column in sample.columns if column in set().union(*(frames[path].columns for path in candidates))]
    fitting = [path for path in candidates if all(column in frames[path].columns for column in wanted)]
    if len(fitting) == 1:
        return Choice(fitting[0], False, f"of {names(candidates, source)}, the one with the sample's columns {wanted}")
    raise EnsError(f"{source}: several CSVs could be the train CSV: {names(fitting or candidates, source)}; choose with --train-csv")


def pick_id_column(train: pd.DataFrame, test: pd.DataFrame | None, sample: pd.DataFrame, train_path: Path) -> Choice:
    """The column in the sample, train and test CSVs alike; the sample's first column when several are."""
    common = [column for column in sample.columns if column in train.columns and (test is None or column in test.columns)]
    where = "the sample, train and test CSVs" if test is not None else "the sample and train CSVs"
    if sample.columns[0] in common:
        unique = not train[sample.columns[0]].duplicated().any()
        return Choice(sample.columns[0], unique, f"the sample's first column, in {where}" + ("" if unique else "; not unique in train"))
    if len(common) == 1:
        return Choice(common[0], False, f"the only column in {where}")
    if not common:
        raise EnsError(
            f"{train_path}: no column is in {where} alike (sample: {list(sample.columns)[:6]}, "
            f"train: {list(train.columns)[:6]}); choose with --id-column"
        )
    raise EnsError(f"{train_path}: several columns could be the id: {common}; choose with --id-column")


def pick_label_column(train: pd.DataFrame, sample: pd.DataFrame, id_column: str, train_path: Path) -> Choice:
    """train.csv's other column; else the sample's other column; else the column whose values are the sample's columns."""
    others = [column for column in train.columns if column != id_column]
    sample_others = [column for column in sample.columns if column != id_column]
    if len(others) == 1:
        return Choice(others[0], True, "train CSV's only column beside the id")
    if not others:
        raise EnsError(f"{train_path}: no column beside the id {id_column!r}; name the CSV with labels with --train-csv")
    if len(sample_others) == 1 and sample_others[0] in others:
        return Choice(sample_others[0], True, "the sample's column beside the id, also in the train CSV")
    naming = [column for column in others if set(train[column]) == set(sample_others)]
    if len(naming) == 1:
        return Choice(naming[0], True, "its values are the sample's class columns")
    one_hot = set(sample_others) <= set(others) and len(sample_others) > 1
    hint = " (one column per class in train: ens needs one label column)" if one_hot else ""
    raise EnsError(f"{train_path}: several columns could be the label: {(naming or others)[:8]}{hint}; choose with --label-column")


def check_column(column: str, frames: dict[str, pd.DataFrame], flag: str) -> Choice:
    for path, frame in frames.items():
        if frame is not None and column not in frame.columns:
            raise EnsError(f"{path}: {flag} {column!r}: no such column; columns are: {list(frame.columns)[:8]}")
    return Choice(column, True, f"given with {flag}")
