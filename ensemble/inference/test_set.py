"""`ens predict --test-csv`: a new test set (a code competition's hidden test, a later batch),
predicted by the mean of an experiment's fold models' logits and written as a CSV shaped like
the sample submission. Its images are read through the image cache, a chunk at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.artifacts.scores import stale_reason
from ensemble.artifacts.store import open_experiment
from ensemble.config import Workspace
from ensemble.data.cache import cached_images
from ensemble.data.competition import check_image_files, check_unique, image_file, load_competition, read_table
from ensemble.data.content import content_key
from ensemble.data.submission import submission_frame, to_csv_text
from ensemble.errors import EnsError
from ensemble.inference.checkpoints import checkpoint_owner, choose_policy, fold_checkpoints, fold_logits, settings_of
from ensemble.inference.predict import FoldPredicted
from ensemble.io import write_text


@dataclass(frozen=True)
class TestSetResult:
    path: Path
    rows: int
    kind: str
    policy: str
    merge: str


def predict_test_set(
    workspace: Workspace,
    name: str,
    test_csv: Path,
    test_images: Path,
    out: Path,
    views: str | None = None,
    merge: str | None = None,
    device_name: str | None = None,
    force: bool = False,
    progress=None,
) -> TestSetResult:
    """A CSV shaped like the sample submission for the ids of `test_csv`, in its order: the
    mean over `name`'s fold models of their logits, as probabilities or labels."""
    from ensemble.nets.devices import resolve_device

    experiment = open_experiment(workspace.models_dir, name)
    settings = settings_of(experiment)
    owner = checkpoint_owner(workspace.models_dir, experiment)
    competition = load_competition(workspace, check_images=False)
    stale = stale_reason(experiment, competition)
    if stale:
        raise EnsError(f"{experiment.root}: {stale}")
    k = settings["k"]
    missing = [fold for fold in range(k) if not owner.checkpoint_path(fold).is_file()]
    if missing:
        raise EnsError(f"{owner.root}: no checkpoint for folds {missing}; run `ens train-folds --name {owner.name}` to finish it")
    out = Path(out).expanduser().resolve()
    if out.exists() and not force:
        raise EnsError(f"{out}: already exists; use --force to replace it")
    policy = choose_policy(settings, views, merge, competition.task)
    id_column = competition.settings.id_column
    test_csv, test_images = Path(test_csv).expanduser().resolve(), Path(test_images).expanduser().resolve()
    frame = read_table(test_csv, [id_column])
    check_unique(test_csv, frame[id_column])
    ids = frame[id_column].to_numpy(dtype=str)
    paths = [image_file(test_images, image_id, competition.settings.image_suffix) for image_id in ids]
    check_image_files(test_csv, ids, paths)
    checkpoints, size = fold_checkpoints(owner, list(range(k)), settings, competition.classes)
    device = resolve_device(device_name or workspace.train.device)
    images, _ = cached_images(workspace.root, paths, ids, size, content_key(paths, test_images))  # a chunk at a time, as training reads

    # Summed in float64 and cast once, as artifacts.writer.summarize makes test.npz: the same images give the same numbers.
    total = np.zeros((len(ids), len(competition.classes)), dtype=np.float64)
    for fold in range(k):
        started = time.perf_counter()
        prediction = fold_logits(checkpoints[fold], owner.checkpoint_path(fold), device, settings["train"], images, None, policy, competition.task)
        total += prediction.logits
        if progress:
            progress(FoldPredicted(fold, "", None, policy.n_views, time.perf_counter() - started))
    probs = competition.task.outputs((total / k).astype(np.float32))
    template = pd.DataFrame({column: ids for column in competition.sample.columns})
    submission = submission_frame(template, id_column, competition.submission_shape, competition.submission_kind, probs)
    write_text(out, to_csv_text(submission))
    return TestSetResult(out, len(ids), competition.submission_kind, policy.spec, policy.merge)
