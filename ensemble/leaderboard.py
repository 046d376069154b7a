"""The experiments in a workspace, best OOF score first, scored with the current metric."""

from __future__ import annotations

from ensemble import metrics, store
from ensemble.competition import load_competition
from ensemble.config import Workspace
from ensemble.scores import experiment_scores, stale_reason


def leaderboard(workspace: Workspace) -> list[dict]:
    """One row per experiment with a finished fold: name, model, metric, oof_score (None until
    every fold is done), fold_scores (None for folds not yet trained), seconds (training time),
    note (why it has no scores, when it was trained on other data; else None)."""
    competition = load_competition(workspace, check_images=False)
    metric = metrics.get(competition.settings.metric)
    rows = []
    for name in store.experiment_names(workspace.models_dir):
        experiment = store.ExperimentDir(workspace.models_dir, name)
        if not experiment.scores_path.is_file():
            continue  # settings written, no fold finished yet
        recorded = store.read_json(experiment.scores_path)
        k = len(recorded["fold_scores"])
        note = stale_reason(experiment, competition)
        fold_scores, oof_score = ([None] * k, None) if note else experiment_scores(experiment, competition, k, metric)
        rows.append(
            {
                "name": name,
                "model": recorded["model"],
                "metric": metric.name,
                "oof_score": oof_score,
                "fold_scores": fold_scores,
                "seconds": sum(seconds for seconds in recorded["seconds"] if seconds is not None),
                "note": note,
            }
        )

    def rank(row: dict) -> tuple:
        score = row["oof_score"]
        if score is None:
            return (1, 0.0, row["name"])
        return (0, -score if metric.greater_is_better else score, row["name"])

    rows.sort(key=rank)
    return rows
