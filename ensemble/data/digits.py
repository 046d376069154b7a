"""The demo's competition: scikit-learn's bundled digits written as a small real image competition.

The 1,797 8x8 digit scans become PNG files; a stratified fifth is held out as the test set,
whose answers go to data/test_labels.csv (read only by the demo, to score the submission the
pipeline writes without them).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.config import CONFIG_FILE, CompetitionSettings, Workspace
from ensemble.errors import EnsError
from ensemble.io import to_toml, write_text

MARKER = ".ens-demo"  # says a folder was written by the demo, so --force may clear it
WRITTEN = ("data", "folds", "models", "submissions", CONFIG_FILE, MARKER)


def write_digits_competition(directory: Path, force: bool = False, seed: int = 0) -> Workspace:
    """Write the digits competition into `directory`, or reuse the one an interrupted demo wrote.

    Refuses a path that is a file, and a non-empty folder the demo did not write: the demo
    never replaces a user's files.
    """
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise EnsError(f"{directory}: is a file; give `ens demo` a new or empty folder")
    ours = (directory / MARKER).exists()
    if directory.is_dir() and any(directory.iterdir()) and not ours:
        raise EnsError(f"{directory}: not empty and not written by `ens demo`; give it a new or empty folder")
    if ours and (directory / CONFIG_FILE).exists() and not force:
        return Workspace.load(directory)  # written in full (ens.toml comes last): resume
    if ours:  # written by the demo, in part, or in full and --force given
        for name in WRITTEN:
            path = directory / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    # The marker first, so a folder the demo was stopped in the middle of writing is its own.
    write_text(directory / MARKER, "written by `ens demo`; `ens demo --force` may replace this folder's contents\n")

    digits = load_digits()
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)
    ids = np.array([f"digit{index:04d}" for index in range(len(pixels))])
    train_rows, test_rows = train_test_split(
        np.arange(len(ids)), test_size=0.2, stratify=digits.target, random_state=seed
    )
    # Digits 0-9 could be counts as well as classes: the demo says which.
    settings = CompetitionSettings(task="single_label", metric="accuracy")
    data = directory / "data"
    for rows, folder in ((train_rows, settings.train_images), (test_rows, settings.test_images)):
        (directory / folder).mkdir(parents=True, exist_ok=True)
        for row in rows:
            Image.fromarray(pixels[row], mode="L").save(directory / folder / f"{ids[row]}{settings.image_suffix}")
    labels = digits.target.astype(str)
    pd.DataFrame({"id": ids[train_rows], "label": labels[train_rows]}).to_csv(directory / settings.train_csv, index=False)
    pd.DataFrame({"id": ids[test_rows]}).to_csv(directory / settings.test_csv, index=False)
    pd.DataFrame({"id": ids[test_rows], "label": "0"}).to_csv(directory / settings.sample_submission, index=False)
    pd.DataFrame({"id": ids[test_rows], "label": labels[test_rows]}).to_csv(data / "test_labels.csv", index=False)
    for folder in ("folds", "models", "submissions"):
        (directory / folder).mkdir(exist_ok=True)
    write_text(directory / CONFIG_FILE, to_toml({"competition": settings}))
    return Workspace.load(directory)
