"""A submission CSV in the exact shape of the sample submission: same columns, same row order.

What goes in the non-id columns is a submission kind, read off the sample (or set with
`submission` in ens.toml):
- probabilities: one column per class, any order; each gets its class's probability;
- class_probability: one column named after a class; it gets that class's probability;
- positive_probability: one column, two classes, sample values that are probabilities
  written as fractions (0.5, 0.0) rather than labels: the probability of the positive class,
  which is `positive_class` from ens.toml, else the larger of two numeric labels (1 of 0/1);
  an integer 0 or 1 that is not a class (beside labels 1/2 or -1/1) could be either, and is
  refused until `submission` in ens.toml says which;
- labels: one column: the predicted label.
A multi-label competition's submission (task kinds: ensemble/tasks.py) is one of:
- probabilities: one column per tag, each tag's probability;
- tags: one column: the predicted tags joined by the label separator (metrics.tag_decisions:
  the tags above the threshold, or the likeliest one).
A regression's is values: one column, the predicted number.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ensemble.errors import EnsError
from ensemble.metrics import tag_decisions
from ensemble.registry import Registry


@dataclass(frozen=True)
class Shape:
    """What a sample submission asks for: its path, non-id columns, the classes, the positive class."""

    path: Path
    columns: list[str]
    classes: tuple[str, ...]
    positive_class: str
    label_column: str = ""  # the train CSV's label column: a sample column of that name is the one to fill
    task: str = "single_label"
    label_separator: str = " "
    at_least_one_tag: bool = True  # a multi-label image gets its likeliest tag when none passes (metrics.tag_decisions)

    def extra_columns(self, kind: str | None = None) -> list[str]:
        """Sample columns ens would not fill: not a class (for probabilities), not the label column."""
        if kind == "probabilities" or (kind is None and set(self.columns) & set(self.classes)):
            return [column for column in self.columns if column not in self.classes]
        return [column for column in self.columns if column != self.label_column] if self.label_column in self.columns else []


# fill(shape, probs: (n_rows, n_classes)) -> {column: values}
Fill = Callable[[Shape, np.ndarray], dict]
KINDS: Registry[Fill] = Registry("submission kind")


@KINDS.register("probabilities")
def fill_probabilities(shape: Shape, probs: np.ndarray) -> dict:
    return {column: probs[:, shape.classes.index(column)] for column in shape.columns}


@KINDS.register("class_probability")
def fill_class_probability(shape: Shape, probs: np.ndarray) -> dict:
    return {shape.columns[0]: probs[:, shape.classes.index(shape.columns[0])]}


@KINDS.register("positive_probability")
def fill_positive_probability(shape: Shape, probs: np.ndarray) -> dict:
    return {shape.columns[0]: probs[:, shape.classes.index(positive_class(shape))]}


@KINDS.register("labels")
def fill_labels(shape: Shape, probs: np.ndarray) -> dict:
    return {shape.columns[0]: np.asarray(shape.classes, dtype=object)[probs.argmax(axis=1)]}


@KINDS.register("tags")
def fill_tags(shape: Shape, probs: np.ndarray) -> dict:
    joiner = shape.label_separator
    return {shape.columns[0]: [joiner.join(shape.classes[tag] for tag in np.flatnonzero(row)) for row in tag_decisions(probs, shape.at_least_one_tag)]}


@KINDS.register("values")
def fill_values(shape: Shape, values: np.ndarray) -> dict:
    return {shape.columns[0]: np.asarray(values, dtype=np.float64).reshape(len(values), -1)[:, 0]}


# The kinds each task kind can write (ensemble/tasks.py).
KINDS_OF_TASK = {
    "single_label": ("probabilities", "class_probability", "positive_probability", "labels"),
    "multi_label": ("probabilities", "tags"),
    "regression": ("values",),
}


def positive_class(shape: Shape) -> str:
    if shape.positive_class:
        if shape.positive_class not in shape.classes:
            raise EnsError(f"positive_class {shape.positive_class!r} is not a class; classes: {list(shape.classes)}")
        return shape.positive_class
    try:
        return max(shape.classes, key=float)
    except ValueError:
        raise EnsError(
            f"{shape.path}: column {shape.columns[0]!r} holds probabilities of one of {list(shape.classes)}; "
            "say which with positive_class in ens.toml [competition] (or `ens init --positive-class CLASS`)"
        ) from None


def detect_kind(sample: pd.DataFrame, shape: Shape, asked: str = "auto") -> str:
    """The submission kind: `asked` when it is not 'auto', else read off the sample's columns."""
    columns, classes = shape.columns, shape.classes
    if asked != "auto":
        KINDS.get(asked)
        if asked not in KINDS_OF_TASK[shape.task]:
            raise EnsError(f"submission = {asked!r} does not apply to a {shape.task} competition; expected one of: {', '.join(KINDS_OF_TASK[shape.task])}")
        kind = asked
    elif shape.task != "single_label":
        kind = _detect_other_task(shape)
    elif len(columns) == len(classes) and set(columns) == set(classes):
        kind = "probabilities"
    elif len(columns) == 1 and columns[0] in classes:
        kind = "class_probability"
    elif len(columns) == 1 and len(classes) == 2 and _holds_probabilities(sample[columns[0]], classes):
        kind = "positive_probability"
    elif len(columns) == 1 and len(classes) == 2 and _holds_placeholder(sample[columns[0]], classes):
        placeholder = sorted(set(sample[columns[0]]) - set(classes))[0]
        raise EnsError(
            f"{shape.path}: column {columns[0]!r} holds {placeholder!r}, which is neither a class "
            f"{list(classes)} nor plainly a probability; say which with submission = \"labels\" "
            "or submission = \"positive_probability\" in ens.toml [competition]"
        )
    elif len(columns) == 1:
        kind = "labels"
    elif shape.extra_columns():
        raise extra_columns_error(shape, shape.extra_columns())
    else:
        raise EnsError(
            f"{shape.path}: columns {columns[:6]} are neither one label column "
            f"nor one column per class {list(classes)[:6]}"
        )
    _check_fits(kind, shape)
    return kind


def _detect_other_task(shape: Shape) -> str:
    """A multi-label sample: one column per tag, or one column of tags; a regression's: one column."""
    columns, classes = shape.columns, shape.classes
    if shape.task == "multi_label" and set(columns) & set(classes):
        return "probabilities"
    if len(columns) == 1:
        return "tags" if shape.task == "multi_label" else "values"
    if shape.extra_columns():
        raise extra_columns_error(shape, shape.extra_columns())
    wanted = f"one column of tags nor one column per tag {list(classes)[:6]}" if shape.task == "multi_label" else "one column for the predicted value"
    raise EnsError(f"{shape.path}: columns {columns[:6]} are neither {wanted}" if shape.task == "multi_label" else f"{shape.path}: columns {columns[:6]}: a regression's submission has {wanted}")


def _in_unit_interval(values: pd.Series, classes: tuple[str, ...]) -> bool:
    """Numbers from 0 to 1, not all of them class labels."""
    numbers = pd.to_numeric(values, errors="coerce")
    return bool(not values.isin(classes).all() and numbers.notna().all() and numbers.between(0, 1).all())


def _holds_probabilities(values: pd.Series, classes: tuple[str, ...]) -> bool:
    """Plainly probabilities: some value is written as a fraction (0.5, 0.0, 1e-3), not an integer."""
    return _in_unit_interval(values, classes) and not values.str.strip().str.fullmatch(r"[+-]?\d+").all()


def _holds_placeholder(values: pd.Series, classes: tuple[str, ...]) -> bool:
    """Integers 0 and 1, not all of them classes (0 beside labels 1/2 or -1/1): a placeholder
    label as much as a placeholder probability."""
    return _in_unit_interval(values, classes) and not _holds_probabilities(values, classes)


def extra_columns_error(shape: Shape, extra: list[str]) -> EnsError:
    """ens writes every column of the sample and fills them all, so a column it cannot fill is refused."""
    filled = [column for column in shape.columns if column not in extra]
    return EnsError(
        f"{shape.path}: extra column{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra[:6]))} beside {filled[:6]}, "
        "and ens fills every column of the sample; save a copy of the sample without "
        f"{'them' if len(extra) > 1 else 'it'} and name it with sample_submission in ens.toml (ens init --sample-submission)"
    )


def _check_fits(kind: str, shape: Shape) -> None:
    """Refuse a kind the sample's columns cannot hold, before any training."""
    if kind == "probabilities":
        missing = sorted(set(shape.classes) - set(shape.columns))
        if missing:
            raise EnsError(f"{shape.path}: submission = 'probabilities' needs one column per class; missing {missing[:6]}")
        if shape.extra_columns(kind):
            raise extra_columns_error(shape, shape.extra_columns(kind))
    elif len(shape.columns) != 1:
        extra = shape.extra_columns(kind)
        if extra and len(extra) == len(shape.columns) - 1:
            raise extra_columns_error(shape, extra)
        raise EnsError(f"{shape.path}: submission = {kind!r} needs one column beside the id, got {shape.columns[:6]}")
    elif kind == "class_probability" and shape.columns[0] not in shape.classes:
        raise EnsError(f"{shape.path}: column {shape.columns[0]!r} is not a class name")
    elif kind == "positive_probability":
        positive_class(shape)


def submission_frame(sample: pd.DataFrame, id_column: str, shape: Shape, kind: str, probs: np.ndarray) -> pd.DataFrame:
    """The submission: sample's ids and column order. probs: float (n_rows, n_classes) in sample row order."""
    frame = pd.DataFrame({id_column: sample[id_column].to_numpy()})
    for column, values in KINDS.get(kind)(shape, probs).items():
        frame[column] = values
    return frame[list(sample.columns)]


def to_csv_text(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.7g")
    return buffer.getvalue()
