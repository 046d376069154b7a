"""The class-folder layout: `train/<class>/<image>` beside a test folder of images.

init writes the lists the CSV layout would have shipped (lists/train.csv, lists/test.csv and,
unless the competition has one, a labels-kind lists/sample_submission.csv), with ids that are
the images' paths relative to their folder, suffix included, so the rest of ens is unchanged.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from ensemble.config import CompetitionSettings
from ensemble.data.competition import read_table
from ensemble.errors import EnsError
from ensemble.init import files
from ensemble.init.columns import Choice
from ensemble.init.inference import Given, Inference, InitResult, check, write_config
from ensemble.io import write_text


def from_class_folders(inference: Inference, given: Given, sample_path: Path | None, config_path: Path, force: bool) -> InitResult:
    """Write the lists, check them as a competition, then write ens.toml.

    sample_path: the competition's own sample submission, if it has one; its first column names
    the ids (which must be the test images' relative paths) and its other column the labels.
    """
    if given.image_suffix is not None:
        raise EnsError("--image-suffix: with one folder per class the ids are the images' paths, suffix included; leave it out")
    train_folder, classes = find_class_folders(inference, given)
    test_folder = find_test_folder(inference, given, train_folder)
    sample = read_table(sample_path, []) if sample_path else None
    id_column = given.id_column or (sample.columns[0] if sample is not None else "id")
    label_column = given.label_column or (sample.columns[1] if sample is not None and len(sample.columns) == 2 else "label")
    rows = [(path.relative_to(train_folder).as_posix(), sub.name) for sub in classes for path in files.image_files(sub)]
    train = pd.DataFrame(rows, columns=[id_column, label_column])
    test_ids = [path.relative_to(test_folder).as_posix() for path in files.image_files(test_folder)]
    if sample is not None and id_column in sample.columns:
        check_sample_ids(sample_path, sample[id_column], test_ids, test_folder)
    lists = {"train_csv": ("train.csv", train), "test_csv": ("test.csv", pd.DataFrame({id_column: test_ids}))}
    if sample_path is None:
        lists["sample_submission"] = ("sample_submission.csv", pd.DataFrame({id_column: test_ids, label_column: train[label_column].iloc[0]}))
    lists_dir = inference.root / files.LISTS_DIR
    if lists_dir.exists() and not force:
        raise EnsError(f"{lists_dir}: already exists; use --force to replace it")
    settings = CompetitionSettings(
        **{key: f"{files.LISTS_DIR}/{name}" for key, (name, _) in lists.items()},
        train_images=inference.relative(train_folder),
        test_images=inference.relative(test_folder),
        id_column=id_column,
        label_column=label_column,
        image_suffix="",
    )
    if given.task is None:  # a folder per class is a class per image, whatever the folders' names
        settings = dataclasses.replace(settings, task=inference.take("task", Choice("single_label", True, "one folder of images per class")))
    if sample_path is None:
        settings = dataclasses.replace(settings, submission="labels")
    else:
        settings = dataclasses.replace(settings, sample_submission=inference.relative(sample_path))
        inference.take("sample_submission", Choice(sample_path, True, "the only CSV named like a sample submission"))
    for key, (name, _) in lists.items():
        inference.take(key, Choice(getattr(settings, key), True, "written by init from the image folders"))
    for key, value in (("id_column", id_column), ("label_column", label_column)):
        how = f"given with --{key.replace('_', '-')}" if getattr(given, key) else ("named as in the sample" if sample_path else "the name init gives it")
        inference.take(key, Choice(value, True, how))
    inference.take("image_suffix", Choice("", True, "ids are the images' paths, suffix included"))

    # The lists go to a hidden folder, renamed into place once the workspace checks out.
    inference.root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=inference.root, prefix=f".{files.LISTS_DIR}."))
    try:
        for name, frame in lists.values():
            write_text(staging / name, frame.to_csv(index=False))
        try:
            checked = check(inference, dataclasses.replace(settings, **{key: f"{staging.name}/{name}" for key, (name, _) in lists.items()}), given)
        except EnsError as error:  # name the files as they will be called, not the staging folder
            raise EnsError(str(error).replace(str(staging), str(lists_dir))) from None
        if lists_dir.exists():
            shutil.rmtree(lists_dir)
        os.replace(staging, lists_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    checked = dataclasses.replace(checked, settings=dataclasses.replace(checked.settings, **{key: getattr(settings, key) for key in lists}))
    return write_config(inference, checked, config_path, "class folders", [lists_dir / name for name, _ in lists.values()])


def check_sample_ids(sample_path: Path, sample_ids: pd.Series, test_ids: list[str], test_folder: Path) -> None:
    """The lists are written from the images, so a mismatch is named in the files that exist."""
    known = set(test_ids)
    unknown = [image_id for image_id in sample_ids if image_id not in known]
    missing = sorted(set(test_ids) - set(sample_ids))
    if unknown or missing:
        which = f"id {unknown[0]!r} has no image" if unknown else f"image {missing[0]!r} has no row"
        raise EnsError(
            f"{sample_path}: {which} in {test_folder} (its ids must be the test images' paths relative to it, "
            f"such as {test_ids[0]!r}); name the test folder with --test-images, or the sample with --sample-submission"
        )


def find_class_folders(inference: Inference, given: Given) -> tuple[Path, list[Path]]:
    """(the folder of class folders, its class subfolders)."""
    if given.train_images:
        train_folder = files.given_folder(given.train_images, "--train-images")
        classes = files.class_folders(train_folder)
        if classes is None:
            problem = files.class_folders_problem(train_folder)
            if problem:
                raise EnsError(f"{problem} (--train-images)")
            raise EnsError(f"{train_folder}: --train-images: not one folder of images per class, and no train CSV found; name it with --train-csv")
        inference.take("train_images", Choice(train_folder, True, "given with --train-images"))
        return train_folder, classes
    source = inference.source
    candidates = [(folder, files.class_folders(folder)) for folder in files.image_folders(source, "train") if folder != source]
    layouts = [(folder, classes) for folder, classes in candidates if classes]
    if not layouts:
        named = [path for path in files.nearby(source) if path.is_dir() and files.plain(path.name).startswith("train")]
        problems = [problem for folder in dict.fromkeys(named + [folder for folder, _ in candidates]) if (problem := files.class_folders_problem(folder))]
        if problems:
            raise EnsError(problems[0])
        raise EnsError(
            f"{source}: no train CSV (train*.csv, *labels.csv) and no folder of class folders "
            "(train/<class>/<image>) here or one level down; name them with --train-csv or --train-images"
        )
    if len(layouts) > 1:
        raise EnsError(f"{source}: several folders of class folders: {', '.join(str(folder) for folder, _ in layouts)}; choose with --train-images")
    train_folder, classes = layouts[0]
    inference.take("train_images", Choice(train_folder, True, f"one folder of images per class ({len(classes)} classes)"))
    return train_folder, classes


def find_test_folder(inference: Inference, given: Given, train_folder: Path) -> Path:
    if given.test_images:
        test_folder = inference.take("test_images", Choice(files.given_folder(given.test_images, "--test-images"), True, "given with --test-images"))
        if not files.image_files(test_folder):
            raise EnsError(f"{test_folder}: --test-images: no images (looked for {', '.join(sorted(files.IMAGE_SUFFIXES))})")
        return test_folder
    source = inference.source
    test_folders = [
        folder for folder in files.image_folders(source, "test")
        if folder not in (source, train_folder) and files.plain(folder.name).startswith("test") and files.image_files(folder)
    ]
    if not test_folders:
        raise EnsError(f"{train_folder}: one folder per class, but no test folder of images beside it; name one with --test-images DIR")
    if len(test_folders) > 1:
        raise EnsError(f"{source}: several test folders: {', '.join(map(str, test_folders))}; choose with --test-images")
    return inference.take("test_images", Choice(test_folders[0], True, "the folder of images named test"))
