"""results/leaderboard.py on a trained workspace: rows, ranking, notes, correlations."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from ensemble import metrics
from ensemble.artifacts.store import ExperimentDir, load_logits
from ensemble.config import Workspace
from ensemble.data.competition import load_competition
from ensemble.results.leaderboard import describe_settings, leaderboard


def rows_by_name(root, **options) -> dict[str, dict]:
    return {row["name"]: row for row in leaderboard(Workspace.load(root), **options)}


def test_rows_hold_scores_recomputed_from_the_logits(trained_dir):
    rows = leaderboard(Workspace.load(trained_dir))
    assert {row["name"] for row in rows} == {"a", "b"}
    competition = load_competition(Workspace.load(trained_dir), check_images=False, with_test=False)
    for row in rows:
        oof = load_logits(ExperimentDir(trained_dir / "models", row["name"]).oof_path)
        targets = competition.targets[[list(competition.train_ids).index(image_id) for image_id in oof.ids]]
        assert row["oof_score"] == pytest.approx(metrics.get("accuracy").score(targets, oof.values))
        assert len(row["fold_scores"]) == 3 and None not in row["fold_scores"]
        assert row["fold_mean"] == pytest.approx(np.mean(row["fold_scores"]))
        assert row["fold_std"] == pytest.approx(np.std(row["fold_scores"]))
        assert row["note"] is None and row["metric"] == "accuracy" and row["seconds"] > 0
    assert [row["model"] for row in sorted(rows, key=lambda row: row["name"])] == ["test_resnet", "test_efficientnet"]
    assert rows_by_name(trained_dir)["b"]["epochs"] == 2


def test_best_oof_first_and_unfinished_last(trained_copy):
    shutil.copytree(trained_copy / "models" / "a", trained_copy / "models" / "aa_unfinished")
    (trained_copy / "models" / "aa_unfinished" / "oof.npz").unlink()
    rows = leaderboard(Workspace.load(trained_copy))
    scored = [row["oof_score"] for row in rows[:2]]
    assert scored == sorted(scored, reverse=True)  # accuracy: greater is better
    assert rows[-1]["name"] == "aa_unfinished" and rows[-1]["oof_score"] is None
    assert None not in rows[-1]["fold_scores"]  # its folds are scored, its OOF is not


def test_a_metric_where_less_is_better_ranks_the_other_way(trained_dir):
    rows = leaderboard(Workspace.load(trained_dir), metric="logloss")
    scores = [row["oof_score"] for row in rows]
    assert rows[0]["metric"] == "logloss" and scores == sorted(scores)


def test_an_experiment_trained_on_other_data_keeps_its_row_with_a_note(trained_copy):
    train_csv = trained_copy / "data" / "train.csv"
    frame = pd.read_csv(train_csv, dtype=str)
    frame.loc[0, "label"] = "owl" if frame.loc[0, "label"] != "owl" else "cat"
    frame.to_csv(train_csv, index=False)
    rows = rows_by_name(trained_copy)
    for row in rows.values():
        assert row["oof_score"] is None and row["fold_scores"] == [None] * 3
        assert "trained on another train.csv" in row["note"]


@pytest.mark.parametrize("damage", ["{", '{"model": "x"}'])
def test_a_damaged_scores_file_costs_only_its_own_row(trained_copy, damage):
    (trained_copy / "models" / "b" / "scores.json").write_text(damage)
    rows = rows_by_name(trained_copy)
    assert rows["a"]["oof_score"] is not None
    assert rows["b"]["oof_score"] is None and rows["b"]["note"].startswith("cannot be scored: ")
    assert "scores.json" in rows["b"]["note"]


def test_correlations_are_symmetric_with_ones_on_the_diagonal(trained_dir):
    rows = rows_by_name(trained_dir, correlation=True)
    assert rows["a"]["correlation"]["a"] == pytest.approx(1.0)
    assert rows["a"]["correlation"]["b"] == pytest.approx(rows["b"]["correlation"]["a"])
    assert -1 <= rows["a"]["correlation"]["b"] < 1


@pytest.mark.parametrize(
    "train, expected",
    [
        # An old settings.json: one size, no attention or TTA keys.
        ({"size": 16, "epochs": 1}, {"attention": "-", "sizes": [16], "tta": "-"}),
        ({"stages": [{"size": 16}, {"size": 16}, {"size": 24}], "attention": "se", "tta": "hflip", "tta_merge": "gmean"},
         {"attention": "se", "sizes": [16, 24], "tta": "hflip (gmean)"}),
        ({"size": 16, "tta": "d4", "tta_merge": "mean"}, {"tta": "d4"}),
    ],
)
def test_describe_settings_reads_old_and_new_records(train, expected):
    described = describe_settings({"train": train})
    assert {key: described[key] for key in expected} == expected
