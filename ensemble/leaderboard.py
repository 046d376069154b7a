"""The experiments in a workspace, best OOF score first."""

from __future__ import annotations

from pathlib import Path

from ensemble import metrics, store


def leaderboard(models_dir: Path) -> list[dict]:
    """One row per experiment: name, model, metric, oof_score (None until every fold is done),
    fold_scores (None for folds not yet trained), seconds (training time of the trained folds)."""
    rows = []
    for name in store.experiment_names(models_dir):
        experiment = store.ExperimentDir(models_dir, name)
        if not experiment.scores_path.is_file():
            continue  # settings written, no fold finished yet
        scores = store.read_json(experiment.scores_path)
        rows.append(
            {
                "name": name,
                "model": scores["model"],
                "metric": scores["metric"],
                "oof_score": scores["oof_score"],
                "fold_scores": scores["fold_scores"],
                "seconds": sum(seconds for seconds in scores["seconds"] if seconds is not None),
            }
        )

    def rank(row: dict) -> tuple:
        score = row["oof_score"]
        if score is None:
            return (1, 0.0, row["name"])
        sign = -1 if metrics.get(row["metric"]).greater_is_better else 1
        return (0, sign * score, row["name"])

    rows.sort(key=rank)
    return rows

