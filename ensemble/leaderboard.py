"""The experiments in a workspace, best OOF score first, scored with the current metric."""

from __future__ import annotations

from ensemble import metrics, store
from ensemble.competition import Competition, load_competition
from ensemble.config import Workspace
from ensemble.errors import EnsError
from ensemble.scores import experiment_scores, stale_reason


def experiment_row(experiment: store.ExperimentDir, competition: Competition, metric: metrics.Metric) -> dict:
    recorded = store.read_json(experiment.scores_path)
    try:
        k, model = len(recorded["fold_scores"]), str(recorded["model"])
        seconds = sum(float(seconds) for seconds in recorded["seconds"] if seconds is not None)
    except (KeyError, TypeError, ValueError) as error:
        raise EnsError(f"{experiment.scores_path}: not a scores file ({type(error).__name__}: {error})") from None
    note = stale_reason(experiment, competition)
    fold_scores, oof_score = ([None] * k, None) if note else experiment_scores(experiment, competition, k, metric)
    return {
        "name": experiment.name,
        "model": model,
        "metric": metric.name,
        "oof_score": oof_score,
        "fold_scores": fold_scores,
        "seconds": seconds,
        "note": note,
    }


def leaderboard(workspace: Workspace) -> list[dict]:
    """One row per experiment with a finished fold: name, model, metric, oof_score (None until
    every fold is done), fold_scores (None for folds not yet trained), seconds (training time),
    note (why it has no scores, when it was trained on other data; else None)."""
    # Scoring OOF logits needs train.csv alone: no test.csv, no sample submission.
    competition = load_competition(workspace, check_images=False, with_test=False)
    metric = metrics.get(competition.settings.metric)
    rows = []
    for name in store.experiment_names(workspace.models_dir):
        experiment = store.ExperimentDir(workspace.models_dir, name)
        if not experiment.scores_path.is_file():
            continue  # settings written, no fold finished yet
        try:
            rows.append(experiment_row(experiment, competition, metric))
        except EnsError as error:  # one damaged experiment costs its own row, not the board
            rows.append(
                {"name": name, "model": "?", "metric": metric.name, "oof_score": None, "fold_scores": [],
                 "seconds": 0.0, "note": f"cannot be scored: {error}"}
            )

    def rank(row: dict) -> tuple:
        score = row["oof_score"]
        if score is None:
            return (1, 0.0, row["name"])
        return (0, -score if metric.greater_is_better else score, row["name"])

    rows.sort(key=rank)
    return rows
