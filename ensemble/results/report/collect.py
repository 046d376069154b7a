"""What `ens report` shows, read from cached files only: scores, histories, OOF probabilities, blends,
and what `ens audit` found (audit/).

Scores come from leaderboard.leaderboard (recomputed from the logits with the current metric);
per-epoch histories from models/NAME/fold<k>/result.json; blends from submissions/NAME.json
and, where the blend wrote them, its OOF probabilities from submissions/NAME.oof.npz.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ensemble import __version__, metrics
from ensemble.artifacts import store
from ensemble.blend.members import aligned
from ensemble.config import Workspace
from ensemble.data.competition import Competition, load_competition
from ensemble.errors import EnsError
from ensemble.io import group_complete, read_json, read_npz
from ensemble.results.leaderboard import duplicates_note, leaderboard


@dataclass(frozen=True)
class ExperimentSummary:
    """One experiment. histories: fold -> that fold's epochs (dicts of result.json's history);
    oof_probs: float (n_train, n_classes) in train.csv order, None until every fold is trained."""

    name: str
    model: str
    fold_scores: list[float | None]
    oof_score: float | None
    seconds: float
    note: str | None
    settings: dict
    histories: dict[int, list[dict]]
    oof_probs: np.ndarray | None


@dataclass(frozen=True)
class BlendSummary:
    """One blend from submissions/NAME.json. members: dicts with name, weight (None for a
    stacker), oof_score. oof_score_in_sample: where the blend records it beside the out-of-fold one.
    oof_probs: float (n_train, n_classes) in train.csv order, from NAME.oof.npz, or None."""

    name: str
    method: str
    metric: str
    oof_score: float | None
    members: list[dict]
    oof_probs: np.ndarray | None
    note: str | None = None
    oof_score_in_sample: float | None = None


@dataclass(frozen=True)
class ReportData:
    root: Path
    competition: Competition
    metric: metrics.Metric
    experiments: list[ExperimentSummary]  # best OOF score first, as the leaderboard ranks them
    blends: list[BlendSummary]
    versions: dict[str, str] = field(default_factory=dict)
    audit: AuditSummary | None = None  # audit/ as `ens audit` wrote it; None without audit/audit.json

    @property
    def best(self) -> ExperimentSummary | None:
        """The best experiment with OOF probabilities (every fold trained, not stale)."""
        return next((experiment for experiment in self.experiments if experiment.oof_probs is not None), None)


def collect(workspace: Workspace) -> ReportData:
    competition = load_competition(workspace, check_images=False)
    experiments = []
    for row in leaderboard(workspace):
        experiment = store.ExperimentDir(workspace.models_dir, row["name"])
        oof_probs = None
        settings, histories, damaged = read_records(experiment)
        if row["oof_score"] is not None:
            oof = aligned(store.load_logits(experiment.oof_path), experiment.oof_path, competition.train_ids, competition.classes)
            oof_probs = competition.task.outputs(oof)
        experiments.append(
            ExperimentSummary(
                name=row["name"],
                model=row["model"],
                fold_scores=row["fold_scores"],
                oof_score=row["oof_score"],
                seconds=row["seconds"],
                note="; ".join(note for note in [row["note"], *damaged] if note) or None,
                settings=settings,
                histories=histories,
                oof_probs=oof_probs,
            )
        )
    return ReportData(
        root=workspace.root,
        competition=competition,
        metric=metrics.get(competition.metric),
        experiments=experiments,
        # A group a kill cut between its renames is not written (io.group_complete).
        blends=[read_blend(path, competition) for path in sorted(workspace.submissions_dir.glob("*.json")) if group_complete(path)],
        versions=versions(),
        audit=collect_audit(workspace, competition),
    )


def read_records(experiment: store.ExperimentDir) -> tuple[dict, dict[int, list[dict]], list[str]]:
    """(settings.json, fold -> result.json's history, what could not be read): a damaged file
    costs its part of the experiment's row, not the report."""
    damaged = []

    def read(path: Path) -> dict:
        try:
            record = read_json(path)
        except EnsError as error:
            damaged.append(str(error))
            return {}
        if not isinstance(record, dict):
            damaged.append(f"{path}: not a JSON object")
            return {}
        return record

    settings = read(experiment.settings_path)
    histories = {fold: read(experiment.fold_result_path(fold)).get("history", []) for fold in experiment.done_folds()}
    return settings, histories, damaged


def read_blend(json_path: Path, competition: Competition) -> BlendSummary:
    record = read_json(json_path)
    name = json_path.stem
    probs_path = json_path.with_name(f"{name}.oof.npz")
    oof_probs, note = None, None
    if probs_path.is_file():
        try:
            oof_probs = read_blend_probs(probs_path, competition)
        except EnsError as error:
            note = str(error)
    else:
        note = f"no {probs_path.name}: this blend's OOF probabilities were not saved"
    return BlendSummary(
        name=record.get("name", name),
        method=str(record.get("method", "?")),
        metric=str(record.get("metric", "?")),
        oof_score=record.get("oof_score"),
        members=list(record.get("members", [])),
        oof_probs=oof_probs,
        note=note,
        oof_score_in_sample=record.get("oof_score_in_sample"),
    )


# What a blend's OOF file may call its values: probabilities, or logits to be softmaxed.
PROBABILITY_KEYS = ("probs", "probabilities", "oof")


def read_blend_probs(path: Path, competition: Competition) -> np.ndarray:
    """A blend's OOF probabilities, float (n_train, n_classes) in train.csv order."""
    archive = read_npz(path, "OOF probabilities")
    try:
        ids, classes = archive["ids"].astype(str), tuple(archive["classes"].astype(str).tolist())
        key = next((key for key in PROBABILITY_KEYS if key in archive), None)
        values = archive[key] if key else competition.task.outputs(archive["logits"])
    except KeyError as error:
        raise EnsError(f"{path}: cannot read OOF probabilities: no array {error}") from None
    if values.shape != (len(ids), len(classes)):
        raise EnsError(f"{path}: values have shape {values.shape}, expected ({len(ids)}, {len(classes)})")
    return aligned(store.Logits(ids, classes, np.asarray(values, dtype=np.float64)), path, competition.train_ids, competition.classes)


def versions() -> dict[str, str]:
    """Versions of what made the report; each experiment's settings.json has those that trained it."""
    import matplotlib
    import pandas

    return {"ens": __version__, "python": platform.python_version(), "numpy": np.__version__, "pandas": pandas.__version__, "matplotlib": matplotlib.__version__}


# The Data section shows at most these many groups and train/test pairs, and images per group.
MAX_GROUPS, MAX_PER_GROUP, MAX_PAIRS = 8, 6, 8


@dataclass(frozen=True)
class Picture:
    """One image to show: its id, its label ('' for a test image) and its file (None: not in the CSV)."""

    id: str
    label: str
    path: Path | None


@dataclass(frozen=True)
class AuditSummary:
    """What `ens audit` wrote, for the Data section. figures: audit.json ({} when damaged);
    groups: (group, its first members) of the first groups; pairs: (test, train, distance);
    conflicts: (group, [(id, label)]); notes: what could not be read, and the leaderboard's
    note when the folds split the audit's groups."""

    figures: dict
    groups: list[tuple[str, list[Picture]]]
    n_groups_listed: int
    pairs: list[tuple[Picture, Picture, str]]
    n_pairs_listed: int
    conflicts: list[tuple[str, list[tuple[str, str]]]]
    notes: list[str]


def collect_audit(workspace: Workspace, competition: Competition) -> AuditSummary | None:
    """audit/ as `ens audit` writes it; None without audit/audit.json. A damaged file is a
    note, never a failed report."""
    folder = workspace.root / "audit"
    if not (folder / "audit.json").is_file():
        return None
    notes: list[str] = []
    figures: dict = {}
    try:
        record = read_json(folder / "audit.json")
        if isinstance(record, dict):
            figures = record
        else:
            notes.append(f"{folder / 'audit.json'}: not a JSON object")
    except EnsError as error:
        notes.append(str(error))
    train_path = dict(zip(competition.train_ids.tolist(), competition.train_image_paths()))
    label_of = dict(zip(competition.train_ids.tolist(), competition.labels.tolist()))
    test_ids = competition.test_ids.tolist() if competition.test_ids is not None else []
    test_path = dict(zip(test_ids, competition.test_image_paths())) if test_ids else {}

    def train_picture(image_id: str) -> Picture:
        return Picture(image_id, str(label_of.get(image_id, "")), train_path.get(image_id))

    groups, n_groups = [], 0
    duplicates = read_audit_csv(folder / "duplicates.csv", ("id", "group"), notes)
    if duplicates is not None:
        members = duplicates.groupby("group", sort=False)["id"].apply(list)
        n_groups = len(members)
        groups = [(group, [train_picture(i) for i in ids[:MAX_PER_GROUP]]) for group, ids in list(members.items())[:MAX_GROUPS]]
    pairs, n_pairs = [], 0
    train_test = read_audit_csv(folder / "train_test.csv", ("test_id", "train_id"), notes)
    if train_test is not None:
        n_pairs = len(train_test)
        distances = train_test["distance"] if "distance" in train_test else [""] * n_pairs
        pairs = [
            (Picture(test_id, "", test_path.get(test_id)), train_picture(train_id), distance)
            for test_id, train_id, distance in list(zip(train_test["test_id"], train_test["train_id"], distances))[:MAX_PAIRS]
        ]
    conflicts = []
    frame = read_audit_csv(folder / "conflicts.csv", ("group", "id", "label"), notes)
    if frame is not None:
        conflicts = [(group, list(zip(rows["id"], rows["label"]))) for group, rows in frame.groupby("group", sort=False)]
    try:
        note = duplicates_note(workspace)
    except EnsError as error:
        note = str(error)
    if note:
        notes.append(note)
    return AuditSummary(figures, groups, n_groups, pairs, n_pairs, conflicts, list(dict.fromkeys(notes)))


def read_audit_csv(path: Path, columns: tuple[str, ...], notes: list[str]):
    """One of the audit's CSV files as strings, or None (with a note) when missing or damaged."""
    import pandas as pd

    if not path.is_file():
        notes.append(f"{path}: not found; run `ens audit --force` to write the audit again")
        return None
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        notes.append(f"{path}: not a CSV ({type(error).__name__}: {str(error).strip()})")
        return None
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        notes.append(f"{path}: columns must include {', '.join(columns)}; got {', '.join(frame.columns) or 'none'}")
        return None
    return frame
