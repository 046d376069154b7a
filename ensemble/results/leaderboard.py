"""The experiments in a workspace, best OOF score first, scored with the current metric
(or the one asked for), with what a blend needs to choose members: the settings that make
experiments differ, the spread of fold scores, and how alike their OOF predictions are."""

from __future__ import annotations

import numpy as np

from ensemble import metrics
from ensemble.artifacts import store
from ensemble.artifacts.scores import experiment_scores, stale_reason
from ensemble.config import Workspace
from ensemble.data.competition import Competition, load_competition
from ensemble.data.duplicates import duplicates_path, read_duplicates
from ensemble.data.folds import read_folds
from ensemble.errors import EnsError
from ensemble.io import read_json


def describe_settings(settings: dict) -> dict:
    """attention, sizes and TTA of an experiment's settings.json. Read with fallbacks: older
    experiments lack these keys ('-' for none, the single training size for sizes)."""
    train = settings.get("train", {})
    stages = train.get("stages")
    if isinstance(stages, list) and stages:
        sizes = [stage.get("size") for stage in stages if isinstance(stage, dict)]
        sizes = [size for position, size in enumerate(sizes) if position == 0 or size != sizes[position - 1]]
    else:  # before stages: one training size
        sizes = [train["size"]] if "size" in train else []
    tta = train.get("tta") or "none"
    if tta != "none" and train.get("tta_merge", "mean") != "mean":
        tta = f"{tta} ({train['tta_merge']})"
    teacher = settings.get("teacher") or {}
    return {
        "teacher": teacher_text(teacher),
        "distilled": bool(teacher.get("distill")),
        "attention": train.get("attention") or "-",
        "sizes": [int(size) for size in sizes] if isinstance(sizes, (list, tuple)) else [sizes],
        "tta": "-" if tta == "none" else str(tta),
        "epochs": train.get("epochs"),
        "lr": train.get("lr"),
        "batch_size": train.get("batch_size"),
    }


def teacher_text(teacher: dict | None) -> str:
    """'pseudo:B', 'distill:B', both joined by '+', or '-' for an experiment no blend taught;
    a leaky teacher (benchmarks only) is marked."""
    if not teacher:
        return "-"
    parts = [f"{way}:{record['blend']}" + ("" if record.get("nested", True) else "(leaky)") for way, record in teacher.items() if record]
    return "+".join(parts) or "-"


# Why a distilled experiment's OOF score reads high: README.md, "Teacher and student".
DISTILLED_NOTE = (
    "distilled: its training targets are the teacher's OOF outputs, made by member models that trained on its held-out rows, "
    "so its OOF score is a little optimistic (README: Teacher and student)"
)


def experiment_row(experiment: store.ExperimentDir, competition: Competition, metric: metrics.Metric) -> dict:
    recorded = read_json(experiment.scores_path)
    try:
        k, model = len(recorded["fold_scores"]), str(recorded["model"])
        seconds = sum(float(seconds) for seconds in recorded["seconds"] if seconds is not None) + float(recorded.get("features_seconds", 0.0))
        settings = describe_settings(read_json(experiment.settings_path))
    except (KeyError, TypeError, ValueError) as error:
        raise EnsError(f"{experiment.scores_path}: not a scores file ({type(error).__name__}: {error})") from None
    note = stale_reason(experiment, competition)
    fold_scores, oof_score = ([None] * k, None) if note else experiment_scores(experiment, competition, k, metric)
    done = [score for score in fold_scores if score is not None]
    return {
        "name": experiment.name,
        "model": model,
        "metric": metric.name,
        "oof_score": oof_score,
        "fold_scores": fold_scores,
        "fold_mean": float(np.mean(done)) if done else None,
        "fold_std": float(np.std(done)) if len(done) > 1 else None,
        **settings,
        "seconds": seconds,
        "note": note,
    }


def leaderboard(workspace: Workspace, metric: str | None = None, correlation: bool = False) -> list[dict]:
    """One row per experiment with a finished fold: name, model, metric, oof_score (None until
    every fold is done), fold_scores (None for folds not yet trained), fold_mean and fold_std
    (of the trained folds), teacher ('pseudo:B', 'distill:B' or '-'), distilled (its OOF score
    reads a little high: DISTILLED_NOTE), attention, sizes, tta, epochs, lr, batch_size, seconds
    (training time), note (why it has no scores, when it was trained on other data; else None).
    With correlation, each scored row also has correlation: {other experiment: Pearson
    correlation of the two experiments' OOF probabilities}."""
    # Scoring OOF logits needs train.csv alone: no test.csv, no sample submission.
    competition = load_competition(workspace, check_images=False, with_test=False)
    scorer = competition.task.check_metric(metric, "--metric") if metric else metrics.get(competition.metric)
    rows = []
    for name in store.experiment_names(workspace.models_dir):
        experiment = store.ExperimentDir(workspace.models_dir, name)
        if not experiment.scores_path.is_file():
            continue  # settings written, no fold finished yet
        try:
            rows.append(experiment_row(experiment, competition, scorer))
        except EnsError as error:  # one damaged experiment costs its own row, not the board
            rows.append(
                {"name": name, "model": "?", "metric": scorer.name, "oof_score": None, "fold_scores": [],
                 "seconds": 0.0, "note": f"cannot be scored: {error}"}
            )

    def rank(row: dict) -> tuple:
        score = row["oof_score"]
        if score is None:
            return (1, 0.0, row["name"])
        return (0, -score if scorer.greater_is_better else score, row["name"])

    rows.sort(key=rank)
    if correlation:
        add_correlations(workspace, competition, rows)
    return rows


def add_correlations(workspace: Workspace, competition: Competition, rows: list[dict]) -> None:
    """Pearson correlation of the flattened OOF probabilities of every pair of scored rows
    (both in train.csv order: oof.npz is written so). Diversity is what a blend feeds on:
    two members correlated at 0.99 add little to each other."""
    scored = [row for row in rows if row["oof_score"] is not None]
    if not scored:
        return
    probs = np.stack(
        [competition.task.outputs(store.load_logits(store.ExperimentDir(workspace.models_dir, row["name"]).oof_path).values).ravel() for row in scored]
    )
    matrix = np.corrcoef(probs) if len(scored) > 1 else np.ones((1, 1))
    for row, values in zip(scored, matrix):
        row["correlation"] = {other["name"]: float(value) for other, value in zip(scored, values)}


def duplicates_note(workspace: Workspace) -> str | None:
    """What the leaderboard says when `ens audit` found near-duplicate groups that the current
    folds split: their OOF scores are then optimistic. None without audit/duplicates.csv, without
    valid folds, or when no group is split. An audit never invalidates folds or experiments:
    this note is all it changes; an unreadable duplicates.csv is the note itself."""
    if not duplicates_path(workspace).is_file():
        return None
    competition = load_competition(workspace, check_images=False, with_test=False)
    try:
        folds = read_folds(workspace, competition)
    except EnsError:  # no folds yet, or stale ones: every command that uses them says so
        return None
    try:
        duplicates = read_duplicates(workspace, competition)
    except EnsError as error:
        return str(error)
    n_split = duplicates.split_by(folds.fold_of)
    if n_split == 0:
        return None
    return f"folds split {n_split} duplicate groups: OOF scores are optimistic; ens folds --dedupe"
