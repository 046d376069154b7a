"""Task kinds: what train.csv's labels mean (tasks.infer), and how each kind reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ensemble import tasks
from ensemble.config import Workspace
from ensemble.data.competition import load_competition
from ensemble.errors import EnsError

PATH = Path("train.csv")


@pytest.mark.parametrize(
    "labels, metric, expected",
    [
        (["cat", "dog", "owl"], "auto", "single_label"),
        (["Common Chickweed", "Loose Silky-bent", "Maize"], "auto", "single_label"),  # names with spaces
        (["bag trouser", "bag", "trouser shirt", "shirt"], "auto", "multi_label"),  # tags recombine
        (["haze primary", "clear primary water", "primary"], "auto", "multi_label"),
        (["0.5", "1.25", "3"], "auto", "regression"),  # numbers that are not whole
        (["3", "17", "42"], "auto", "single_label"),  # ids of categories, not a run of counts
        (["0", "1"], "auto", "single_label"),  # binary
        (["1", "2", "3", "4"], "accuracy", "single_label"),  # a classification metric says classes
        (["1", "2", "3", "4"], "rmse", "regression"),
        (["cat", "dog cat"], "f1_samples", "multi_label"),
    ],
)
def test_the_task_is_read_off_the_labels_and_the_metric(labels, metric, expected):
    assert tasks.infer(np.array(labels), metric, " ", "label", PATH) == expected


def test_whole_numbers_in_a_run_are_ambiguous_and_refused_naming_task():
    with pytest.raises(EnsError, match=r"train\.csv: 'count' holds the whole numbers 0 to 9, classes or counts alike; say which with task = "):
        tasks.infer(np.array([str(n) for n in range(10)]), "auto", " ", "count", PATH)


def test_fractions_with_a_classification_metric_are_refused():
    with pytest.raises(EnsError, match=r"not whole ones, and the metric 'accuracy' is for classes"):
        tasks.infer(np.array(["0.5", "1.5", "2"]), "accuracy", " ", "label", PATH)


def test_a_separator_other_than_space_splits_tags():
    assert tasks.infer(np.array(["a|b", "a", "b"]), "auto", "|", "label", PATH) == "multi_label"
    classes, targets = tasks.get("multi_label").parse(["a|b", "a", "c"], "|", "tags", lambda row: f"x: line {row + 2}")
    assert classes == ("a", "b", "c")
    np.testing.assert_array_equal(targets, [[1, 1, 0], [1, 0, 0], [0, 0, 1]])


def test_a_repeated_tag_and_a_non_number_are_one_line_naming_the_row():
    with pytest.raises(EnsError, match=r"^x: line 3: tag 'a' appears twice in 'tags'$"):
        tasks.get("multi_label").parse(["b", "a a"], " ", "tags", lambda row: f"x: line {row + 2}")
    with pytest.raises(EnsError, match=r"^x: line 3: 'count' is 'many', not a finite number"):
        tasks.get("regression").parse(["1", "many"], " ", "count", lambda row: f"x: line {row + 2}")


def test_metric_auto_follows_the_task_and_a_metric_of_another_kind_is_refused(multi_label_dir, regression_dir):
    assert load_competition(Workspace.load(multi_label_dir)).metric == "f1_samples"
    config = regression_dir / "ens.toml"
    config.write_text(config.read_text().replace('metric = "rmse"', 'metric = "auto"'))
    assert load_competition(Workspace.load(regression_dir)).metric == "rmse"
    config.write_text(config.read_text().replace('metric = "auto"', 'metric = "accuracy"'))
    with pytest.raises(EnsError, match=r"ens\.toml \[competition\]: metric 'accuracy' does not apply to a regression competition; expected one of: mae, r2, rmse$"):
        load_competition(Workspace.load(regression_dir))


def test_each_kind_reads_its_targets(multi_label_dir, regression_dir):
    multi = load_competition(Workspace.load(multi_label_dir))
    assert multi.classes == ("blue", "green", "red") and multi.targets.shape == (36, 3)
    assert multi.targets.sum(axis=1).min() >= 1 and multi.submission_kind == "tags"
    regression = load_competition(Workspace.load(regression_dir))
    assert regression.classes == ("count",) and regression.targets.dtype == np.float64
    assert regression.targets[:3].tolist() == [0.0, 1.0, 2.0] and regression.submission_kind == "values"


@pytest.mark.parametrize("name", tasks.TASKS.names())
def test_merging_identical_views_gives_the_view_back(name):
    task = tasks.get(name)
    logits = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    for merge in task.merges.names():
        merged = task.merge_views(np.stack([logits, logits]), merge)
        np.testing.assert_allclose(task.outputs(merged), task.outputs(logits), rtol=1e-5, atol=1e-6)


def test_multi_label_views_merge_per_tag_in_probability_space():
    task = tasks.get("multi_label")
    views = np.array([[[0.0, 2.0]], [[np.log(3), -2.0]]], dtype=np.float32)  # tag 0: p 0.5 and 0.75
    merged = task.outputs(task.merge_views(views, "mean"))
    np.testing.assert_allclose(merged[0, 0], 0.625, rtol=1e-6)
    np.testing.assert_allclose(merged[0, 1], 0.5, rtol=1e-6)  # sigmoid(2) and sigmoid(-2) average to a half


def test_untagged_images_let_an_image_get_no_tag(multi_label_dir):
    """Every training image tagged: each image gets its likeliest tag at least; some untagged: an empty answer can be right."""
    import pandas as pd

    from ensemble.data.submission import submission_frame
    from ensemble.metrics import f1_samples

    probs = np.array([[0.2, 0.1, 0.3], [0.9, 0.2, 0.1]])
    competition = load_competition(Workspace.load(multi_label_dir))
    frame = submission_frame(competition.sample.iloc[:2], "id", competition.submission_shape, "tags", probs)
    assert frame["tags"].tolist() == ["red", "blue"]
    assert f1_samples(np.array([[0, 0, 1], [1, 0, 0]]), probs) == 1.0

    train_csv = multi_label_dir / "data" / "train.csv"
    frame = pd.read_csv(train_csv, dtype=str, keep_default_na=False)
    frame.loc[3, "tags"] = ""
    frame.to_csv(train_csv, index=False)
    competition = load_competition(Workspace.load(multi_label_dir))
    assert competition.targets[3].sum() == 0 and not competition.submission_shape.at_least_one_tag
    frame = submission_frame(competition.sample.iloc[:2], "id", competition.submission_shape, "tags", probs)
    assert frame["tags"].tolist() == ["", "blue"]
    assert f1_samples(np.array([[0, 0, 0], [1, 0, 0]]), probs) == 1.0  # nothing to find, nothing said: right


def test_an_empty_label_of_a_single_label_competition_is_refused(competition_dir):
    train_csv = competition_dir / "data" / "train.csv"
    train_csv.write_text(train_csv.read_text().replace("0002,owl", "0002,"))
    with pytest.raises(EnsError, match=r"train\.csv: line 4: empty 'label'$"):
        load_competition(Workspace.load(competition_dir))
