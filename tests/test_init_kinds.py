"""`ens init` on multi-label and regression competition folders: the task kind is inferred and
printed with its reason, written into ens.toml with the metric that goes with it, or refused in
one line naming --task where the labels could be classes or counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ensemble.cli import app
from ensemble.config import Workspace
from ensemble.errors import EnsError
from ensemble.init import Given, init_workspace
from tests.conftest import make_multi_label_competition, make_regression_competition
from tests.test_init import images

runner = CliRunner()


def bare(root: Path) -> Path:
    """A competition folder as downloaded: the fixture's files without its ens.toml."""
    (root / "ens.toml").unlink()
    return root


def finding(result, key: str):
    return next(item for item in result.findings if item.key == key)


def test_multi_label_folder_is_inferred_with_its_reason(tmp_path):
    root = bare(make_multi_label_competition(tmp_path / "tags"))
    result = runner.invoke(app, ["init", str(root)])
    assert result.exit_code == 0, result.output
    assert "task               'multi_label'" in result.stdout
    assert "tags recombine: 'blue' is a label and inside 'green blue'" in result.stdout
    assert "multi_label: 3 tags (blue, green, red), tags submission" in result.stdout
    competition = Workspace.load(root).competition
    assert (competition.task, competition.metric, competition.label_column) == ("multi_label", "f1_samples", "tags")
    result = runner.invoke(app, ["folds", "-w", str(root)])  # what init wrote makes folds
    assert result.exit_code == 0, result.output


def test_whole_counts_are_refused_in_one_line_naming_task_and_settled_by_it(tmp_path):
    root = bare(make_regression_competition(tmp_path / "counts"))
    before = sorted(path.name for path in root.rglob("*"))
    result = runner.invoke(app, ["init", str(root)])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith("error: ") and result.output.rstrip().endswith(
        "'count' holds the whole numbers 0 to 9, classes or counts alike; say which with --task single_label or --task regression"
    )
    assert sorted(path.name for path in root.rglob("*")) == before  # nothing written

    result = init_workspace(root, Given(task="regression"))
    assert (finding(result, "task").value, finding(result, "task").why) == ("regression", "given with --task")
    assert result.targets == "one number per image ('count', 0 to 9)" and result.submission_kind == "values"
    competition = Workspace.load(root).competition
    assert (competition.task, competition.metric) == ("regression", "rmse")

    init_workspace(root, Given(metric="mae"), force=True)  # a regression metric says it too
    competition = Workspace.load(root).competition
    assert (competition.task, competition.metric) == ("regression", "mae")

    result = init_workspace(root, Given(task="single_label"), force=True)  # or ten classes, 3 or 4 rows each
    workspace = Workspace.load(root)
    assert (workspace.competition.task, workspace.competition.metric, workspace.folds.k) == ("single_label", "accuracy", 4)
    assert finding(result, "k").why == "the most that 4 rows in the largest class allow"


def test_numbers_that_are_not_whole_are_a_regression_without_a_flag(tmp_path):
    root = bare(make_regression_competition(tmp_path / "scores"))
    train_csv = root / "data" / "train.csv"
    frame = pd.read_csv(train_csv, dtype=str)
    frame["count"] = [f"{int(value) * 1.5:g}" for value in frame["count"]]
    frame.to_csv(train_csv, index=False)
    result = init_workspace(root)
    task = finding(result, "task")
    assert (task.value, task.sure, task.why) == ("regression", True, "'count' holds numbers that are not whole, such as '1.5'")
    assert Workspace.load(root).competition.metric == "rmse"


def test_label_separator_flag_splits_tags(tmp_path):
    root = bare(make_multi_label_competition(tmp_path / "tags"))
    train_csv = root / "data" / "train.csv"
    frame = pd.read_csv(train_csv, dtype=str)
    frame["tags"] = frame["tags"].str.replace(" ", "|")
    frame.to_csv(train_csv, index=False)
    assert finding(init_workspace(root), "task").value == "single_label"  # 'red|green' is one class name to " "
    result = init_workspace(root, Given(label_separator="|"), force=True)
    assert finding(result, "task").value == "multi_label" and result.classes == ("blue", "green", "red")
    assert Workspace.load(root).competition.label_separator == "|"


def test_class_folders_named_by_numbers_are_classes(tmp_path):
    for label in ("0", "1", "2"):  # a run of whole numbers: in a CSV, the ambiguous case
        images(tmp_path / "train" / label, [f"{label}_{i}" for i in range(3)], ".png")
    images(tmp_path / "test", ["u0", "u1"], ".png")
    result = init_workspace(tmp_path)
    task = finding(result, "task")
    assert (task.value, task.sure, task.why) == ("single_label", True, "one folder of images per class")
    assert Workspace.load(tmp_path).competition.task == "single_label"


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"task": "ranking"}, r"^--task: unknown task 'ranking'; expected one of: multi_label, regression, single_label$"),
        ({"label_separator": ""}, r"^--label-separator: empty"),
        ({"task": "regression"}, r"train.csv: line 2: 'tags' is 'green blue', not a finite number"),
    ],
)
def test_task_flags_are_checked(tmp_path, flags, message):
    root = bare(make_multi_label_competition(tmp_path / "tags"))
    with pytest.raises(EnsError, match=message):
        init_workspace(root, Given(**flags))
    assert not (root / "ens.toml").exists()


@pytest.mark.parametrize(
    "labels, metric, kind, sure, why",
    [
        (["bag trouser", "bag", "shirt"], "auto", "multi_label", True, "tags recombine: 'bag' is a label and inside 'bag trouser'"),
        (["Common Chickweed", "Maize"], "auto", "single_label", False, "labels such as 'Common Chickweed' hold ' ', but none of their parts is a label alone"),
        (["cat", "dog"], "auto", "single_label", True, "2 labels, one per row"),
        (["0.5", "2"], "auto", "regression", True, "'label' holds numbers that are not whole, such as '0.5'"),
        (["0", "1"], "auto", "single_label", True, "two values, '0' and '1': two classes"),
        (["3", "17", "42"], "auto", "single_label", False, "3 whole numbers with gaps between them (3 to 42): class codes"),
        (["1", "2", "3"], "qwk", "single_label", True, "the whole numbers 1 to 3, and the metric 'qwk' scores classes"),
        (["1", "2", "3"], "r2", "regression", True, "the metric 'r2' scores regression competitions only"),
    ],
)
def test_the_inferred_kind_says_why(labels, metric, kind, sure, why):
    from ensemble import tasks

    inferred = tasks.infer_why(np.array(labels), metric, " ", "label", Path("train.csv"))
    assert (inferred.kind, inferred.sure) == (kind, sure) and inferred.why.startswith(why)
