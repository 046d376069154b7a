"""Finding a competition's files as hosts ship them: CSVs by role, image folders, the image suffix.

Looks in the folder and one level below it (`data/train.csv`, `input/train_images/`), the
way an unzipped download usually nests. Names decide the candidates; the files decide between
them: an image folder is the one where every id has a file, and the suffix the one that
completes every id.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ensemble.errors import EnsError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
# Output folders of a workspace and the lists init writes itself: never read as competition input.
LISTS_DIR = "lists"
SKIPPED_DIRS = {"folds", "models", "submissions", LISTS_DIR, "__MACOSX"}
GENERIC_IMAGE_DIRS = {"images", "imgs", "image", "img", "data"}


def plain(name: str) -> str:
    """A file or folder name lowercased without its suffix and separators: 'Train_Labels.csv' -> 'trainlabels'."""
    return re.sub(r"[^a-z0-9]", "", Path(name).stem.lower())


def nearby(source: Path) -> list[Path]:
    """Every entry of `source` and of its subfolders, one level down, hidden and output folders skipped."""
    found = []
    for entry in sorted(source.iterdir()):
        if entry.name.startswith(".") or entry.name in SKIPPED_DIRS:
            continue
        found.append(entry)
        if entry.is_dir():
            found += [child for child in sorted(entry.iterdir()) if not child.name.startswith(".") and child.name not in SKIPPED_DIRS]
    return found


def is_sample_name(name: str) -> bool:
    return "sample" in plain(name) or "submission" in plain(name)


def is_test_name(name: str) -> bool:
    # test_labels.csv and solution files hold answers, not the ids to predict.
    stem = plain(name)
    return stem.startswith("test") and not any(word in stem for word in ("label", "solution", "answer"))


def is_train_name(name: str) -> bool:
    stem = plain(name)
    return not stem.startswith("test") and (stem.startswith("train") or stem.endswith("labels"))


@dataclass(frozen=True)
class Csvs:
    """Candidate CSVs by role, each list sorted by path."""

    train: list[Path]
    test: list[Path]
    sample: list[Path]


def find_csvs(source: Path) -> Csvs:
    csvs = [path for path in nearby(source) if path.is_file() and path.suffix.lower() == ".csv"]
    sample = [path for path in csvs if is_sample_name(path.name)]
    rest = [path for path in csvs if path not in sample]
    return Csvs(
        train=[path for path in rest if is_train_name(path.name)],
        test=[path for path in rest if is_test_name(path.name)],
        sample=sample,
    )


def image_folders(source: Path, role: str) -> list[Path]:
    """Folders named for `role` ('train' or 'test'), or generic image folders, and the source itself.

    A folder holding nothing but one subfolder (`train/train/`, as some zips unpack) stands for it.
    """
    folders = [source]
    for path in nearby(source):
        if path.is_dir() and (plain(path.name).startswith(role) or plain(path.name) in GENERIC_IMAGE_DIRS):
            folders.append(path)
    unwrapped = []
    for folder in folders:
        children = [child for child in folder.iterdir() if not child.name.startswith(".")]
        if folder != source and len(children) == 1 and children[0].is_dir():
            folder = children[0]
        unwrapped.append(folder)
    return list(dict.fromkeys(unwrapped))


def file_names(folder: Path) -> set[str]:
    with os.scandir(folder) as entries:
        return {entry.name for entry in entries if entry.is_file()}


def suffixes_completing(names: set[str], ids) -> Counter:
    """How many ids have a file `<id><suffix>` among `names`, per suffix ('' when the id is the file name)."""
    suffixes = {name[len(name) - len(Path(name).suffix):] for name in names if Path(name).suffix.lower() in IMAGE_SUFFIXES}
    counts = Counter()
    for suffix in sorted(suffixes) + [""]:
        counts[suffix] = sum(f"{image_id}{suffix}" in names for image_id in ids)
    return counts


@dataclass(frozen=True)
class ImageMatch:
    """A folder and the suffixes that complete every id there (more than one is ambiguous)."""

    folder: Path
    suffixes: list[str]
    counts: Counter


def match_images(folders: list[Path], ids, suffix: str | None) -> list[ImageMatch]:
    """For each folder, the suffixes (only `suffix` when given) under which every id has an image."""
    matches = []
    for folder in folders:
        counts = suffixes_completing(file_names(folder), ids)
        wanted = [suffix] if suffix is not None else list(counts)
        complete = [candidate for candidate in wanted if counts.get(candidate, 0) == len(ids)]
        matches.append(ImageMatch(folder, complete, counts))
    return matches


def describe_counts(counts: Counter, n_ids: int) -> str:
    found = [f"{suffix or 'no suffix'} for {count}" for suffix, count in counts.most_common() if count]
    return f"images found {', '.join(found)} of {n_ids} ids" if found else f"no image for any of {n_ids} ids"


def image_files(folder: Path) -> list[Path]:
    """Image files under `folder`, at any depth, sorted."""
    return sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."))


def class_folders(folder: Path) -> list[Path] | None:
    """The class subfolders when `folder` holds one folder of images per class (`train/cat/001.jpg`), else None."""
    entries = [entry for entry in sorted(folder.iterdir()) if not entry.name.startswith(".")]
    subfolders = [entry for entry in entries if entry.is_dir()]
    loose_images = [entry for entry in entries if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES]
    if len(subfolders) < 2 or loose_images:
        return None
    if not all(any(path.suffix.lower() in IMAGE_SUFFIXES for path in sub.iterdir() if path.is_file()) for sub in subfolders):
        return None
    return subfolders


def class_folders_problem(folder: Path) -> str | None:
    """Why `folder`, holding subfolders of images, is not a folder of class folders; None when it is
    one or plainly something else (no subfolder holds images)."""
    entries = [entry for entry in sorted(folder.iterdir()) if not entry.name.startswith(".")]
    subfolders = [entry for entry in entries if entry.is_dir() and entry.name not in SKIPPED_DIRS]
    with_images = [sub for sub in subfolders if any(path.suffix.lower() in IMAGE_SUFFIXES for path in sub.iterdir() if path.is_file())]
    if not with_images or any(entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES for entry in entries):
        return None
    empty = [sub.name for sub in subfolders if sub not in with_images]
    if empty:
        return f"{folder}: class folder{'s' if len(empty) > 1 else ''} {', '.join(map(repr, empty))} hold{'' if len(empty) > 1 else 's'} no images; add images or remove the folder"
    if len(with_images) == 1:
        return f"{folder}: one class folder ({with_images[0].name!r}); a competition needs two classes or more"
    return None


def given_folder(path: str, what: str) -> Path:
    folder = Path(os.path.expanduser(path)).resolve()
    if not folder.is_dir():
        raise EnsError(f"{folder}: {what}: folder not found")
    return folder


def given_file(path: str, what: str) -> Path:
    file = Path(os.path.expanduser(path)).resolve()
    if not file.is_file():
        raise EnsError(f"{file}: {what}: file not found")
    return file
