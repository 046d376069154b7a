"""`ens init`: a commented ens.toml inferred from a competition folder as hosts ship it.

Two layouts are understood:
- CSVs: a train CSV (train.csv, train_labels.csv, labels.csv), maybe a test CSV, a sample
  submission, and folders of images named by id (train/, test/, train_images/...), in the
  folder or one level below it;
- class folders: `train/<class>/<image>` beside a test folder of images. init writes
  lists/train.csv, lists/test.csv and (without a sample submission) a labels-kind
  lists/sample_submission.csv into the workspace, with ids that are the images' relative
  paths, so the rest of ens is unchanged.

Every guess is checked the way `ens folds` and `ens train-folds` will check it (the competition
is loaded with competition.load_competition, the folds are made with folds.assign_folds, a few
images are decoded) before ens.toml is written, so a workspace init accepts trains.
"""

from __future__ import annotations

from pathlib import Path

from ensemble import metrics, tasks
from ensemble.config import CONFIG_FILE
from ensemble.errors import EnsError
from ensemble.init import files
from ensemble.init.class_layout import from_class_folders
from ensemble.init.csv_layout import from_csvs, given_or_picked
from ensemble.init.inference import Given, Inference, InitResult, check, write_config
from ensemble.init.targets import UnsettledTask

__all__ = ["LAYOUTS", "Given", "InitResult", "init_workspace"]

LAYOUTS = ("auto", "folders", "csv")


def init_workspace(
    source: str | Path, given: Given = Given(), workspace: str | Path | None = None, force: bool = False, layout: str = "auto"
) -> InitResult:
    """Infer ens.toml for the competition in `source` and write it into `workspace` (default: `source`).

    layout: "folders" (train/<class>/<image>), "csv" (a train CSV), or "auto": folders when no
    train CSV is found or --train-images is a folder of class folders, else csv.
    """
    if layout not in LAYOUTS:
        raise EnsError(f"--layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
    if layout == "folders" and given.train_csv is not None:
        raise EnsError("--train-csv: the folders layout reads labels off the class folders; leave --train-csv out, or use --layout csv")
    source = files.given_folder(str(source), "competition folder")
    root = Path(workspace).resolve() if workspace else source
    config_path = root / CONFIG_FILE
    if config_path.exists() and not force:
        raise EnsError(f"{config_path}: already exists; use --force to replace it")
    if given.metric is not None:
        metrics.get(given.metric)
    if given.label_separator == "":
        raise EnsError('--label-separator: empty; give the text between tags, or " " for any whitespace')
    if given.task is not None:
        try:
            tasks.get(given.task)
        except EnsError as error:
            raise EnsError(f"--task: {error}") from None
    inference = Inference(source, root)
    csvs = files.find_csvs(source)
    if layout == "auto" and given.train_csv is None:
        given_classes = given.train_images and files.class_folders(files.given_folder(given.train_images, "--train-images"))
        layout = "folders" if not csvs.train or given_classes else "auto"
    if layout == "folders":
        sample = given_or_picked(inference, given.sample_submission, "--sample-submission", csvs.sample, "sample submission")
        return from_class_folders(inference, given, sample, config_path, force)
    try:
        checked = check(inference, from_csvs(inference, csvs, given), given)
    except EnsError as error:
        if layout == "auto" and not isinstance(error, UnsettledTask) and any(files.class_folders(folder) for folder in files.image_folders(source, "train") if folder != source):
            raise EnsError(f"{error}; or, if the images are one folder per class, use --layout folders") from None
        raise
    return write_config(inference, checked, config_path, "csv", [])


