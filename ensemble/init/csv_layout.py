"""The CSV layout: a train CSV, maybe a test CSV, a sample submission, folders of images named by id."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ensemble.config import CompetitionSettings
from ensemble.data.competition import read_table
from ensemble.errors import EnsError
from ensemble.init import files
from ensemble.init.columns import Choice, check_column, pick_csv, pick_id_column, pick_label_column, pick_train_csv
from ensemble.init.inference import Given, Inference


def given_or_picked(inference: Inference, path: str | None, flag: str, candidates: list[Path], role: str) -> Path | None:
    """The file given with `flag`, else the one candidate named like a `role` (None when there is none)."""
    if path:
        return inference.take(f"{flag[2:].replace('-', '_')}", Choice(files.given_file(path, flag), True, f"given with {flag}"))
    choice = pick_csv(candidates, inference.source, role, flag)
    return inference.take(f"{flag[2:].replace('-', '_')}", choice) if choice.value else None


def from_csvs(inference: Inference, csvs: files.Csvs, given: Given) -> CompetitionSettings:
    source, take = inference.source, inference.take
    sample_path = given_or_picked(inference, given.sample_submission, "--sample-submission", csvs.sample, "sample submission")
    if sample_path is None:
        raise EnsError(f"{source}: no sample submission (a CSV named *sample* or *submission*) here or one level down; name it with --sample-submission")
    sample = read_table(sample_path, [])
    test_path = given_or_picked(inference, given.test_csv, "--test-csv", csvs.test, "test CSV")
    if test_path is None:
        take("test_csv", Choice(sample_path, True, "no test CSV: the sample's ids are the test ids"))
    test = read_table(test_path, []) if test_path else None
    if given.train_csv:
        train_path = given_or_picked(inference, given.train_csv, "--train-csv", [], "train CSV")
    else:
        frames = {path: read_table(path, []) for path in csvs.train}
        train_path = take("train_csv", pick_train_csv(csvs.train, frames, sample, source))
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


