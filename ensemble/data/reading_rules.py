"""A competition's reading rules as plain JSON: what predicting a new test list needs of the
competition, without its workspace. `ens predict --blend` reads them off the competition; an
exported bundle carries them (competition.json).

They say how a test CSV names its images (id column, image suffix) and how a submission is
written (the sample's columns in order, its kind, the classes or tags in logit order, the task
kind, the positive class, the label separator, whether every image gets a tag).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.data.competition import Competition, check_image_files, check_unique, image_file, read_table
from ensemble.data.submission import Shape, submission_frame, to_csv_text
from ensemble.errors import EnsError

SHAPE_FIELDS = ("columns", "classes", "positive_class", "label_column", "task", "label_separator", "at_least_one_tag")


def rules_of(competition: Competition) -> dict:
    shape = competition.submission_shape
    return {
        "id_column": competition.settings.id_column,
        "image_suffix": competition.settings.image_suffix,
        "task": competition.task.name,
        "classes": list(competition.classes),
        "submission": {
            "kind": competition.submission_kind,
            "sample_columns": [str(column) for column in competition.sample.columns],
            **{field: list(value) if isinstance(value, tuple) else value for field, value in ((name, getattr(shape, name)) for name in SHAPE_FIELDS)},
        },
    }


def shape_of(rules: dict) -> Shape:
    submission = rules["submission"]
    fields = {name: submission[name] for name in SHAPE_FIELDS}
    fields["classes"] = tuple(fields["classes"])
    return Shape(path=Path("sample_submission.csv"), **fields)


@dataclasses.dataclass(frozen=True)
class TestList:
    """ids: str (n,) in the CSV's order; paths: each id's image file."""

    csv: Path
    ids: np.ndarray
    paths: list[Path]


def read_test_list(rules: dict, test_csv: Path, test_images: Path) -> TestList:
    """The ids of test_csv (its id column; other columns, such as a sample submission's, are
    ignored) and their image files, every one checked to exist: one line naming the first missing."""
    id_column = rules["id_column"]
    test_csv, test_images = Path(test_csv).expanduser().resolve(), Path(test_images).expanduser().resolve()
    frame = read_table(test_csv, [id_column])
    check_unique(test_csv, frame[id_column])
    ids = frame[id_column].to_numpy(dtype=str)
    paths = [image_file(test_images, image_id, rules["image_suffix"]) for image_id in ids]
    check_image_files(test_csv, ids, paths, frame.index)
    return TestList(test_csv, ids, paths)


def submission_text(rules: dict, ids: np.ndarray, probs: np.ndarray) -> str:
    """The CSV: the sample's columns, one row per id in the order given. probs: float (n, n_columns)."""
    if probs.shape != (len(ids), len(rules["classes"])):
        raise EnsError(f"predicted {probs.shape} outputs for {len(ids)} ids and {len(rules['classes'])} columns")
    template = pd.DataFrame({column: ids for column in rules["submission"]["sample_columns"]})
    frame = submission_frame(template, rules["id_column"], shape_of(rules), rules["submission"]["kind"], probs)
    return to_csv_text(frame)
