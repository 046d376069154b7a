import numpy as np
import pytest

from ensemble.config import FoldSettings, Workspace
from ensemble.data.competition import load_competition
from ensemble.data.folds import STRATEGIES, assign_folds, read_folds, write_folds
from ensemble.errors import EnsError
from tests.conftest import add_group_column


def test_stratified_folds_cover_every_row_once_with_class_shares(competition_dir):
    competition = load_competition(Workspace.load(competition_dir))
    fold_of = assign_folds(competition, FoldSettings(k=3, seed=1))
    assert sorted(np.bincount(fold_of)) == [12, 12, 12]
    for fold in range(3):  # 36 rows, 3 classes: 4 of each class per fold
        assert np.bincount(competition.targets[fold_of == fold]).tolist() == [4, 4, 4]
    np.testing.assert_array_equal(fold_of, assign_folds(competition, FoldSettings(k=3, seed=1)))
    assert not np.array_equal(fold_of, assign_folds(competition, FoldSettings(k=3, seed=2)))


def test_group_folds_keep_each_group_in_one_fold(competition_dir):
    add_group_column(competition_dir, "patient", lambda row: f"p{row // 3}")
    competition = load_competition(Workspace.load(competition_dir))
    fold_of = assign_folds(competition, FoldSettings(k=3, strategy="group"))
    for group in set(competition.groups):
        assert len(set(fold_of[competition.groups == group])) == 1


def test_group_strategy_needs_a_group_column(competition_dir):
    competition = load_competition(Workspace.load(competition_dir))
    with pytest.raises(EnsError, match="needs group_column"):
        assign_folds(competition, FoldSettings(strategy="group"))
    with pytest.raises(EnsError, match="unknown fold strategy 'random'; expected one of: group, stratified"):
        assign_folds(competition, FoldSettings(strategy="random"))
    assert STRATEGIES.names() == ["group", "stratified"]


def test_folds_file_is_refused_for_other_data_or_when_edited(competition_dir):
    workspace = Workspace.load(competition_dir)
    write_folds(workspace, load_competition(workspace), workspace.folds, force=False)
    assert read_folds(workspace, load_competition(workspace)).k == 3

    folds_csv = competition_dir / "folds" / "folds.csv"
    folds_csv.write_text(folds_csv.read_text().replace("0000,", "0000,9", 1))
    with pytest.raises(EnsError, match="folds.csv: does not match .*folds.json"):
        read_folds(workspace, load_competition(workspace))

    write_folds(workspace, load_competition(workspace), workspace.folds, force=True)
    train_csv = competition_dir / "data" / "train.csv"
    train_csv.write_text(train_csv.read_text().replace("0001,dog", "0001,owl"))
    with pytest.raises(EnsError, match="folds.csv: made for another train.csv"):
        read_folds(workspace, load_competition(workspace))


def test_too_many_folds_for_the_classes(competition_dir):
    competition = load_competition(Workspace.load(competition_dir))
    with pytest.raises(EnsError, match="12 rows in the largest class cannot fill 13 stratified folds; use --k 12 or fewer"):
        assign_folds(competition, FoldSettings(k=13))
    assign_folds(competition, FoldSettings(k=12))  # 12 rows per class: enough


def test_folds_survive_changes_to_train_csv_that_keep_ids_and_labels(competition_dir):
    workspace = Workspace.load(competition_dir)
    write_folds(workspace, load_competition(workspace), workspace.folds, force=False)
    add_group_column(competition_dir, "notes", lambda row: "x")
    config = competition_dir / "ens.toml"
    config.write_text(config.read_text().replace('group_column = "notes"', 'group_column = ""'))
    train_csv = competition_dir / "data" / "train.csv"
    train_csv.write_bytes(train_csv.read_bytes().replace(b"\n", b"\r\n"))
    assert read_folds(Workspace.load(competition_dir), load_competition(Workspace.load(competition_dir))).k == 3


def test_group_folds_are_refused_when_the_groups_change(competition_dir):
    add_group_column(competition_dir, "patient", lambda row: f"p{row // 3}")
    workspace = Workspace.load(competition_dir)
    write_folds(workspace, load_competition(workspace), FoldSettings(k=3, strategy="group"), force=False)
    add_group_column(competition_dir, "patient", lambda row: f"p{row % 3}")  # same column, new groups
    with pytest.raises(EnsError, match="made for other groups"):
        read_folds(workspace, load_competition(workspace))
