"""A submission CSV in the exact shape of the sample submission: same columns, same row order.

The sample's columns say what to write:
- one column per class (any order): the class probabilities;
- one other column whose sample values are labels: the predicted label;
- one other column, two classes, and sample values that are probabilities (0.5, say):
  the probability of the second class (the positive one, in sorted order).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from ensemble.competition import Competition
from ensemble.errors import EnsError


def submission_kind(competition: Competition) -> str:
    """'probabilities', 'labels' or 'positive_probability', read off the sample's columns."""
    sample, classes = competition.sample, competition.classes
    columns = [column for column in sample.columns if column != competition.settings.id_column]
    if len(columns) == len(classes) and set(columns) == set(classes):
        return "probabilities"
    if len(columns) == 1:
        values = sample[columns[0]]
        if len(classes) == 2 and not values.isin(classes).all() and _all_probabilities(values):
            return "positive_probability"
        return "labels"
    raise EnsError(
        f"{competition.sample_path}: columns {columns[:6]} are neither one label column "
        f"nor one column per class {list(classes)[:6]}"
    )


def _all_probabilities(values: pd.Series) -> bool:
    numbers = pd.to_numeric(values, errors="coerce")
    return bool(numbers.notna().all() and numbers.between(0, 1).all())


def submission_frame(competition: Competition, test_probs: np.ndarray) -> pd.DataFrame:
    """test_probs: float (n_test, n_classes) in test.csv order, columns in competition.classes order."""
    sample, classes = competition.sample, competition.classes
    id_column = competition.settings.id_column
    row_of = {image_id: row for row, image_id in enumerate(competition.test_ids)}
    probs = test_probs[[row_of[image_id] for image_id in sample[id_column]]]
    frame = pd.DataFrame({id_column: sample[id_column].to_numpy()})
    kind = submission_kind(competition)
    columns = [column for column in sample.columns if column != id_column]
    if kind == "probabilities":
        for column in columns:
            frame[column] = probs[:, classes.index(column)]
    elif kind == "positive_probability":
        frame[columns[0]] = probs[:, 1]
    else:
        frame[columns[0]] = np.asarray(classes, dtype=object)[probs.argmax(axis=1)]
    return frame[list(sample.columns)]


def to_csv_text(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.7g")
    return buffer.getvalue()
