"""`ens predict`: logits again from an experiment's saved fold checkpoints, without training.

OOF and test logits again, under a TTA policy, cached as a new experiment that the
leaderboard and blend treat like any other. Each fold's model predicts the rows it was held
out from, so the OOF score stays an honest estimate. The new experiment records its source
and the sha256 of every checkpoint it used; when the source is trained again, it is stale
(scores.stale_reason). Resumable per fold and atomic, like training, through the same
experiment writer: result.json marks a fold done. A new test set: test_set.py.

Torch is imported inside functions: scores.py, which blend and leaderboard use, reads
nothing from here, but the CLI imports this module only in `ens predict`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np

from ensemble import __version__, metrics
from ensemble.artifacts.identity import images_changed
from ensemble.artifacts.scores import check_usable
from ensemble.artifacts.store import ExperimentDir, Logits, checkpoint_sha256, open_experiment
from ensemble.artifacts.writer import PREDICT, ExperimentResult, ExperimentWriter, write_fold
from ensemble.config import Workspace
from ensemble.data.cache import competition_images
from ensemble.data.competition import load_competition
from ensemble.data.content import competition_keys
from ensemble.data.folds import read_folds
from ensemble.errors import EnsError
from ensemble.inference import tta
from ensemble.inference.checkpoints import checkpoint_owner, choose_policy, fold_checkpoints, fold_logits, settings_of
from ensemble.inference.frozen_views import shared_backbone_logits


@dataclass(frozen=True)
class FoldPredicted:
    """Progress event after one fold's model has predicted."""

    fold: int
    metric: str
    score: float | None  # None for a new test set: it has no labels
    n_views: int
    seconds: float


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
    from ensemble.nets.devices import resolve_device

    experiment = ExperimentDir(workspace.models_dir, name)
    origin = open_experiment(workspace.models_dir, source)
    if experiment.root == origin.root:
        raise EnsError(f"--as {name}: name a new experiment; {source}'s own logits are never replaced by predict")
    settings = settings_of(origin)
    owner = checkpoint_owner(workspace.models_dir, origin)
    competition = load_competition(workspace)
    folds = read_folds(workspace, competition)
    metric = metrics.get(competition.metric)
    check_usable(origin, competition)
    check_same_data(origin, settings, competition, folds)
    images = competition_keys(competition)
    changed = images_changed(settings, images)
    if changed:
        raise EnsError(
            f"{origin.root}: trained on other {' and '.join(changed)} images (their content changed since); "
            f"train it again with `ens train-folds --name {owner.name} --force`"
        )
    policy = choose_policy(settings, views, merge, competition.task)
    device_name = device_name or workspace.train.device
    record = predicted_record(settings, name, policy, device_name, owner, folds.k) | {"images_sha256": images}
    with ExperimentWriter(experiment, record, folds.k, list(range(folds.k)), force, PREDICT) as writer:
        if keep_views:
            writer.redo([fold for fold in writer.plan.kept if not experiment.views_path(fold).is_file()])
        to_run = writer.plan.to_run
        if not to_run:
            return writer.result(competition, folds, metric, [])
        checkpoints, size = fold_checkpoints(owner, to_run, settings, competition.classes)
        device = resolve_device(device_name)
        # The decoded-image cache that training filled (or fills now): each image is decoded once.
        train_images, test_images, read = competition_images(workspace.root, competition, size, images)
        if progress:
            progress(read)
        writer.prepare()
        started = time.perf_counter()  # the first fold's seconds count the features its classifier is the first to use
        held_out = np.flatnonzero(np.isin(folds.fold_of, to_run))
        shared = shared_backbone_logits(settings, checkpoints, owner.checkpoint_path(to_run[0]), device, train_images, held_out, test_images, policy)
        for fold in to_run:
            started = started if fold == to_run[0] else time.perf_counter()
            path = owner.checkpoint_path(fold)
            valid_rows = np.flatnonzero(folds.fold_of == fold)
            if shared:  # a frozen-features experiment: the shared backbone ran once, every fold's classifier with it
                valid = shared.prediction(fold, checkpoints[fold], path, valid_rows, policy, competition.task)
                test = shared.prediction(fold, checkpoints[fold], path, None, policy, competition.task)
            else:
                valid = fold_logits(checkpoints[fold], path, device, settings["train"], train_images, valid_rows, policy, competition.task)
                test = fold_logits(checkpoints[fold], path, device, settings["train"], test_images, None, policy, competition.task)
            score = metric.score(competition.targets[valid_rows], competition.task.outputs(valid.logits))
            result = {
                "fold": fold, "metric": metric.name, "score": score, "seconds": time.perf_counter() - started,
                "checkpoint_sha256": record["source"]["checkpoints_sha256"][fold], "history": [],
            }
            write_predicted_fold(experiment, fold, competition, valid_rows, valid, test, result, policy if keep_views else None)
            if progress:
                progress(FoldPredicted(fold, metric.name, score, policy.n_views, result["seconds"]))
            writer.combine(competition, folds, metric)
        return writer.result(competition, folds, metric, to_run)


def predicted_record(settings: dict, name: str, policy: tta.Policy, device_name: str, owner: ExperimentDir, k: int) -> dict:
    """settings.json of an experiment predicted from `owner`'s checkpoints: the source's
    record under the new TTA policy, with the source and its checkpoints' hashes."""
    from ensemble.nets.devices import library_versions

    record = copy.deepcopy(settings)
    record["train"].update(tta=policy.spec, tta_merge=policy.merge)
    record.update(
        name=name,
        device=device_name,
        versions={"ens": __version__, **library_versions()},
        source={"experiment": owner.name, "checkpoints_sha256": [checkpoint_sha256(owner, fold) for fold in range(k)]},
    )
    return record


def write_predicted_fold(experiment: ExperimentDir, fold: int, competition, valid_rows, valid, test, result: dict, policy) -> None:
    """The fold's merged logits (and with a policy given, every view's) through the experiment writer."""
    classes, valid_ids = competition.classes, competition.train_ids[valid_rows]
    views = views_arrays(policy, classes, (valid_ids, valid.views), (competition.test_ids, test.views)) if policy else None
    write_fold(experiment, fold, Logits(valid_ids, classes, valid.logits), Logits(competition.test_ids, classes, test.logits), result, views)


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
