"""Reading and checking a competition's files: train.csv, test.csv, the sample submission, images.

Everything is read as text, so ids keep their exact spelling ("007" stays "007") and labels
may be strings or integers. Errors name the file and the line (the header is line 1).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ensemble import metrics, tasks
from ensemble.config import CONFIG_FILE, CompetitionSettings, Workspace
from ensemble.data.submission import Shape, detect_kind
from ensemble.errors import EnsError
from ensemble.io import sha256_bytes
from ensemble.metrics import every_image_tagged
from ensemble.tasks import Task


@dataclass(frozen=True)
class Competition:
    """A checked competition.

    train_ids, labels: str (n_train,) in train.csv order; groups: str (n_train,) or None;
    task: the task kind (ensemble/tasks.py); metric: the metric's name, "auto" settled;
    classes: the column order of every logits array: the sorted labels, the sorted tags, or
    the label column's name (regression); targets: int (n_train,) class indices, 0/1 float
    (n_train, n_tags), or float (n_train,) values, as the task says; test_ids: str (n_test,).
    test_ids and the sample's fields are None when it was loaded without them (with_test=False).
    """

    settings: CompetitionSettings
    task: Task
    metric: str
    train_csv: Path
    train_hash: str
    train_ids: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None
    classes: tuple[str, ...]
    targets: np.ndarray
    test_ids: np.ndarray | None
    sample_path: Path | None
    sample: pd.DataFrame | None
    submission_shape: Shape | None
    submission_kind: str | None
    train_images: Path
    test_images: Path

    @property
    def test_ids_hash(self) -> str:
        """sha256 of the test ids in order: an experiment records it, and its test logits are
        only used while test.csv holds the same ids."""
        return sha256_bytes("\n".join(self.test_ids).encode())

    def train_image_paths(self) -> list[Path]:
        return [image_file(self.train_images, i, self.settings.image_suffix) for i in self.train_ids]

    def test_image_paths(self) -> list[Path]:
        return [image_file(self.test_images, i, self.settings.image_suffix) for i in self.test_ids]


def image_file(folder: Path, image_id: str, suffix: str) -> Path:
    return folder / f"{image_id}{suffix}"


def read_rows(path: Path) -> pd.DataFrame:
    """A CSV as text cells, indexed by the line of the file each row starts on (header: line 1).

    Line numbers are the file's own: blank lines are skipped but counted, and a quoted cell
    may span lines. A row wider than the header is refused (pandas would quietly turn the
    first column into the index); a shorter row gets empty cells, as pandas gives it.
    """
    header, rows, lines, line = None, [], [], 1
    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            reader = csv.reader(stream, strict=True)
            for record in reader:
                if not record:
                    pass  # a blank line
                elif header is None:
                    header = record
                    duplicated = [name for name in header if header.count(name) > 1]
                    if duplicated:
                        raise EnsError(f"{path}: line {line}: column {duplicated[0]!r} appears twice in the header")
                elif len(record) > len(header):
                    raise EnsError(f"{path}: line {line} has {len(record)} fields, the header has {len(header)}")
                else:
                    rows.append(record + [""] * (len(header) - len(record)))
                    lines.append(line)
                line = reader.line_num + 1
    except csv.Error as error:
        raise EnsError(f"{path}: line {line}: not a readable CSV: {error}") from None
    except UnicodeDecodeError as error:
        raise EnsError(f"{path}: not a readable CSV: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if header is None:
        raise EnsError(f"{path}: empty; expected a header line")
    return pd.DataFrame(rows, columns=header, index=pd.Index(lines, name="line"), dtype=str)


def read_table(path: Path, required: list[str], may_be_empty: str = "") -> pd.DataFrame:
    """A CSV read as text (see read_rows: the index holds line numbers), with its required
    columns present and no empty cells in them (but in `may_be_empty`)."""
    if not path.is_file():
        raise EnsError(f"{path}: file not found")
    frame = read_rows(path)
    for column in required:
        if column not in frame.columns:
            raise EnsError(
                f"{path}: no column {column!r}; columns are: {', '.join(repr(str(name)) for name in frame.columns)}"
            )
        empty = np.flatnonzero(frame[column].str.strip() == "")
        if len(empty) and column != may_be_empty:
            raise EnsError(f"{path}: line {frame.index[empty[0]]}: empty {column!r}")
    if frame.empty:
        raise EnsError(f"{path}: no rows")
    return frame


def check_unique(path: Path, ids: pd.Series) -> None:
    """ids: indexed by line number, as read_table gives them."""
    duplicated = np.flatnonzero(ids.duplicated().to_numpy())
    if len(duplicated):
        row = duplicated[0]
        first = np.flatnonzero((ids == ids.iloc[row]).to_numpy())[0]
        raise EnsError(
            f"{path}: line {ids.index[row]}: duplicate id {str(ids.iloc[row])!r} (first at line {ids.index[first]})"
        )


def load_competition(workspace: Workspace, check_images: bool = True, with_test: bool = True) -> Competition:
    """Read and check the competition files named in ens.toml.

    check_images: also check that every image file exists (decoding comes later, in images.py).
    with_test: also read test.csv and the sample submission; without them (scoring OOF logits
    needs neither) test_ids, sample_path, sample, submission_shape and submission_kind are None.
    """
    settings = workspace.competition
    id_column, label_column = settings.id_column, settings.label_column

    train_csv = workspace.path(settings.train_csv)
    required = [id_column, label_column] + ([settings.group_column] if settings.group_column else [])
    # A multi-label image may have no tag: its cell is checked once the task kind is known.
    train = read_table(train_csv, required, may_be_empty=label_column)
    check_unique(train_csv, train[id_column])
    labels = [str(label) for label in train[label_column]]
    task, metric = task_and_metric(workspace, [label for label in labels if label.strip()], train_csv)
    empty = np.flatnonzero([not label.strip() for label in labels])
    if len(empty) and task.name != "multi_label":
        raise EnsError(f"{train_csv}: line {train.index[empty[0]]}: empty {label_column!r}")
    classes, targets = task.parse(
        labels, settings.label_separator, label_column, lambda row: f"{train_csv}: line {train.index[row]}"
    )
    if task.name == "multi_label" and not classes:
        raise EnsError(f"{train_csv}: {label_column!r} is empty in every row: no tags to learn")
    if task.name == "multi_label" and len(classes) == 1 and every_image_tagged(targets):
        raise EnsError(f"{train_csv}: {label_column!r} has the single tag {classes[0]!r} in every row: nothing to learn")
    if task.name == "single_label" and len(classes) < 2:
        raise EnsError(f"{train_csv}: {label_column!r} has a single class {classes[0]!r}")

    test_csv = workspace.path(settings.test_csv)
    test = sample_path = sample = shape = kind = None
    if with_test:
        test = read_table(test_csv, [id_column])
        check_unique(test_csv, test[id_column])

        sample_path = workspace.path(settings.sample_submission)
        sample = read_table(sample_path, [id_column])
        check_unique(sample_path, sample[id_column])
        check_same_ids(test_csv, test[id_column], sample_path, sample[id_column])
        # The submission's shape is settled now, so a sample that cannot be filled stops the
        # run before training rather than after it.
        shape = Shape(
            path=sample_path,
            columns=[column for column in sample.columns if column != id_column],
            classes=classes,
            positive_class=settings.positive_class,
            label_column=label_column,
            task=task.name,
            label_separator=settings.label_separator,
            at_least_one_tag=task.name != "multi_label" or every_image_tagged(targets),
        )
        kind = detect_kind(sample, shape, settings.submission)

    competition = Competition(
        settings=settings,
        task=task,
        metric=metric,
        train_csv=train_csv,
        train_hash=content_hash(train, [id_column, label_column]),
        train_ids=train[id_column].to_numpy(dtype=str),
        labels=train[label_column].to_numpy(dtype=str),
        groups=train[settings.group_column].to_numpy(dtype=str) if settings.group_column else None,
        classes=classes,
        targets=targets,
        test_ids=None if test is None else test[id_column].to_numpy(dtype=str),
        sample_path=sample_path,
        sample=None if sample is None else sample.reset_index(drop=True),
        submission_shape=shape,
        submission_kind=kind,
        train_images=workspace.path(settings.train_images),
        test_images=workspace.path(settings.test_images),
    )
    if check_images:
        check_image_files(train_csv, competition.train_ids, competition.train_image_paths(), train.index)
        if with_test:
            check_image_files(test_csv, competition.test_ids, competition.test_image_paths(), test.index)
    return competition


def task_and_metric(workspace: Workspace, labels: list[str], train_csv: Path) -> tuple[Task, str]:
    """The task kind (task = "auto" read off the labels) and the metric ("auto": the task's own), checked against each other."""
    settings = workspace.competition
    where = f"{workspace.root / CONFIG_FILE} [competition]"
    if settings.metric != "auto":
        metrics.get(settings.metric)
    name = settings.task if settings.task != "auto" else tasks.infer(labels, settings.metric, settings.label_separator, settings.label_column, train_csv)
    task = tasks.get(name)
    metric = settings.metric if settings.metric != "auto" else task.default_metric
    task.check_metric(metric, where)
    return task, metric


def content_hash(frame: pd.DataFrame, columns: list[str]) -> str:
    """sha256 of the given columns' values, in order: what folds and models depend on.

    Other columns, quoting and line endings may change without invalidating folds and experiments.
    """
    text = "\n".join("\t".join(row) for row in frame[columns].itertuples(index=False, name=None))
    return sha256_bytes(text.encode())


def check_same_ids(test_csv: Path, test_ids: pd.Series, sample_path: Path, sample_ids: pd.Series):
    """Every test id needs a row in the sample submission, and every sample row a test id."""
    in_sample = test_ids.isin(set(sample_ids)).to_numpy()
    if not in_sample.all():
        row = np.flatnonzero(~in_sample)[0]
        raise EnsError(
            f"{test_csv}: line {test_ids.index[row]}: test id {str(test_ids.iloc[row])!r} is not in {sample_path}"
        )
    in_test = sample_ids.isin(set(test_ids)).to_numpy()
    if not in_test.all():
        row = np.flatnonzero(~in_test)[0]
        raise EnsError(
            f"{sample_path}: line {sample_ids.index[row]}: id {str(sample_ids.iloc[row])!r} is not in {test_csv}"
        )


def check_image_files(csv_path: Path, ids: np.ndarray, paths: list[Path], lines: Sequence[int] | None = None) -> None:
    """lines: the line of csv_path each id is on (read_table's index); default: one row a line."""
    lines = range(2, len(ids) + 2) if lines is None else lines
    for line, image_id, path in zip(lines, ids, paths):
        if not path.is_file():
            raise EnsError(f"{path}: image not found for id {str(image_id)!r} ({csv_path}, line {line})")
