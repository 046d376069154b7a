"""An experiment's scores, recomputed from its cached logits with the competition's current metric.

Scores are never read back from disk: a metric changed in ens.toml, or a train.csv relabelled,
shows at once in the leaderboard, and no score can disagree with the logits it describes.
"""

from __future__ import annotations

import numpy as np

from ensemble import metrics
from ensemble.artifacts import store
from ensemble.data.competition import Competition
from ensemble.errors import EnsError
from ensemble.io import read_json


def stale_reason(experiment: store.ExperimentDir, competition: Competition) -> str | None:
    """Why the experiment's logits cannot be scored against this competition, or None."""
    settings = read_json(experiment.settings_path)
    if settings.get("train_sha256") != competition.train_hash:
        return f"trained on another {competition.train_csv.name} (its ids or labels changed); train it again with --force"
    if settings.get("task", "single_label") != competition.task.name:
        return f"trained as a {settings.get('task', 'single_label')} competition, and it is {competition.task.name} now; train it again with --force"
    if tuple(settings.get("classes", ())) != competition.classes:
        return "trained on other classes; train it again with --force"
    if "source" in settings:
        return source_changed(experiment.root.parent, settings["source"])
    return None


def unfinished_reason(experiment: store.ExperimentDir) -> str:
    """What an incomplete experiment lacks and the command that finishes it: predict for one
    made by `ens predict` (settings.json records its source), train-folds otherwise."""
    source = read_json(experiment.settings_path).get("source")
    finish = f"ens predict --name {source['experiment']} --as {experiment.name}" if source else f"ens train-folds --name {experiment.name}"
    done = "predicted" if source else "trained"
    return f"not every fold is {done} (done: {experiment.done_folds()}); run `{finish}` again to finish it"


def check_usable(experiment: store.ExperimentDir, competition: Competition) -> None:
    """Refuse an experiment whose logits are not all there, or no longer match the competition."""
    if not experiment.is_complete():
        raise EnsError(f"{experiment.root}: {unfinished_reason(experiment)}")
    stale = stale_reason(experiment, competition)
    if stale:
        raise EnsError(f"{experiment.root}: {stale}")


def source_changed(models_dir, source: dict) -> str | None:
    """Why an experiment made by `ens predict` no longer matches its source's checkpoints, or None."""
    owner = store.ExperimentDir(models_dir, source["experiment"])
    hashes = [store.checkpoint_sha256(owner, fold) for fold in range(len(source["checkpoints_sha256"]))]
    if hashes != source["checkpoints_sha256"]:
        return (
            f"predicted from {source['experiment']}'s checkpoints, which were trained again or removed since; "
            "run `ens predict` again with --force"
        )
    return None


def fold_targets(competition: Competition, ids: np.ndarray) -> np.ndarray:
    """Class index of each id, int (len(ids),)."""
    return competition.targets[store.positions(competition.train_ids, ids)]


def experiment_scores(experiment: store.ExperimentDir, competition: Competition, k: int, metric: metrics.Metric) -> tuple[list, float | None]:
    """(fold_scores: one per fold, None where not trained; oof_score: None until combined)."""
    done = set(experiment.done_folds())
    fold_scores = []
    for fold in range(k):
        if fold not in done:
            fold_scores.append(None)
            continue
        logits = store.load_logits(experiment.fold_oof_path(fold))
        fold_scores.append(metric.score(fold_targets(competition, logits.ids), competition.task.outputs(logits.values)))
    oof_score = None
    if experiment.is_complete():
        oof = store.load_logits(experiment.oof_path)
        oof_score = metric.score(fold_targets(competition, oof.ids), competition.task.outputs(oof.values))
    return fold_scores, oof_score
