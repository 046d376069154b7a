"""Folds for every task kind: iterative stratification of tags, quantile bins of a regression
target, groups kept together, and a k the data cannot fill refused in one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ensemble import tasks
from ensemble.cli import app
from ensemble.config import FoldSettings, Workspace
from ensemble.data.competition import load_competition
from ensemble.data.duplicates import DuplicateGroups
from ensemble.data.folds import assign_folds, most_folds, read_folds, write_folds
from ensemble.data.iterative_stratification import iterative_stratification, stratify_tags
from ensemble.data.stratify import REGRESSION_BINS, STRATIFICATIONS, quantile_bins
from ensemble.errors import EnsError
from tests.conftest import add_group_column, make_competition, make_multi_label_competition, make_regression_competition

MAKERS = {"single_label": make_competition, "multi_label": make_multi_label_competition, "regression": make_regression_competition}


def per_fold(values: np.ndarray, fold_of: np.ndarray, k: int) -> np.ndarray:
    """Sum of each column of values (n, m) in each fold: (k, m)."""
    return np.stack([values[fold_of == fold].sum(axis=0) for fold in range(k)])


def skewed_tags(n_rows: int = 300, seed: int = 0) -> np.ndarray:
    """0/1 (n_rows, 6): one common tag, a few rare ones (9 positives of 300 for the rarest)."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((n_rows, 6)) < [0.5, 0.3, 0.1, 0.06, 0.04, 0.03]).astype(np.float32)
    targets[targets.sum(axis=1) == 0, 0] = 1  # every image has a tag
    return targets


def test_iterative_stratification_spreads_every_tag_evenly_where_kfold_does_not():
    from sklearn.model_selection import KFold

    targets, k = skewed_tags(), 5
    fold_of = stratify_tags(targets, k, seed=0)
    assert sorted(np.unique(fold_of)) == list(range(k))
    spread = np.ptp(per_fold(targets, fold_of, k), axis=0)
    rare = targets.mean(axis=0) < 0.15
    assert spread[rare].max() <= 1 and spread.max() <= 3, spread  # rare tags as even as whole rows allow
    assert np.ptp(np.bincount(fold_of)) <= 0.07 * len(targets) / k  # the folds about the same size (OVERFILL)
    for seed in range(3):
        plain = np.empty(len(targets), dtype=np.int64)
        for fold, (_, rows) in enumerate(KFold(k, shuffle=True, random_state=seed).split(targets)):
            plain[rows] = fold
        plain_spread = np.ptp(per_fold(targets, plain, k), axis=0)
        assert plain_spread[rare].max() >= 2 and plain_spread.sum() >= 2 * spread.sum(), (plain_spread, spread)


def test_iterative_stratification_is_seeded_and_keeps_units_whole():
    targets = skewed_tags(120)
    assert np.array_equal(stratify_tags(targets, 4, 3), stratify_tags(targets, 4, 3))
    assert not np.array_equal(stratify_tags(targets, 4, 3), stratify_tags(targets, 4, 4))
    groups = np.arange(120) // 4
    fold_of = stratify_tags(targets, 4, 0, groups)
    assert all(len(set(fold_of[groups == group])) == 1 for group in np.unique(groups))
    # Units without a tag fill the folds that want the most rows.
    assert np.bincount(iterative_stratification(np.zeros((8, 2)), np.ones(8), 4, 0)).tolist() == [2, 2, 2, 2]


def test_quantile_bins_are_equal_sized_by_rank_however_values_tie():
    values = np.array([0.0] * 12 + [1.0] * 3 + [5.0] * 5)
    bins = quantile_bins(values, 4)
    assert np.bincount(bins).tolist() == [5, 5, 5, 5]
    assert np.all(np.diff(bins[np.argsort(values, kind="stable")]) >= 0)  # bins grow with the value


def test_regression_folds_spread_the_target_range(regression_dir):
    competition = load_competition(Workspace.load(regression_dir))
    fold_of = assign_folds(competition, FoldSettings(k=3, seed=5))
    targets, k = competition.targets, 3
    bins = quantile_bins(targets, min(REGRESSION_BINS, len(targets) // k))
    counts = per_fold(np.eye(bins.max() + 1)[bins], fold_of, k)
    assert np.ptp(counts, axis=0).max() <= 1  # every bin of the target shared out
    means = [targets[fold_of == fold].mean() for fold in range(k)]
    assert np.ptp(means) < 1.0 and all(targets[fold_of == fold].min() <= 1 and targets[fold_of == fold].max() >= 8 for fold in range(k))


def test_multi_label_folds_share_out_every_tag(multi_label_dir):
    competition = load_competition(Workspace.load(multi_label_dir))
    fold_of = assign_folds(competition, FoldSettings(k=3))
    assert np.bincount(fold_of).tolist() == [12, 12, 12]
    assert np.ptp(per_fold(competition.targets, fold_of, 3), axis=0).max() <= 2


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_group_folds_keep_each_group_in_one_fold_for_every_kind(tmp_path, kind):
    root = MAKERS[kind](tmp_path / kind)
    add_group_column(root, "patient", lambda row: f"p{row // 3}")
    competition = load_competition(Workspace.load(root))
    for settings, duplicates in [(FoldSettings(k=3, strategy="group"), None), (FoldSettings(k=3, strategy="group", dedupe=True), near_copies())]:
        fold_of = assign_folds(competition, settings, duplicates)
        assert sorted(np.bincount(fold_of, minlength=3)) == [12, 12, 12]
        for group in set(competition.groups):
            assert len(set(fold_of[competition.groups == group])) == 1
    # --dedupe without a group column keeps the near-duplicates together under every kind too
    fold_of = assign_folds(competition, FoldSettings(k=3, dedupe=True), near_copies())
    assert fold_of[0] == fold_of[5] == fold_of[9]


def near_copies() -> DuplicateGroups:
    """Rows 0, 5 and 9 are copies of one another (one group); as ens audit's file would say."""
    return DuplicateGroups(path=None, rows=np.array([0, 5, 9]), groups=np.array([0, 0, 0]), sha256="x")


@pytest.mark.parametrize(
    "kind, k, message",
    [
        ("single_label", 13, r"12 rows in the largest class cannot fill 13 stratified folds; use --k 12 or fewer"),
        ("multi_label", 37, r"36 rows cannot fill 37 folds"),
        ("regression", 37, r"36 rows cannot fill 37 folds"),
    ],
)
def test_a_k_the_data_cannot_fill_is_one_line(tmp_path, kind, k, message):
    root = MAKERS[kind](tmp_path / kind)
    competition = load_competition(Workspace.load(root))
    with pytest.raises(EnsError, match=message):
        assign_folds(competition, FoldSettings(k=k))
    assert most_folds(competition).k == k - 1
    assign_folds(competition, FoldSettings(k=k - 1))  # the most the data allows works
    result = CliRunner().invoke(app, ["folds", "-w", str(root), "--k", str(k)])
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_every_task_kind_has_a_stratification():
    assert STRATIFICATIONS.names() == tasks.TASKS.names()


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_folds_command_and_stale_files_for_every_kind(tmp_path, kind):
    root = MAKERS[kind](tmp_path / kind)
    result = CliRunner().invoke(app, ["folds", "-w", str(root)])
    assert result.exit_code == 0, result.output
    assert "fold sizes [12, 12, 12]" in result.stdout
    workspace = Workspace.load(root)
    assert read_folds(workspace, load_competition(workspace)).k == 3
    train_csv = root / "data" / "train.csv"
    frame = pd.read_csv(train_csv, dtype=str)
    label = workspace.competition.label_column
    frame.loc[0, label] = frame.loc[1, label] if frame.loc[0, label] != frame.loc[1, label] else frame.loc[2, label]
    frame.to_csv(train_csv, index=False)
    with pytest.raises(EnsError, match="folds.csv: made for another train.csv"):
        read_folds(workspace, load_competition(workspace))


def test_a_rare_tag_is_noted(tmp_path):
    root = make_multi_label_competition(tmp_path / "tags")
    train_csv = root / "data" / "train.csv"
    frame = pd.read_csv(train_csv, dtype=str)
    frame.loc[0, "tags"] = "red violet"  # violet: one image, fewer than 3 folds
    frame.to_csv(train_csv, index=False)
    workspace = Workspace.load(root)
    result = write_folds(workspace, load_competition(workspace), FoldSettings(k=3), force=False)
    assert result.rarest == ("tag", "violet", 1)
    cli = CliRunner().invoke(app, ["folds", "-w", str(root), "--force"])
    assert "note: tag 'violet' has 1 rows, fewer than 3 folds; some folds lack it" in cli.stderr
    regression = make_regression_competition(tmp_path / "counts")
    workspace = Workspace.load(regression)
    assert write_folds(workspace, load_competition(workspace), FoldSettings(k=3), force=False).rarest is None
