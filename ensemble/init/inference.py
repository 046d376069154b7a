"""What init chose and why, and the check that the choices make a competition ens can train on.

Every guess is checked the way `ens folds` and `ens train-folds` will check it: the competition
is loaded with competition.load_competition, its folds are made with folds.assign_folds, and a
few images are decoded, before ens.toml is written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensemble.config import CompetitionSettings, FoldSettings, TrainSettings, Workspace, quote_path
from ensemble.data.competition import Competition, load_competition
from ensemble.data.stratify import Limit
from ensemble.errors import EnsError
from ensemble.init.columns import Choice
from ensemble.init.targets import describe_targets, guess_metric, infer_task
from ensemble.init.toml import config_text
from ensemble.io import write_text


@dataclass(frozen=True)
class Given:
    """What the user settled with flags; None leaves it to init. Paths are relative to the current folder."""

    train_csv: str | None = None
    test_csv: str | None = None
    sample_submission: str | None = None
    train_images: str | None = None
    test_images: str | None = None
    id_column: str | None = None
    label_column: str | None = None
    image_suffix: str | None = None
    group_column: str | None = None
    task: str | None = None
    label_separator: str | None = None
    metric: str | None = None
    submission: str | None = None
    positive_class: str | None = None


@dataclass(frozen=True)
class Finding:
    """One inferred setting: its ens.toml key, its value, whether the files left no doubt, and why."""

    key: str
    value: object
    sure: bool
    why: str


@dataclass(frozen=True)
class InitResult:
    config_path: Path
    layout: str  # "csv" or "class folders"
    findings: list[Finding]
    written: list[Path]  # the lists written for the class-folder layout, then ens.toml
    n_train: int
    n_test: int
    classes: tuple[str, ...]
    submission_kind: str
    notes: list[str]
    task: str
    targets: str  # what a model learns, in words: '3 classes (cat, dog, owl)'


class Inference:
    """Collects the choices made for one competition folder."""

    def __init__(self, source: Path, root: Path):
        self.source, self.root = source, root
        self.findings: dict[str, Finding] = {}

    def take(self, key: str, choice: Choice):
        """Record a choice; returns its value (paths are recorded as ens.toml will hold them)."""
        shown = self.relative(choice.value) if isinstance(choice.value, Path) else choice.value
        self.findings[key] = Finding(key, shown, choice.sure, choice.why)
        return choice.value

    def relative(self, path: Path) -> str:
        """A path as ens.toml holds it: relative to the workspace when inside it, quoted so that
        Workspace.path gives it back ($ in a folder's name is not a variable)."""
        return quote_path(path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path))


@dataclass(frozen=True)
class Checked:
    """Settings that loaded as a competition, and what loading it told."""

    settings: CompetitionSettings
    folds: FoldSettings
    kind: str
    n_train: int
    n_test: int
    classes: tuple[str, ...]
    notes: list[str]
    task: str
    targets: str


def check(inference: Inference, settings: CompetitionSettings, given: Given) -> Checked:
    """Load the competition as `ens folds` and `ens train-folds` will, make its folds, decode a few images.

    settings.task: "auto" (inferred here from the labels) or a kind the layout settled."""
    overridden = ("group_column", "task", "label_separator", "metric", "submission", "positive_class")
    settings = dataclasses.replace(settings, **{key: value for key in overridden if (value := getattr(given, key)) is not None})
    take = inference.take
    if given.task is not None:
        take("task", Choice(settings.task, True, "given with --task"))
    elif settings.task == "auto":
        train_csv = Workspace(inference.root, settings, FoldSettings(), TrainSettings()).path(settings.train_csv)
        settings = dataclasses.replace(settings, task=take("task", infer_task(settings, train_csv)))
    competition = load_competition(Workspace(inference.root, settings, FoldSettings(), TrainSettings()))
    check_some_images(competition)
    kind = competition.submission_kind
    if given.submission:
        take("submission", Choice(kind, True, "given with --submission"))
    else:
        take("submission", Choice(kind, True, "read off the sample's columns" if settings.submission == "auto" else "the sample init writes holds labels"))
    if given.metric:
        take("metric", Choice(settings.metric, True, "given with --metric"))
    else:
        settings = dataclasses.replace(settings, metric=take("metric", guess_metric(competition.task, kind)))
    folds, limit = fold_settings(competition)
    take("k", Choice(folds.k, True, "the default" if folds.k == FoldSettings().k else f"the most that {limit.k} {limit.what} allow"))
    if folds.strategy != FoldSettings().strategy:
        take("strategy", Choice(folds.strategy, True, "--group-column is given"))
    return Checked(
        settings, folds, kind, len(competition.train_ids), len(competition.test_ids), competition.classes, submission_notes(competition),
        competition.task.name, describe_targets(competition),
    )


def write_config(inference: Inference, checked: Checked, config_path: Path, layout: str, written: list[Path]) -> InitResult:
    findings = list(inference.findings.values())
    why = {finding.key: ("" if finding.sure else "guess: ") + finding.why for finding in findings}
    if checked.settings.submission == "auto":
        why["submission"] = f"auto reads {checked.kind} off the sample"
    write_text(config_path, config_text(str(inference.source), checked.settings, checked.folds, why))
    return InitResult(
        config_path, layout, findings, written + [config_path], checked.n_train, checked.n_test, checked.classes, checked.kind, checked.notes,
        checked.task, checked.targets,
    )


def check_some_images(competition: Competition) -> None:
    """Decode a few train and test images: a folder of files Pillow cannot read fails now, not mid-run."""
    from ensemble.data.images import read_image

    for paths, ids in ((competition.train_image_paths(), competition.train_ids), (competition.test_image_paths(), competition.test_ids)):
        for row in np.unique(np.linspace(0, len(paths) - 1, num=min(3, len(paths))).astype(int)):
            read_image(paths[row], 8, ids[row])


def fold_settings(competition: Competition) -> tuple[FoldSettings, Limit]:
    """The default k, fewer when the targets (the largest class's rows) or the groups allow fewer;
    group folds when a group column is set. Checked by making the folds as `ens folds` will.
    Returns the settings and the limit that the targets and groups set."""
    from ensemble.data.folds import assign_folds, most_folds

    limit = most_folds(competition)
    strategy = "group" if competition.groups is not None else FoldSettings().strategy
    k = min(FoldSettings().k, limit.k)
    if k < 2:
        raise EnsError(f"{competition.train_csv}: {limit.k} {limit.what} cannot fill 2 folds")
    settings = FoldSettings(k=k, strategy=strategy)
    fold_of = assign_folds(competition, settings)
    if (len(fold_of) - np.bincount(fold_of, minlength=k)).min() < 2:
        raise EnsError(f"{competition.train_csv}: {len(fold_of)} rows are too few to train on {k} folds")
    return settings, limit


def submission_notes(competition: Competition) -> list[str]:
    """What the user should check by hand: choices the files cannot settle."""
    notes = []
    if competition.submission_kind == "labels" and len(competition.classes) == 2:
        # Numeric labels: the larger one is the positive class; text labels must be named.
        flags = "" if all(is_number(label) for label in competition.classes) else f" --positive-class {competition.classes[1]}"
        notes.append(
            "the sample holds labels; if the leaderboard scores probabilities (AUC, logloss), "
            f"run init again with --force --submission positive_probability{flags}"
            + (f" (or {competition.classes[0]}: the class the probability is about)" if flags else "")
        )
    return notes


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
