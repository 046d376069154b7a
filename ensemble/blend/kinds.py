"""Task kinds as blends see them (ensemble/tasks.py): what a member's logits become, how a
weighted mean of them is taken, and what a log-loss fit reads.

- single_label: class probabilities (softmax); a mean of transformed probabilities (rank,
  power) is renormalised over each row's classes;
- multi_label: tag probabilities (sigmoid); each tag is a distribution over two outcomes, yes
  and no, transformed and renormalised on its own, as TTA merges it (tasks.MultiLabel);
- regression: values in the target's units, blended by weighted means alone.

Which methods refuse a kind is said by the method (Blender.refused); how decisions move (biases,
thresholds) by thresholds.py.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ensemble import tasks
from ensemble.metrics import softmax
from ensemble.registry import Registry
from ensemble.tasks import Task, sigmoid

# transform(columns: float64 (n_samples, n_columns)) -> the same shape (rank, power).
Transform = Callable[[np.ndarray], np.ndarray]


class BlendKind:
    """name: the task kind; noun: how messages name a competition of the kind.

    class_indices: targets are class indices, which hill's shortcuts read (metrics.Metric.of_labels
    and the true class's log loss); values: the outputs are numbers in the target's units, not
    probabilities (weighted fits least squares, stack a regressor)."""

    class_indices = False
    values = False

    def __init__(self, name: str, noun: str):
        self.name, self.noun = name, noun

    @property
    def task(self) -> Task:
        return tasks.get(self.name)

    def outputs(self, logits: np.ndarray) -> np.ndarray:
        """float64 (n_samples, n_columns): probabilities, or values."""
        return self.task.outputs(logits)

    def weighted_mean(self, weights: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """sum_m weights[m] * outputs(logits[m]), float64 (n_samples, n_columns); members of
        weight zero are skipped, and only one member's outputs exist at a time."""
        blend = np.zeros(logits.shape[1:], dtype=np.float64)
        for weight, member_logits in zip(weights, logits):
            if weight > 0:
                blend += weight * self.outputs(member_logits)
        return blend

    def transformed_mean(self, weights: np.ndarray, logits: np.ndarray, transform: Transform) -> np.ndarray:
        """The weighted mean of each member's transformed probabilities, renormalised."""
        raise NotImplementedError(f"no mean of transformed outputs for {self.noun}")

    def observed(self, member_logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """float64 (n_terms,): the probability one member gave to what happened, one term per
        term of the log loss (a row; a row and tag). A blend's log loss is the mean of
        -log(sum_m w_m observed_m) when the weights sum to one."""
        raise NotImplementedError(f"no probabilities for {self.noun}")


class SingleLabelKind(BlendKind):
    class_indices = True

    def transformed_mean(self, weights, logits, transform):
        blend = np.zeros(logits.shape[1:], dtype=np.float64)
        for weight, member_logits in zip(weights, logits):
            blend += weight * transform(softmax(member_logits))
        return blend / blend.sum(axis=1, keepdims=True)

    def observed(self, member_logits, targets):
        return softmax(member_logits)[np.arange(len(targets)), targets]


class MultiLabelKind(BlendKind):
    def transformed_mean(self, weights, logits, transform):
        """Columns are each tag's yes then each tag's no; a tag's two sums divide by their total,
        so a rank blend gives each tag the mean rank / (n_samples + 1), a power blend a sharper
        mean (P > 1) of each tag's yes and no."""
        n_tags = logits.shape[2]
        blend = np.zeros((logits.shape[1], 2 * n_tags), dtype=np.float64)
        for weight, member_logits in zip(weights, logits):
            # 1 - p computed as sigmoid(-logit): a confident "no" keeps its digits.
            blend += weight * transform(np.concatenate([sigmoid(member_logits), sigmoid(-np.asarray(member_logits))], axis=1))
        return blend[:, :n_tags] / (blend[:, :n_tags] + blend[:, n_tags:])

    def observed(self, member_logits, targets):
        """Each tag's probability of its actual yes or no, row by row: (n_samples * n_tags,)."""
        member_logits = np.asarray(member_logits, dtype=np.float64)
        return sigmoid(np.where(np.asarray(targets) > 0.5, member_logits, -member_logits)).ravel()


class RegressionKind(BlendKind):
    values = True


KINDS: Registry[BlendKind] = Registry("task")
KINDS.register("single_label")(SingleLabelKind("single_label", "a single-label competition"))
KINDS.register("multi_label")(MultiLabelKind("multi_label", "a multi-label competition"))
KINDS.register("regression")(RegressionKind("regression", "a regression"))


def get(name: str) -> BlendKind:
    return KINDS.get(name)


def observed_probabilities(logits: np.ndarray, targets: np.ndarray, kind: BlendKind) -> np.ndarray:
    """float64 (n_models, n_terms): each member's kind.observed, one member at a time."""
    return np.stack([kind.observed(member_logits, targets) for member_logits in logits])
