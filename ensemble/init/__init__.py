"""`ens init`: a commented ens.toml inferred from a competition folder as hosts ship it.

Two layouts are understood:
- CSVs: a train CSV (train.csv, train_labels.csv, labels.csv), maybe a test CSV, a sample
  submission, and folders of images named by id (train/, test/, train_images/...), in the
  folder or one level below it;
- class folders: `train/<class>/<image>` beside a test folder of images. init writes
  lists/train.csv, lists/test.csv and a labels-kind lists/sample_submission.csv into the
  workspace, with ids that are the images' relative paths, so the rest of ens is unchanged.

Every guess is checked the way `ens folds` and `ens train-folds` will check it (the competition
is loaded with competition.load_competition, the folds are made with folds.assign_folds, a few
images are decoded) before ens.toml is written, so a workspace init accepts trains.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble import metrics, store
from ensemble.competition import Competition, load_competition, read_table
from ensemble.config import CONFIG_FILE, CompetitionSettings, FoldSettings, TrainSettings, Workspace
from ensemble.errors import EnsError
from ensemble.init import files
from ensemble.init.columns import Choice, check_column, pick_csv, pick_id_column, pick_label_column, pick_train_csv
from ensemble.init.toml import config_text


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
        """A path as ens.toml holds it: relative to the workspace when inside it."""
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)


def init_workspace(source: str | Path, given: Given = Given(), workspace: str | Path | None = None, force: bool = False) -> InitResult:
    """Infer ens.toml for the competition in `source` and write it into `workspace` (default: `source`)."""
    source = files.given_folder(str(source), "competition folder")
    root = Path(workspace).resolve() if workspace else source
    config_path = root / CONFIG_FILE
    if config_path.exists() and not force:
        raise EnsError(f"{config_path}: already exists; use --force to replace it")
    if given.metric is not None:
        metrics.get(given.metric)
    inference = Inference(source, root)
    csvs = files.find_csvs(source)
    if given.train_csv is None and not csvs.train and not csvs.sample:
        return from_class_folders(inference, given, config_path, force)
    checked = check(inference, from_csvs(inference, csvs, given), given)
    return write_config(inference, checked, config_path, "csv", [])


def from_csvs(inference: Inference, csvs: files.Csvs, given: Given) -> CompetitionSettings:
    source, take = inference.source, inference.take
    if given.sample_submission:
        sample_path = take("sample_submission", Choice(files.given_file(given.sample_submission, "--sample-submission"), True, "given with --sample-submission"))
    else:
        sample_path = take("sample_submission", pick_csv(csvs.sample, source, "sample submission", "--sample-submission"))
    if sample_path is None:
        raise EnsError(f"{source}: no sample submission (a CSV named *sample* or *submission*) here or one level down; name it with --sample-submission")
    sample = read_table(sample_path, [])
    if given.test_csv:
        test_path = take("test_csv", Choice(files.given_file(given.test_csv, "--test-csv"), True, "given with --test-csv"))
    else:
        test_path = pick_csv(csvs.test, source, "test CSV", "--test-csv").value
        take("test_csv", Choice(test_path, True, "the only CSV named like a test CSV") if test_path else Choice(sample_path, True, "no test CSV: the sample's ids are the test ids"))
    test = read_table(test_path, []) if test_path else None
    if given.train_csv:
        train_path = take("train_csv", Choice(files.given_file(given.train_csv, "--train-csv"), True, "given with --train-csv"))
    else:
        frames = {path: read_table(path, []) for path in csvs.train}
        train_path = take("train_csv", pick_train_csv(csvs.train, frames, sample, source))
    if train_path is None:
        raise EnsError(f"{source}: no train CSV (train*.csv or *labels.csv) here or one level down; name it with --train-csv")
    train = read_table(train_path, [])
    tables = {train_path: train, test_path: test, sample_path: sample}
    if given.id_column:
        id_column = take("id_column", check_column(given.id_column, tables, "--id-column"))
    else:
        id_column = take("id_column", pick_id_column(train, test, sample, train_path))
    if given.label_column:
        label_column = take("label_column", check_column(given.label_column, {train_path: train}, "--label-column"))
    else:
        label_column = take("label_column", pick_label_column(train, sample, id_column, train_path))
    test_ids = (test if test is not None else sample)[id_column]
    train_folder, test_folder, suffix = find_image_folders(inference, given, train[id_column], test_ids)
    return CompetitionSettings(
        train_csv=inference.relative(train_path),
        test_csv=inference.relative(test_path or sample_path),
        sample_submission=inference.relative(sample_path),
        train_images=inference.relative(train_folder),
        test_images=inference.relative(test_folder),
        id_column=id_column,
        label_column=label_column,
        image_suffix=suffix,
    )


def folder_rank(folder: Path, source: Path, role: str) -> int:
    """Prefer a folder named for its role (train/) to a generic one (images/), and that to the competition folder."""
    if folder == source:
        return 2
    return 0 if any(files.plain(part).startswith(role) for part in folder.relative_to(source).parts) else 1


def find_image_folders(inference: Inference, given: Given, train_ids: pd.Series, test_ids: pd.Series) -> tuple[Path, Path, str]:
    """(train folder, test folder, suffix): the folders where every id has an image, one suffix for both."""
    source = inference.source
    suffix = given.image_suffix
    if suffix and not suffix.startswith("."):
        suffix = "." + suffix
    matches = {}
    for role, ids in (("train", train_ids), ("test", test_ids)):
        flag = f"--{role}-images"
        folder = getattr(given, f"{role}_images")
        folders = [files.given_folder(folder, flag)] if folder else files.image_folders(source, role)
        found = files.match_images(folders, list(ids), suffix)
        complete = [match for match in found if match.suffixes]
        if not complete:
            best = max(found, key=lambda match: max(match.counts.values(), default=0))
            mixed = sum(best.counts.values()) >= len(ids) and len([count for count in best.counts.values() if count]) > 1
            hint = "; ens needs one suffix for every image" if mixed else ""
            raise EnsError(
                f"{best.folder}: no folder holds an image for every {role} id ({files.describe_counts(best.counts, len(ids))}{hint}); "
                f"name the folder with {flag}, the suffix with --image-suffix"
            )
        matches[role] = sorted(complete, key=lambda match: folder_rank(match.folder, source, role))
    pairs = [
        (train, test, candidate)
        for train in matches["train"] for test in matches["test"] for candidate in train.suffixes if candidate in test.suffixes
    ]
    if not pairs:
        raise EnsError(
            f"{source}: train images end in {matches['train'][0].suffixes} but test images in {matches['test'][0].suffixes}; "
            "ens needs one suffix for both"
        )
    suffixes = sorted({candidate for _, _, candidate in pairs})
    if len(suffixes) > 1:
        raise EnsError(f"{matches['train'][0].folder}: every id has an image with several suffixes: {suffixes}; choose one with --image-suffix")
    train, test, suffix = pairs[0]
    for role, match in (("train", train), ("test", test)):
        others = [other.folder for other in matches[role] if other.folder != match.folder]
        how = f"given with --{role}-images" if getattr(given, f"{role}_images") else f"holds an image for every {role} id"
        inference.take(f"{role}_images", Choice(match.folder, not others, how + (f"; so does {others[0]}" if others else "")))
    how = "given with --image-suffix" if given.image_suffix is not None else "completes every id to an image file"
    inference.take("image_suffix", Choice(suffix, True, how))
    return train.folder, test.folder, suffix


def from_class_folders(inference: Inference, given: Given, config_path: Path, force: bool) -> InitResult:
    """train/<class>/<image> beside a test folder: write the lists the CSV layout would have shipped."""
    source, root = inference.source, inference.root
    if given.train_images:
        train_folder = files.given_folder(given.train_images, "--train-images")
        classes = files.class_folders(train_folder)
        if classes is None:
            raise EnsError(f"{train_folder}: --train-images: not one folder of images per class, and no train CSV found; name it with --train-csv")
    else:
        layouts = [(folder, files.class_folders(folder)) for folder in files.image_folders(source, "train") if folder != source]
        layouts = [(folder, classes) for folder, classes in layouts if classes]
        if not layouts:
            raise EnsError(
                f"{source}: no train CSV (train*.csv, *labels.csv), no sample submission and no folder of class folders "
                "(train/<class>/<image>) here or one level down; name them with --train-csv or --train-images"
            )
        if len(layouts) > 1:
            raise EnsError(f"{source}: several folders of class folders: {', '.join(str(folder) for folder, _ in layouts)}; choose with --train-images")
        train_folder, classes = layouts[0]
    inference.take("train_images", Choice(train_folder, not given.train_images is None, "given with --train-images" if given.train_images else f"one folder of images per class ({len(classes)} classes)"))
    if given.test_images:
        test_folder = files.given_folder(given.test_images, "--test-images")
        how = "given with --test-images"
    else:
        test_folders = [
            folder for folder in files.image_folders(source, "test")
            if folder not in (source, train_folder) and files.plain(folder.name).startswith("test") and files.image_files(folder)
        ]
        if not test_folders:
            raise EnsError(f"{train_folder}: one folder per class, but no test folder of images beside it; name one with --test-images DIR")
        if len(test_folders) > 1:
            raise EnsError(f"{source}: several test folders: {', '.join(map(str, test_folders))}; choose with --test-images")
        test_folder, how = test_folders[0], "the folder of images named test"
    inference.take("test_images", Choice(test_folder, True, how))

    id_column, label_column = given.id_column or "id", given.label_column or "label"
    rows = [(path.relative_to(train_folder).as_posix(), sub.name) for sub in classes for path in files.image_files(sub)]
    train = pd.DataFrame(rows, columns=[id_column, label_column])
    test_ids = [path.relative_to(test_folder).as_posix() for path in files.image_files(test_folder)]
    if not test_ids:
        raise EnsError(f"{test_folder}: no images (looked for {', '.join(sorted(files.IMAGE_SUFFIXES))})")
    lists = {
        "train_csv": ("train.csv", train),
        "test_csv": ("test.csv", pd.DataFrame({id_column: test_ids})),
        "sample_submission": ("sample_submission.csv", pd.DataFrame({id_column: test_ids, label_column: train[label_column].iloc[0]})),
    }
    lists_dir = root / files.LISTS_DIR
    if lists_dir.exists() and not force:
        raise EnsError(f"{lists_dir}: already exists; use --force to replace it")
    settings = CompetitionSettings(
        **{key: f"{files.LISTS_DIR}/{name}" for key, (name, _) in lists.items()},
        train_images=inference.relative(train_folder),
        test_images=inference.relative(test_folder),
        id_column=id_column,
        label_column=label_column,
        image_suffix="",
        submission="labels",
    )
    for key, (name, _) in lists.items():
        inference.take(key, Choice(getattr(settings, key), True, "written by init from the image folders"))
    inference.take("image_suffix", Choice("", True, "ids are the images' paths, suffix included"))
    # The lists are written to a hidden folder and renamed into place once the workspace checks out.
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{files.LISTS_DIR}."))
    try:
        for name, frame in lists.values():
            store.write_text(staging / name, frame.to_csv(index=False))
        checked = check(inference, dataclasses.replace(settings, **{key: f"{staging.name}/{name}" for key, (name, _) in lists.items()}), given)
        if lists_dir.exists():
            shutil.rmtree(lists_dir)
        os.replace(staging, lists_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    checked = dataclasses.replace(checked, settings=dataclasses.replace(checked.settings, **{key: getattr(settings, key) for key in lists}))
    return write_config(inference, checked, config_path, "class folders", [lists_dir / name for name, _ in lists.values()])


@dataclass(frozen=True)
class Checked:
    """Settings that loaded as a competition, and what loading it told."""

    settings: CompetitionSettings
    k: int
    kind: str
    n_train: int
    n_test: int
    classes: tuple[str, ...]
    notes: list[str]


def check(inference: Inference, settings: CompetitionSettings, given: Given) -> Checked:
    """Load the competition as `ens folds` and `ens train-folds` will, make its folds, decode a few images."""
    settings = dataclasses.replace(
        settings,
        **{key: value for key in ("group_column", "metric", "submission", "positive_class") if (value := getattr(given, key)) is not None},
    )
    competition = load_competition(Workspace(inference.root, settings, FoldSettings(), TrainSettings()))
    check_some_images(competition)
    kind = competition.submission_kind
    if given.metric is None:
        settings = dataclasses.replace(settings, metric="accuracy" if kind == "labels" else "logloss")
    k = fold_count(competition)
    take = inference.take
    if given.submission:
        take("submission", Choice(kind, True, "given with --submission"))
    else:
        take("submission", Choice(kind, True, "read off the sample's columns" if settings.submission == "auto" else "the sample init writes holds labels"))
    if given.metric:
        take("metric", Choice(settings.metric, True, "given with --metric"))
    else:
        take("metric", Choice(settings.metric, False, f"{settings.metric} suits a {kind} submission; set the leaderboard's metric"))
    take("k", Choice(k, True, "the default" if k == FoldSettings().k else f"the largest class has {k} rows"))
    return Checked(settings, k, kind, len(competition.train_ids), len(competition.test_ids), competition.classes, submission_notes(competition))


def write_config(inference: Inference, checked: Checked, config_path: Path, layout: str, written: list[Path]) -> InitResult:
    findings = list(inference.findings.values())
    why = {finding.key: ("" if finding.sure else "guess: ") + finding.why for finding in findings}
    if checked.settings.submission == "auto":
        why["submission"] = f"auto reads {checked.kind} off the sample"
    store.write_text(config_path, config_text(str(inference.source), checked.settings, FoldSettings(k=checked.k), why))
    return InitResult(
        config_path, layout, findings, written + [config_path], checked.n_train, checked.n_test, checked.classes, checked.kind, checked.notes
    )


def check_some_images(competition: Competition) -> None:
    """Decode a few train and test images: a folder of files Pillow cannot read fails now, not mid-run."""
    from ensemble.images import read_image

    for paths, ids in ((competition.train_image_paths(), competition.train_ids), (competition.test_image_paths(), competition.test_ids)):
        for row in np.unique(np.linspace(0, len(paths) - 1, num=min(3, len(paths))).astype(int)):
            read_image(paths[row], 8, ids[row])


def fold_count(competition: Competition) -> int:
    """The default k, fewer when the largest class is smaller; checked by making the folds as `ens folds` will."""
    from ensemble.folds import assign_folds

    largest = int(np.bincount(competition.targets).max())
    k = min(FoldSettings().k, largest)
    if k < 2:
        raise EnsError(f"{competition.train_csv}: every class has a single row; ens needs at least 2 rows of a class to make folds")
    fold_of = assign_folds(competition, FoldSettings(k=k))
    if (len(fold_of) - np.bincount(fold_of, minlength=k)).min() < 2:
        raise EnsError(f"{competition.train_csv}: {len(fold_of)} rows are too few to train on {k} folds")
    return k


def submission_notes(competition: Competition) -> list[str]:
    """What the user should check by hand: choices the files cannot settle."""
    notes = []
    if competition.submission_kind == "labels" and len(competition.classes) == 2:
        notes.append(
            "the sample holds labels; if the leaderboard scores probabilities (AUC, logloss), "
            "run init again with --force --submission positive_probability"
        )
    return notes
