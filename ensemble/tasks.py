"""Task kinds: one label per image, several tags per image, or a number per image.

A task kind decides what train.csv's label column means and what every cached logits array
holds; the arrays keep one format (ids, classes, logits float (n, n_columns)) for every kind:
- single_label: classes are the sorted labels; logits are the network's, softmax gives
  probabilities; targets are class indices int64 (n,);
- multi_label: classes are the sorted tags (each label cell is a list of tags split on
  `label_separator`); logits are one per tag, a sigmoid gives each tag's probability;
  targets are 0/1 float32 (n, n_tags);
- regression: classes is the label column's name; the "logits" are predicted values in the
  target's own units (one column); targets are float64 (n,).
`outputs` turns logits into what metrics, blends and submissions read: probabilities, or
values. TTA views merge in that space (`merge_views`).

`infer` reads the kind off train.csv when ens.toml says task = "auto"; where the labels could
be either classes or numbers it refuses in one line naming `task`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ensemble import metrics
from ensemble.errors import EnsError
from ensemble.metrics import log_softmax, softmax
from ensemble.registry import Registry

# --- merging TTA views -------------------------------------------------------------------------
# Probabilities merge on log-probabilities over a last axis of outcomes (classes; or a tag's
# yes and no), so no merge takes the log of a negative logit (the NaN of ttach's gmean,
# qubvel/ttach#4). Values (regression) merge as numbers.

Merge = Callable[[np.ndarray], np.ndarray]
MERGES: Registry[Merge] = Registry("TTA merge")


@MERGES.register("mean")
def merge_mean(log_probs: np.ndarray) -> np.ndarray:
    """Log of the mean probability (a log-sum-exp over views, so tiny probabilities keep their digits)."""
    top = log_probs.max(axis=0)
    return top + np.log(np.exp(log_probs - top).mean(axis=0))


@MERGES.register("gmean")
def merge_gmean(log_probs: np.ndarray) -> np.ndarray:
    """Log of the geometric mean of probabilities; equal to the mean of logits up to a constant per row."""
    return log_probs.mean(axis=0)


@MERGES.register("max")
def merge_max(log_probs: np.ndarray) -> np.ndarray:
    return log_probs.max(axis=0)


VALUE_MERGES: Registry[Merge] = Registry("TTA merge of a regression")
VALUE_MERGES.register("mean")(lambda values: values.mean(axis=0))
VALUE_MERGES.register("median")(lambda values: np.median(values, axis=0))


def log_sigmoid(logits: np.ndarray) -> np.ndarray:
    """log(sigmoid(x)), float64, stable for any finite x."""
    logits = np.asarray(logits, dtype=np.float64)
    return -np.logaddexp(0.0, -logits)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return np.exp(log_sigmoid(logits))


# --- the kinds ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Task:
    """name: the kind; default_metric: what `metric = "auto"` means; merges: its TTA merges."""

    name: str
    default_metric: str
    merges: Registry

    def parse(self, labels: np.ndarray, separator: str, column: str, where: Callable[[int], str]) -> tuple[tuple[str, ...], np.ndarray]:
        """(classes, targets) from train.csv's label cells (text). where(row) -> 'FILE: line N'."""
        raise NotImplementedError

    def outputs(self, logits: np.ndarray) -> np.ndarray:
        """What metrics, blends and submissions read, float64 (n, n_columns)."""
        raise NotImplementedError

    def merge_views(self, view_logits: np.ndarray, merge: str) -> np.ndarray:
        """float32 (n_views, n, n_columns) -> float32 (n, n_columns), merged with `merge`."""
        raise NotImplementedError

    def as_outputs(self, targets: np.ndarray, n_columns: int) -> np.ndarray:
        """Targets in the space of outputs(), float64 (n, n_columns): one-hot classes, 0/1 tags,
        a column of values; what a teacher's outputs are mixed with (blend/teacher.py)."""
        return np.asarray(targets, dtype=np.float64).reshape(len(targets), n_columns)

    def from_outputs(self, outputs: np.ndarray) -> np.ndarray:
        """Soft targets from outputs-space rows, as the kind's loss takes them before its scaling:
        float32 (n, n_columns) probabilities, or a regression's float64 (n,) values."""
        return np.asarray(outputs, dtype=np.float32)

    def confident(self, outputs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """(kept, hard outputs): bool (n,), True for the rows whose every decision is at least
        `threshold` sure, and float64 (n, n_columns), each row's decisions as hard targets."""
        raise EnsError(f"hard pseudo-labels mean nothing for a {self.name} competition: its outputs are kept soft; leave --pseudo-threshold at 0")

    def check_metric(self, name: str, where: str) -> metrics.Metric:
        metric = metrics.get(name)
        if self.name not in metric.tasks:
            raise EnsError(f"{where}: metric {name!r} does not apply to a {self.name} competition; expected one of: {', '.join(metrics.for_task(self.name))}")
        return metric

    def check_merge(self, merge: str) -> None:
        if merge not in self.merges:
            raise EnsError(f"tta_merge {merge!r} does not apply to a {self.name} competition; expected one of: {', '.join(self.merges.names())}")


TASKS: Registry[Task] = Registry("task")


class SingleLabel(Task):
    def parse(self, labels, separator, column, where):
        classes = sort_classes(labels)
        index = {label: position for position, label in enumerate(classes)}
        return classes, np.array([index[label] for label in labels], dtype=np.int64)

    def outputs(self, logits):
        return softmax(logits)

    def merge_views(self, view_logits, merge):
        return log_softmax(self.merges.get(merge)(log_softmax(view_logits))).astype(np.float32)

    def as_outputs(self, targets, n_columns):
        return np.eye(n_columns, dtype=np.float64)[np.asarray(targets)]

    def confident(self, outputs, threshold):
        """A row is kept when its most likely class has at least `threshold`."""
        outputs = np.asarray(outputs, dtype=np.float64)
        return outputs.max(axis=1) >= threshold, np.eye(outputs.shape[1])[outputs.argmax(axis=1)]


class MultiLabel(Task):
    def parse(self, labels, separator, column, where):
        tag_lists = [split_tags(label, separator) for label in labels]
        for row, tags in enumerate(tag_lists):
            if len(set(tags)) != len(tags):
                repeated = next(tag for tag in tags if tags.count(tag) > 1)
                raise EnsError(f"{where(row)}: tag {repeated!r} appears twice in {column!r}")
        classes = sort_classes({tag for tags in tag_lists for tag in tags})
        index = {tag: position for position, tag in enumerate(classes)}
        targets = np.zeros((len(labels), len(classes)), dtype=np.float32)
        for row, tags in enumerate(tag_lists):
            targets[row, [index[tag] for tag in tags]] = 1.0
        return classes, targets

    def outputs(self, logits):
        return sigmoid(logits)

    def merge_views(self, view_logits, merge):
        """Each tag's yes and no merged as a two-outcome distribution; the logit of the result."""
        merged = self.merges.get(merge)(np.stack([log_sigmoid(view_logits), log_sigmoid(-np.asarray(view_logits))], axis=-1))
        return (merged[..., 0] - merged[..., 1]).astype(np.float32)

    def confident(self, outputs, threshold):
        """A row is kept when every tag is at least `threshold` sure, yes or no; tags decided at 0.5,
        never at a blend's tuned thresholds, which were tuned on every OOF row (the leak again)."""
        outputs = np.asarray(outputs, dtype=np.float64)
        return np.maximum(outputs, 1 - outputs).min(axis=1) >= threshold, (outputs >= 0.5).astype(np.float64)


class Regression(Task):
    def parse(self, labels, separator, column, where):
        values = np.array([as_number(label) for label in labels], dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise EnsError(f"{where(bad[0])}: {column!r} is {labels[bad[0]]!r}, not a finite number; a regression needs one in every row")
        if np.ptp(values) == 0:
            raise EnsError(f"{where(0)}: {column!r} is {values[0]:g} in every row; nothing to learn")
        return (column,), values

    def outputs(self, logits):
        return np.asarray(logits, dtype=np.float64)

    def merge_views(self, view_logits, merge):
        return self.merges.get(merge)(np.asarray(view_logits, dtype=np.float64)).astype(np.float32)

    def from_outputs(self, outputs):
        return np.asarray(outputs, dtype=np.float64)[:, 0]


TASKS.register("single_label")(SingleLabel("single_label", "accuracy", MERGES))
TASKS.register("multi_label")(MultiLabel("multi_label", "f1_samples", MERGES))
TASKS.register("regression")(Regression("regression", "rmse", VALUE_MERGES))

SINGLE_LABEL = TASKS.get("single_label")


def get(name: str) -> Task:
    return TASKS.get(name)


def split_tags(label: str, separator: str) -> list[str]:
    """A cell's tags: split on the separator (any run of whitespace when it is " "), empty parts dropped."""
    parts = label.split() if separator == " " else label.split(separator)
    return [part.strip() for part in parts if part.strip()]


def sort_classes(labels) -> tuple[str, ...]:
    """Sorted unique labels: numerically when every label is a finite number, else as text.

    Ties in value ("1", "01") are broken by the text, so the order never depends on set order.
    """
    unique = sorted(set(labels))
    values = [as_number(label) for label in unique]
    if not np.isfinite(values).all():
        return tuple(unique)
    return tuple(label for _, label in sorted(zip(values, unique)))


def as_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


# --- task = "auto" -------------------------------------------------------------------------------

# How the ambiguous case is settled, in the words of where it is settled.
SETTLE_IN_TOML = 'say which with task = "single_label" or task = "regression" in ens.toml [competition] (ens init --task)'


@dataclass(frozen=True)
class Inferred:
    """The kind train.csv's labels say, why in words, and whether the labels leave no doubt."""

    kind: str
    why: str
    sure: bool


def infer(labels: np.ndarray, metric: str, separator: str, column: str, path: Path, settle: str = SETTLE_IN_TOML) -> str:
    """The task kind train.csv's labels and the metric say, or one error naming `task` (see infer_why)."""
    return infer_why(labels, metric, separator, column, path, settle).kind


def infer_why(labels: np.ndarray, metric: str, separator: str, column: str, path: Path, settle: str = SETTLE_IN_TOML) -> Inferred:
    """The task kind train.csv's labels and the metric say, with the reason; or one error
    ending in `settle`, the words that tell how to choose.

    - a regression metric (rmse, mae, r2), or numbers that are not all integers: regression;
    - cells that are lists whose tags recombine (some tag is a whole cell on its own and also
      appears inside other cells): multi_label; class names with spaces ("Common Chickweed")
      stay single-label;
    - integers in an unbroken run of three or more values (0-9) are classes or counts: a
      classification metric says classes, an unset one is refused;
    - anything else: single_label.
    """
    if metric != "auto":
        kinds = metrics.get(metric).tasks
        if len(kinds) == 1 and kinds[0] != "single_label":
            return Inferred(kinds[0], f"the metric {metric!r} scores {kinds[0]} competitions only", True)
    unique = sorted({str(label) for label in labels})
    numbers = np.array([as_number(label) for label in unique])
    if np.isfinite(numbers).all():
        return infer_numbers(unique, numbers, metric, column, path, settle)
    tags_of = {label: split_tags(label, separator) for label in unique}
    whole = {label for label, tags in tags_of.items() if len(tags) == 1}
    inside = {tag for tags in tags_of.values() if len(tags) > 1 for tag in tags}
    recombined = sorted(whole & inside)
    if recombined:
        tag = recombined[0]
        example = next(label for label, tags in tags_of.items() if len(tags) > 1 and tag in tags)
        return Inferred("multi_label", f"tags recombine: {tag!r} is a label and inside {example!r}", True)
    listed = [label for label, tags in tags_of.items() if len(tags) > 1]
    if listed:
        return Inferred("single_label", f"labels such as {listed[0]!r} hold {separator!r}, but none of their parts is a label alone: class names", False)
    return Inferred("single_label", f"{len(unique)} labels, one per row", True)


def infer_numbers(unique: list[str], numbers: np.ndarray, metric: str, column: str, path: Path, settle: str) -> Inferred:
    """infer_why for a label column of numbers only."""
    if not np.all(numbers == np.round(numbers)):
        example = unique[int(np.flatnonzero(numbers != np.round(numbers))[0])]
        if metric != "auto":
            raise EnsError(
                f"{path}: {column!r} holds numbers such as {example!r}, not whole ones, and the metric {metric!r} "
                'is for classes; set task = "regression" and a regression metric (rmse, mae, r2) in ens.toml [competition], '
                'or task = "single_label" to treat each number as a class'
            )
        return Inferred("regression", f"{column!r} holds numbers that are not whole, such as {example!r}", True)
    distinct = np.unique(numbers)
    if len(distinct) >= 3 and np.all(np.diff(distinct) == 1):
        if metric == "auto":
            raise EnsError(f"{path}: {column!r} holds the whole numbers {distinct[0]:g} to {distinct[-1]:g}, classes or counts alike; {settle}")
        return Inferred("single_label", f"the whole numbers {distinct[0]:g} to {distinct[-1]:g}, and the metric {metric!r} scores classes", True)
    if len(distinct) == 2:
        return Inferred("single_label", f"two values, {unique[0]!r} and {unique[1]!r}: two classes", True)
    return Inferred("single_label", f"{len(distinct)} whole numbers with gaps between them ({distinct[0]:g} to {distinct[-1]:g}): class codes", False)
