"""`ens predict`: logits again from an experiment's saved fold checkpoints, without training.

Two uses:
- `predict_experiment`: OOF and test logits again, under a TTA policy, cached as a new
  experiment that the leaderboard and blend treat like any other. Each fold's model predicts
  the rows it was held out from, so the OOF score stays an honest estimate. The new
  experiment records its source and the sha256 of every checkpoint it used; when the source
  is trained again, it is stale (scores.stale_reason). Resumable per fold and atomic, like
  training: result.json marks a fold done.
- `predict_test_set`: a new test set (a code competition's hidden test, a later batch),
  predicted by the mean of the fold models' logits, written as a CSV shaped like the sample
  submission.

Torch is imported inside functions: scores.py, which blend and leaderboard use, reads
nothing from here, but the CLI imports this module only in `ens predict`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble import __version__, metrics
from ensemble.artifacts.identity import with_legacy_values
from ensemble.artifacts.scores import check_usable, stale_reason
from ensemble.artifacts.store import (
    ExperimentDir,
    Logits,
    checkpoint_sha256,
    open_experiment,
)
from ensemble.artifacts.writer import (
    PREDICT,
    ExperimentResult,
    ExperimentWriter,
    write_fold,
)
from ensemble.config import Workspace
from ensemble.data.cache import cached_images, competition_images
from ensemble.data.competition import (
    check_image_files,
    check_unique,
    image_file,
    load_competition,
    read_table,
)
from ensemble.data.folds import read_folds
from ensemble.data.submission import submission_frame, to_csv_text
from ensemble.errors import EnsError
from ensemble.inference import tta
from ensemble.io import read_json, write_text


@dataclass(frozen=True)
class FoldPredicted:
    """Progress event after one fold's model has predicted."""

    fold: int
    metric: str
    score: float | None  # None for a new test set: it has no labels
    n_views: int
    seconds: float


@dataclass(frozen=True)
class TestSetResult:
    path: Path
    rows: int
    kind: str
    policy: str
    merge: str


def settings_of(experiment: ExperimentDir) -> dict:
    """settings.json with the values of keys older versions did not write filled in."""
    return with_legacy_values(read_json(experiment.settings_path))


def checkpoint_owner(models_dir: Path, experiment: ExperimentDir) -> ExperimentDir:
    """The experiment whose fold<k>/model.pt hold the weights: itself, or the source of a predicted one."""
    source = read_json(experiment.settings_path).get("source")
    return open_experiment(models_dir, source["experiment"]) if source else experiment


def check_fits(path: Path, checkpoint: dict, settings: dict, classes: tuple[str, ...]) -> None:
    """Refuse a checkpoint built for another model, size or classes than the experiment says."""
    expected = (settings["train"]["model"], settings["train"]["size"], tuple(classes))
    found = (checkpoint.get("model"), checkpoint.get("size"), tuple(checkpoint.get("classes", ())))
    if found != expected:
        raise EnsError(
            f"{path}: checkpoint is a {found[0]} at {found[1]}px for classes {list(found[2])[:5]}; "
            f"expected a {expected[0]} at {expected[1]}px for classes {list(expected[2])[:5]}"
        )


def net_from_checkpoint(checkpoint: dict, path: Path, device, memory_format):
    """The fold's network, rebuilt from what fold_job.rebuild_record stored, with its weights, in eval mode."""
    from ensemble.nets.networks import create_net

    net = create_net(checkpoint["model"], len(checkpoint["classes"]), checkpoint["size"], **checkpoint.get("net_options", {}))
    try:
        net.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise EnsError(f"{path}: weights do not fit a {checkpoint['model']}: {str(error).splitlines()[0]}") from None
    return net.to(device, memory_format=memory_format).eval()


def fold_checkpoints(owner: ExperimentDir, folds: list[int], settings: dict, classes) -> tuple[dict, int]:
    """Every fold's checkpoint, checked before anything is written; and the size they predict at."""
    from ensemble.nets.torch_files import load_checkpoint

    checkpoints = {}
    for fold in folds:
        path = owner.checkpoint_path(fold)
        checkpoints[fold] = load_checkpoint(path)
        check_fits(path, checkpoints[fold], settings, classes)
    sizes = {checkpoint["size"] for checkpoint in checkpoints.values()}
    if len(sizes) > 1:
        raise EnsError(f"{owner.root}: fold checkpoints predict at different sizes {sorted(sizes)}")
    return checkpoints, sizes.pop()


def fold_logits(checkpoint: dict, path: Path, device, train: dict, images: np.ndarray, rows, policy: tta.Policy) -> tta.Prediction:
    """train: the source experiment's settings.json train table (its batch size)."""
    from ensemble.inference.batches import Batches
    from ensemble.nets.devices import memory_format

    layout = memory_format(device, checkpoint["state_dict"])  # the layout the fold was trained in
    net = net_from_checkpoint(checkpoint, path, device, layout)
    prediction = tta.predict(net, Batches(net, device, train["batch_size"], layout), images, rows, policy)
    if not np.isfinite(prediction.views).all():
        raise EnsError(f"{path}: the model's logits hold NaN or infinity")
    return prediction


def choose_policy(settings: dict, views: str | None, merge: str | None) -> tta.Policy:
    """The policy asked for; what is not asked for defaults to the experiment's own."""
    return tta.parse_policy(views if views is not None else settings["train"]["tta"], merge or settings["train"]["tta_merge"])


def predict_experiment(
    workspace: Workspace,
    source: str,
    name: str,
    views: str | None = None,
    merge: str | None = None,
    device_name: str | None = None,
    keep_views: bool = False,
    force: bool = False,
    progress=None,
) -> ExperimentResult:
    """OOF and test logits of `source`'s fold models under a TTA policy, cached as experiment `name`.

    With keep_views, a fold predicted earlier without its views.npz is predicted again (the
    same logits) so that every fold keeps them.
    """
    import torch

    from ensemble.nets.devices import resolve_device

    experiment = ExperimentDir(workspace.models_dir, name)
    origin = open_experiment(workspace.models_dir, source)
    if experiment.root == origin.root:
        raise EnsError(f"--as {name}: name a new experiment; {source}'s own logits are never replaced by predict")
    settings = settings_of(origin)
    owner = checkpoint_owner(workspace.models_dir, origin)
    competition = load_competition(workspace)
    folds = read_folds(workspace, competition)
    metric = metrics.get(competition.settings.metric)
    check_usable(origin, competition)
    check_same_data(origin, settings, competition, folds)
    policy = choose_policy(settings, views, merge)
    device_name = device_name or workspace.train.device
    record = copy.deepcopy(settings)
    record["train"].update(tta=policy.spec, tta_merge=policy.merge)
    record.update(
        name=name,
        device=device_name,
        versions={"ens": __version__, "torch": torch.__version__},
        source={
            "experiment": owner.name,
            "checkpoints_sha256": [checkpoint_sha256(owner, fold) for fold in range(folds.k)],
        },
    )
    if experiment.exists() and "source" not in read_json(experiment.settings_path):
        raise EnsError(
            f"{experiment.root}: a trained experiment; predict never replaces trained weights, "
            "even with --force: name another --as"
        )
    with ExperimentWriter(experiment, record, folds.k, list(range(folds.k)), force, PREDICT) as writer:
        if keep_views:
            writer.redo([fold for fold in writer.plan.kept if not experiment.views_path(fold).is_file()])
        to_run = writer.plan.to_run
        if not to_run:
            return writer.result(competition, folds, metric, [])
        checkpoints, size = fold_checkpoints(owner, to_run, settings, competition.classes)
        device = resolve_device(device_name)
        # The decoded-image cache that training filled (or fills now): each image is decoded once.
        train_images, test_images, read = competition_images(workspace.root, competition, size)
        if progress:
            progress(read)
        writer.prepare()
        for fold in to_run:
            started = time.perf_counter()
            path = owner.checkpoint_path(fold)
            valid_rows = np.flatnonzero(folds.fold_of == fold)
            valid = fold_logits(checkpoints[fold], path, device, settings["train"], train_images, valid_rows, policy)
            test = fold_logits(checkpoints[fold], path, device, settings["train"], test_images, None, policy)
            score = metric.score(competition.targets[valid_rows], metrics.softmax(valid.logits))
            classes, valid_ids = competition.classes, competition.train_ids[valid_rows]
            result = {
                "fold": fold,
                "metric": metric.name,
                "score": score,
                "seconds": time.perf_counter() - started,
                "checkpoint_sha256": record["source"]["checkpoints_sha256"][fold],
                "history": [],
            }
            kept = views_arrays(policy, classes, (valid_ids, valid.views), (competition.test_ids, test.views)) if keep_views else None
            write_fold(experiment, fold, Logits(valid_ids, classes, valid.logits), Logits(competition.test_ids, classes, test.logits), result, kept)
            if progress:
                progress(FoldPredicted(fold, metric.name, score, policy.n_views, result["seconds"]))
            writer.combine(competition, folds, metric)
        return writer.result(competition, folds, metric, to_run)


def check_same_data(experiment: ExperimentDir, settings: dict, competition, folds) -> None:
    """Refuse a source made on other folds or test ids: its OOF rows or test rows would not match."""
    if settings["folds_sha256"] != folds.sha256:
        raise EnsError(f"{experiment.root}: trained on another folds file; its OOF rows would not match")
    if settings["test_ids_sha256"] != competition.test_ids_hash:
        raise EnsError(
            f"{experiment.root}: trained when test.csv held other ids; "
            "predict the new test set with --test-csv, --test-images and --out"
        )


def views_arrays(policy: tta.Policy, classes, valid: tuple, test: tuple) -> dict[str, np.ndarray]:
    """The arrays of fold<k>/views.npz: every view's logits before merging, for blends that weigh views.

    views: str (n_views,); oof_ids, test_ids: str; oof: float32 (n_views, n_valid, n_classes);
    test: float32 (n_views, n_test, n_classes).
    """
    return {
        "views": np.asarray([view.name for view in policy.views], dtype=str),
        "classes": np.asarray(classes, dtype=str),
        "oof_ids": np.asarray(valid[0], dtype=str),
        "oof": valid[1],
        "test_ids": np.asarray(test[0], dtype=str),
        "test": test[1],
    }


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
    policy = choose_policy(settings, views, merge)
    id_column = competition.settings.id_column
    test_csv, test_images = Path(test_csv).expanduser().resolve(), Path(test_images).expanduser().resolve()
    frame = read_table(test_csv, [id_column])
    check_unique(test_csv, frame[id_column])
    ids = frame[id_column].to_numpy(dtype=str)
    paths = [image_file(test_images, image_id, competition.settings.image_suffix) for image_id in ids]
    check_image_files(test_csv, ids, paths)
    checkpoints, size = fold_checkpoints(owner, list(range(k)), settings, competition.classes)
    device = resolve_device(device_name or workspace.train.device)
    images, _ = cached_images(workspace.root, paths, ids, size)  # read a chunk at a time, as training reads

    # Summed in float64 and cast once, as runs.summarize makes test.npz: the same images give the same numbers.
    total = np.zeros((len(ids), len(competition.classes)), dtype=np.float64)
    for fold in range(k):
        started = time.perf_counter()
        prediction = fold_logits(checkpoints[fold], owner.checkpoint_path(fold), device, settings["train"], images, None, policy)
        total += prediction.logits
        if progress:
            progress(FoldPredicted(fold, "", None, policy.n_views, time.perf_counter() - started))
    probs = metrics.softmax((total / k).astype(np.float32))
    template = pd.DataFrame({column: ids for column in competition.sample.columns})
    submission = submission_frame(template, id_column, competition.submission_shape, competition.submission_kind, probs)
    write_text(out, to_csv_text(submission))
    return TestSetResult(out, len(ids), competition.submission_kind, policy.spec, policy.merge)
