"""plan_folds: what a run does to an experiment folder, from its settings and finished folds."""

from __future__ import annotations

import pytest

from ensemble.artifacts.identity import with_legacy_values
from ensemble.artifacts.store import ExperimentDir
from ensemble.artifacts.writer import PREDICT, TRAIN, FoldPlan, plan_folds
from ensemble.errors import EnsError
from ensemble.io import write_json

# A settings.json as a run writes it: every key present (the legacy defaults fill the rest).
RECORD = with_legacy_values({"name": "r", "device": "cpu", "train": {"model": "test_resnet", "size": 16, "epochs": 1, "lr": 0.001, "pretrained": "/a/w.pt"}})
OTHER_LR = {**RECORD, "train": {**RECORD["train"], "lr": 0.01}}
# Free to change on resume (identity.NOT_IDENTITY): the device, and the weights file's path.
MOVED = {**RECORD, "device": "cuda", "train": {**RECORD["train"], "pretrained": "/b/w.pt"}}


def make_experiment(tmp_path, record: dict | None, done: list[int]) -> ExperimentDir:
    experiment = ExperimentDir(tmp_path / "models", "r")
    if record is not None:
        write_json(experiment.settings_path, record)
    for fold in done:
        write_json(experiment.fold_result_path(fold), {"fold": fold})
    return experiment


@pytest.mark.parametrize(
    "existing, done, record, requested, force, expected",
    [
        # No experiment yet: every asked fold runs, with or without --force.
        (None, [], RECORD, [0, 1, 2], False, FoldPlan([0, 1, 2], [], False)),
        (None, [], RECORD, [1], True, FoldPlan([1], [], False)),
        # Same settings: finished folds are kept, the others run.
        (RECORD, [0, 2], RECORD, [0, 1, 2], False, FoldPlan([1], [0, 2], False)),
        (RECORD, [0, 1, 2], RECORD, [0, 1, 2], False, FoldPlan([], [0, 1, 2], False)),
        (RECORD, [0], MOVED, [0, 1], False, FoldPlan([1], [0], False)),
        # Same settings with --force: the asked folds run again, other finished folds are kept.
        (RECORD, [0, 2], RECORD, [0, 1], True, FoldPlan([0, 1], [2], False)),
        (RECORD, [0, 1], RECORD, [0, 1], True, FoldPlan([0, 1], [], False)),
        # Other settings with --force: the old experiment goes whole.
        (RECORD, [0, 1, 2], OTHER_LR, [0], True, FoldPlan([0], [], True)),
    ],
)
def test_plan(tmp_path, existing, done, record, requested, force, expected):
    experiment = make_experiment(tmp_path, existing, done)
    assert plan_folds(experiment, record, requested, force) == expected


@pytest.mark.parametrize(
    "verb, fragments",
    [
        (TRAIN, ["was trained with other settings", "train.lr: 0.001 -> 0.01", "use --force to train it again, or another --name"]),
        (PREDICT, ["was predicted with other settings", "use --force to predict it again, or another --as"]),
    ],
)
def test_other_settings_without_force_are_refused(tmp_path, verb, fragments):
    source = {} if verb.replaces_trained else {"source": {"experiment": "s"}}  # predict replaces only predictions
    experiment = make_experiment(tmp_path, {**RECORD, **source}, [0])
    with pytest.raises(EnsError, match="other settings") as caught:
        plan_folds(experiment, {**OTHER_LR, **source}, [0, 1], force=False, verb=verb)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert str(experiment.root) in str(caught.value)
    assert experiment.settings_path.is_file()  # refusing touches nothing


@pytest.mark.parametrize("force", [False, True])
def test_predict_never_plans_over_a_trained_experiment(tmp_path, force):
    """Decided under the fold locks: a check made before them misses an experiment trained meanwhile."""
    experiment = make_experiment(tmp_path, RECORD, [0])
    predicted = {**RECORD, "source": {"experiment": "s"}}
    with pytest.raises(EnsError, match="a trained experiment; predict never replaces trained weights, even with --force: name another --as"):
        plan_folds(experiment, predicted, [0, 1], force=force, verb=PREDICT)


def test_an_older_record_is_told_the_flag_that_resumes_it_as_it_was(tmp_path):
    # Recorded before train.augment_fill existed, with a warp: LEGACY says black, today's default is mean.
    older = {key: value for key, value in RECORD.items() if key != "train"}
    older["train"] = {key: value for key, value in RECORD["train"].items() if key != "augment_fill"} | {"augment": "shift:0.1"}
    today = {**RECORD, "train": {**RECORD["train"], "augment": "shift:0.1", "augment_fill": "mean"}}
    experiment = make_experiment(tmp_path, older, [0])
    with pytest.raises(EnsError, match=r"train.augment_fill: black -> mean\); --augment-fill black resumes it as it was made .*; use --force"):
        plan_folds(experiment, today, [0, 1], False)
    # With the flag, the same record resumes: nothing else differs.
    assert plan_folds(experiment, {**today, "train": {**today["train"], "augment_fill": "black"}}, [0, 1], False) == FoldPlan([1], [0], False)
