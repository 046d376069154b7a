"""What train.csv's labels are, as init writes it: the task kind, the metric that goes with it,
and a line saying what a model will learn.

init writes the kind it infers (never "auto"), so a workspace says what it is and a later
edit of train.csv cannot turn it into another kind unnoticed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ensemble import metrics, tasks
from ensemble.config import CompetitionSettings
from ensemble.data.competition import Competition, read_table
from ensemble.errors import EnsError
from ensemble.init.columns import Choice

# How init's user settles labels that could be classes or counts.
SETTLE = "say which with --task single_label or --task regression"


class UnsettledTask(EnsError):
    """The labels do not say which kind the competition is: the files were found, so no layout hint."""


def infer_task(settings: CompetitionSettings, train_csv: Path) -> Choice:
    """The kind train.csv's label column says (tasks.infer_why), or one error naming --task."""
    labels = read_table(train_csv, [settings.label_column])[settings.label_column].to_numpy(dtype=str)
    try:
        inferred = tasks.infer_why(labels, settings.metric, settings.label_separator, settings.label_column, train_csv, settle=SETTLE)
    except EnsError as error:
        raise UnsettledTask(str(error)) from None
    return Choice(inferred.kind, inferred.sure, inferred.why)


# The metric a submission kind most often goes with, where it applies to the task; a guess the
# user is told to check. Otherwise the task's own default (f1_samples for tags, rmse for values).
METRIC_FOR_KIND = {"labels": "accuracy", "positive_probability": "auc", "class_probability": "auc", "probabilities": "logloss"}


def guess_metric(task: tasks.Task, kind: str) -> Choice:
    metric = METRIC_FOR_KIND.get(kind)
    if metric in metrics.METRICS and task.name in metrics.get(metric).tasks:
        return Choice(metric, False, f"{metric} suits a {kind} submission; set the leaderboard's metric")
    return Choice(task.default_metric, False, f"the {task.name} default, for a {kind} submission; set the leaderboard's metric")


def listed(names: tuple[str, ...], most: int = 8) -> str:
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


# What a model learns, in words, per task kind.
DESCRIBE = {
    "single_label": lambda competition: f"{len(competition.classes)} classes ({listed(competition.classes)})",
    "multi_label": lambda competition: f"{len(competition.classes)} tags ({listed(competition.classes)})",
    "regression": lambda competition: (
        f"one number per image ({competition.classes[0]!r}, {np.min(competition.targets):g} to {np.max(competition.targets):g})"
    ),
}


def describe_targets(competition: Competition) -> str:
    return DESCRIBE[competition.task.name](competition)
