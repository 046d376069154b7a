import numpy as np
import pandas as pd
import pytest

from ensemble.competition import load_competition
from ensemble.config import Workspace
from ensemble.errors import EnsError
from ensemble.submission import submission_frame, submission_kind
from tests.conftest import make_competition


def probs_for(competition):
    """Test probabilities whose argmax class is the test row's position mod 3."""
    probs = np.full((len(competition.test_ids), 3), 0.1)
    probs[np.arange(len(probs)), np.arange(len(probs)) % 3] = 0.8
    return probs


def test_labels_follow_the_sample_row_order(tmp_path):
    competition = load_competition(Workspace.load(make_competition(tmp_path)))
    frame = submission_frame(competition, probs_for(competition))
    assert submission_kind(competition) == "labels"
    assert frame["id"].tolist() == competition.sample["id"].tolist()
    expected = {image_id: competition.classes[row % 3] for row, image_id in enumerate(competition.test_ids)}
    assert frame["label"].tolist() == [expected[image_id] for image_id in frame["id"]]


def test_probability_columns_follow_the_sample_column_order(tmp_path):
    competition = load_competition(Workspace.load(make_competition(tmp_path, sample="probabilities")))
    frame = submission_frame(competition, probs_for(competition))
    assert submission_kind(competition) == "probabilities"
    assert list(frame.columns) == ["id", "owl", "dog", "cat"]
    row = list(competition.test_ids).index(frame["id"].iloc[0])
    assert frame.loc[0, competition.classes[row % 3]] == 0.8


def test_binary_probability_column(tmp_path):
    root = make_competition(tmp_path, labels=("0", "1"))
    pd.DataFrame({"id": pd.read_csv(root / "data/test.csv", dtype=str)["id"], "target": 0.5}).to_csv(
        root / "data/sample_submission.csv", index=False
    )
    competition = load_competition(Workspace.load(root))
    assert submission_kind(competition) == "positive_probability"
    probs = np.tile([[0.3, 0.7]], (len(competition.test_ids), 1))
    assert submission_frame(competition, probs)["target"].tolist() == [0.7] * len(competition.test_ids)


def test_unreadable_sample_shape_is_refused(tmp_path):
    root = make_competition(tmp_path)
    sample = pd.read_csv(root / "data/sample_submission.csv", dtype=str)
    sample.assign(extra="x").to_csv(root / "data/sample_submission.csv", index=False)
    competition = load_competition(Workspace.load(root))
    with pytest.raises(EnsError, match="sample_submission.csv: columns .* neither one label column"):
        submission_kind(competition)
