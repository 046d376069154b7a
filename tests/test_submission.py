import re

import numpy as np
import pandas as pd
import pytest

from ensemble.config import Workspace
from ensemble.data.competition import load_competition
from ensemble.data.submission import KINDS, submission_frame
from ensemble.errors import EnsError
from tests.conftest import make_competition


def frame_for(competition, probs):
    """The submission for test probabilities given in test.csv order."""
    order = [list(competition.test_ids).index(i) for i in competition.sample["id"]]
    return submission_frame(
        competition.sample, "id", competition.submission_shape, competition.submission_kind, probs[order]
    )


def one_hot_by_row(competition):
    """Test probabilities whose argmax class is the test row's position mod n_classes."""
    n_classes = len(competition.classes)
    probs = np.full((len(competition.test_ids), n_classes), 0.1)
    probs[np.arange(len(probs)), np.arange(len(probs)) % n_classes] = 0.8
    return probs


def test_labels_follow_the_sample_row_order(tmp_path):
    competition = load_competition(Workspace.load(make_competition(tmp_path)))
    frame = frame_for(competition, one_hot_by_row(competition))
    assert competition.submission_kind == "labels"
    assert frame["id"].tolist() == competition.sample["id"].tolist()
    expected = {image_id: competition.classes[row % 3] for row, image_id in enumerate(competition.test_ids)}
    assert frame["label"].tolist() == [expected[image_id] for image_id in frame["id"]]


def test_probability_columns_follow_the_sample_column_order(tmp_path):
    competition = load_competition(Workspace.load(make_competition(tmp_path, sample="probabilities")))
    frame = frame_for(competition, one_hot_by_row(competition))
    assert competition.submission_kind == "probabilities"
    assert list(frame.columns) == ["id", "owl", "dog", "cat"]
    row = list(competition.test_ids).index(frame["id"].iloc[0])
    assert frame.loc[0, competition.classes[row % 3]] == 0.8


def write_single_column_sample(root, column, value):
    test_ids = pd.read_csv(root / "data/test.csv", dtype=str)["id"]
    pd.DataFrame({"id": test_ids, column: value}).to_csv(root / "data/sample_submission.csv", index=False)


def set_competition_keys(root, **keys):
    config = root / "ens.toml"
    text = config.read_text()
    for key, value in keys.items():
        text = re.sub(rf"^{key} = .*$", f'{key} = "{value}"', text, count=1, flags=re.M)
    config.write_text(text)


@pytest.mark.parametrize(
    "labels, column, keys, wanted",
    [
        (("0", "1"), "target", {}, "1"),  # numeric: the larger label is the positive class
        (("fake", "real"), "fake", {}, "fake"),  # the column names its class: never inverted
        (("fake", "real"), "real", {}, "real"),
        (("benign", "malignant"), "target", {"positive_class": "malignant"}, "malignant"),
    ],
)
def test_single_probability_column_gets_the_right_class(tmp_path, labels, column, keys, wanted):
    root = make_competition(tmp_path, labels=labels)
    write_single_column_sample(root, column, 0.5)
    set_competition_keys(root, **keys)
    competition = load_competition(Workspace.load(root))
    probs = np.tile([[0.3, 0.7]], (len(competition.test_ids), 1))
    expected = probs[0, competition.classes.index(wanted)]
    assert frame_for(competition, probs)[column].tolist() == [expected] * len(competition.test_ids)


@pytest.mark.parametrize("value, kind", [("0.0", "positive_probability"), ("0.5", "positive_probability")])
def test_a_sample_written_as_fractions_holds_probabilities(tmp_path, value, kind):
    root = make_competition(tmp_path, labels=("1", "2"))
    write_single_column_sample(root, "label", value)
    assert load_competition(Workspace.load(root)).submission_kind == kind
    set_competition_keys(root, submission="labels")  # the setting that decides, when asked
    write_single_column_sample(root, "label", "0")
    assert load_competition(Workspace.load(root)).submission_kind == "labels"


def test_a_zero_one_sample_can_be_forced_to_probabilities(tmp_path):
    root = make_competition(tmp_path, labels=("0", "1"))
    write_single_column_sample(root, "target", "0")
    assert load_competition(Workspace.load(root)).submission_kind == "labels"
    set_competition_keys(root, submission="positive_probability")
    assert load_competition(Workspace.load(root)).submission_kind == "positive_probability"


@pytest.mark.parametrize(
    "labels, column, value, keys, message",
    [
        (("benign", "malignant"), "target", 0.5, {}, "say which with positive_class"),
        (("a", "b", "c"), "label", "a", {"submission": "probabilities"}, "needs one column per class"),
        (("a", "b", "c"), "label", "a", {"submission": "best"}, "unknown submission kind 'best'"),
        (("a", "b"), "target", 0.5, {"positive_class": "c"}, "positive_class 'c' is not a class"),
        (("1", "2"), "label", "0", {}, r"holds '0', which is neither a class \['1', '2'\] nor plainly a probability.*submission ="),
        (("-1", "1"), "target", "0", {}, "holds '0', which is neither a class"),
    ],
)
def test_unfillable_samples_are_refused_when_the_competition_loads(tmp_path, labels, column, value, keys, message):
    root = make_competition(tmp_path, labels=labels)
    write_single_column_sample(root, column, value)
    set_competition_keys(root, **keys)
    with pytest.raises(EnsError, match=message):
        load_competition(Workspace.load(root))


def test_extra_columns_are_refused(tmp_path):
    root = make_competition(tmp_path)
    sample = pd.read_csv(root / "data/sample_submission.csv", dtype=str)
    sample.assign(extra="x").to_csv(root / "data/sample_submission.csv", index=False)
    with pytest.raises(EnsError, match="sample_submission.csv: extra column .extra. beside \\[.label.\\]"):
        load_competition(Workspace.load(root))


def test_kinds_registry():
    assert KINDS.names() == ["class_probability", "labels", "positive_probability", "probabilities", "tags", "values"]
