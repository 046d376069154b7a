"""The experiment folder: its layout, logits files, and finding experiments by name.

Layout of models/<experiment>/ (docs/files.md):

    settings.json          how it was made: train settings, classes, hashes of train.csv and folds
    scores.json            metric, per-fold scores and timings, OOF score once every fold is done
    oof.npz                OOF logits of every training id, in train.csv order
    test.npz               test logits, the mean over fold models, in test.csv order
    fold<k>/model.pt       the fold's final weights
    fold<k>/oof.npz        logits of the fold's held-out ids, from the model that did not see them
    fold<k>/test.npz       the fold model's test logits
    fold<k>/views.npz      every TTA view's logits before merging (ens predict --keep-views)
    fold<k>/result.json    the fold's score and timing; written last, so it marks the fold done
    fold<k>/resume.pt      training state after the last finished epoch, while the fold runs
    fold<k>/resume.json    resume.pt's sha256 (and the one it replaced), checked on resume

Every file is written atomically through ensemble.io.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensemble.errors import EnsError
from ensemble.io import read_json, read_npz, sha256_file, write_npz

# \Z, not $: `$` also matches before a final newline, which would let "r10\n" through.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
# File systems allow 255 bytes a name; a blend writes ".NAME.json.XXXXXXXX.tmp" beside it.
NAME_MAX = 200


def check_name(name: str, what: str) -> str:
    """Experiment and blend names become folder and file names: keep them plain and short."""
    if not NAME_PATTERN.match(name):
        raise EnsError(
            f"{what} name {name!r} must start with a letter or digit and hold only letters, "
            "digits, '.', '_' and '-'"
        )
    if len(name) > NAME_MAX:
        raise EnsError(f"{what} name {name[:20]!r}... has {len(name)} characters; at most {NAME_MAX}")
    return name


def positions(ids, wanted) -> np.ndarray:
    """Row of each of `wanted` in `ids`: `values[positions(ids, wanted)]` is in `wanted`'s order.

    Raises KeyError naming the first id of `wanted` that `ids` lacks.
    """
    row_of = {image_id: row for row, image_id in enumerate(ids)}
    return np.array([row_of[image_id] for image_id in wanted], dtype=np.int64)


@dataclass(frozen=True)
class Logits:
    """Model outputs with the ids and class order they belong to.

    ids: str (n_samples,); classes: the label of each column; values: float32 (n_samples, n_classes).
    """

    ids: np.ndarray
    classes: tuple[str, ...]
    values: np.ndarray


def save_logits(path: Path, logits: Logits) -> None:
    write_npz(
        path,
        ids=np.asarray(logits.ids, dtype=str),
        classes=np.asarray(logits.classes, dtype=str),
        logits=np.asarray(logits.values, dtype=np.float32),
    )


def load_logits(path: Path) -> Logits:
    """Read a logits file, refusing a damaged one: wrong shapes, duplicate ids, NaN or inf."""
    archive = read_npz(path, "logits", ("ids", "classes", "logits"))
    ids, classes, values = archive["ids"], archive["classes"], archive["logits"]
    if values.ndim != 2 or values.shape != (len(ids), len(classes)):
        raise EnsError(
            f"{path}: logits have shape {values.shape}, expected ({len(ids)}, {len(classes)})"
        )
    bad_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad_rows):
        row = bad_rows[0]
        raise EnsError(f"{path}: row {row} (id {str(ids[row])!r}) has a NaN or infinite logit")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise EnsError(f"{path}: id {str(unique[counts > 1][0])!r} appears more than once")
    return Logits(ids=ids.astype(str), classes=tuple(classes.tolist()), values=values)


class ExperimentDir:
    """Paths of one experiment's artifacts; see the module docstring for the layout."""

    def __init__(self, models_dir: Path, name: str):
        self.name = check_name(name, "experiment")
        self.root = Path(models_dir) / name

    settings_path = property(lambda self: self.root / "settings.json")
    scores_path = property(lambda self: self.root / "scores.json")
    oof_path = property(lambda self: self.root / "oof.npz")
    test_path = property(lambda self: self.root / "test.npz")
    # A frozen-features experiment's features (training/features.py), with the seconds they took.
    features_path = property(lambda self: self.root / "features.npz")

    def features_seconds(self) -> float:
        """Seconds the experiment's frozen features took to compute (0 without them); a file that
        cannot be read counts 0 (the run that uses it computes them again)."""
        if not self.features_path.is_file():
            return 0.0
        try:
            with np.load(self.features_path) as saved:
                return float(saved["seconds"]) if "seconds" in saved.files else 0.0
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return 0.0

    def fold_dir(self, fold: int) -> Path:
        return self.root / f"fold{fold}"

    def checkpoint_path(self, fold: int) -> Path:
        return self.fold_dir(fold) / "model.pt"

    def fold_oof_path(self, fold: int) -> Path:
        return self.fold_dir(fold) / "oof.npz"

    def fold_test_path(self, fold: int) -> Path:
        return self.fold_dir(fold) / "test.npz"

    def fold_result_path(self, fold: int) -> Path:
        return self.fold_dir(fold) / "result.json"

    def views_path(self, fold: int) -> Path:
        return self.fold_dir(fold) / "views.npz"

    def resume_path(self, fold: int) -> Path:
        return self.fold_dir(fold) / "resume.pt"

    def resume_hash_path(self, fold: int) -> Path:
        """resume.pt's sha256 (nets/torch_files.save_resume writes it)."""
        return self.fold_dir(fold) / "resume.json"

    def lock_path(self, part: str) -> Path:
        """models/.locks/<name>/<part>.lock: outside the experiment's folder, which --force
        may delete whole while the locks are held."""
        return self.root.parent / ".locks" / self.name / f"{part}.lock"

    def exists(self) -> bool:
        return self.settings_path.is_file()

    def done_folds(self) -> list[int]:
        return sorted(
            int(path.parent.name[len("fold"):])
            for path in self.root.glob("fold*/result.json")
            if path.parent.name[len("fold"):].isdigit()
        )

    def is_complete(self) -> bool:
        return self.oof_path.is_file() and self.test_path.is_file()


def checkpoint_sha256(experiment: ExperimentDir, fold: int) -> str | None:
    """sha256 of a fold's model.pt: as training recorded it in result.json, else hashed now
    (folds trained before it was recorded); None when the fold has no checkpoint."""
    result_path = experiment.fold_result_path(fold)
    recorded = read_json(result_path).get("checkpoint_sha256") if result_path.is_file() else None
    if recorded:
        return recorded
    path = experiment.checkpoint_path(fold)
    return sha256_file(path) if path.is_file() else None


def experiment_names(models_dir: Path) -> list[str]:
    """Every experiment folder under models/, by name."""
    if not Path(models_dir).is_dir():
        return []
    return sorted(
        path.parent.name
        for path in Path(models_dir).glob("*/settings.json")
        if NAME_PATTERN.match(path.parent.name) and len(path.parent.name) <= NAME_MAX
    )


def open_experiment(models_dir: Path, name: str) -> ExperimentDir:
    """An existing experiment, or an error listing the ones there are."""
    experiment = ExperimentDir(models_dir, name)
    if not experiment.exists():
        known = ", ".join(experiment_names(models_dir)) or "none yet"
        raise EnsError(f"{experiment.root}: no experiment named {name!r}; experiments: {known}")
    return experiment
