"""Running every fold of an experiment and caching what blending needs, under models/<name>/.

A run checks everything it can before it writes anything: the competition files, the folds
file, every image (decoded once, up front, at the training size). Then each fold is trained
and its artifacts written atomically, `result.json` last. A run stopped at any point is
resumed by the same command: finished folds are kept, a running fold restarts from its last
finished epoch. Settings that change the result make a different experiment: resuming with
them is refused unless --force starts the experiment again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensemble import locks, metrics, parallel, store, tta
from ensemble.cache import cached_images
from ensemble.competition import Competition, load_competition
from ensemble.config import TrainSettings, Workspace
from ensemble.devices import resolve_device
from ensemble.errors import EnsError
from ensemble.fold_job import FoldJob, run_fold
from ensemble.folds import Folds, read_folds
from ensemble.identity import describe_run, differences, with_legacy_values
from ensemble.nets import check_input_size, check_weights
from ensemble.scores import experiment_scores
from ensemble.stages import check_stage_sizes
from ensemble.store import ExperimentDir, Logits
from ensemble.train import Progress


@dataclass(frozen=True)
class ImagesRead:
    n_train: int
    n_test: int
    size: int
    seconds: float
    from_cache: bool = False


@dataclass(frozen=True)
class FoldsSent:
    """Folds handed to worker processes (which report their progress) or a cluster (which does not)."""

    folds: list[int]
    where: str
    workers: int = 1  # folds running at once


@dataclass(frozen=True)
class WeightsChecked:
    """Pretrained weights fit the network; summary says how they were matched."""

    summary: str


@dataclass(frozen=True)
class ExperimentResult:
    """fold_scores: one entry per fold, None where the fold is not trained yet."""

    name: str
    path: Path
    metric: str
    fold_scores: list[float | None]
    oof_score: float | None
    trained: list[int]
    kept: list[int]


def resolve_settings(workspace: Workspace, settings: TrainSettings) -> TrainSettings:
    """Every "auto" settled, and a weights file's path made absolute (ens.toml paths are relative to the workspace)."""
    settings = settings.resolved()
    if settings.pretrained and settings.pretrained != "timm":
        settings = dataclasses.replace(settings, pretrained=str(workspace.path(settings.pretrained)))
    return settings


def plan_folds(experiment: ExperimentDir, record: dict, requested: list[int], force: bool) -> tuple[list[int], list[int], bool]:
    """(folds to train, finished folds kept, whether the old experiment is wiped first)."""
    if not experiment.exists():
        return requested, [], False
    changed = differences(with_legacy_values(store.read_json(experiment.settings_path)), record)
    if changed:
        if not force:
            raise EnsError(
                f"{experiment.root}: was trained with other settings ({'; '.join(changed[:3])}); "
                "use --force to train it again, or another --name"
            )
        return requested, [], True
    done = set(experiment.done_folds())
    if force:
        return requested, sorted(done - set(requested)), False
    # Asked folds all done with the same settings: nothing to train, and not an error, so a
    # script may rerun the command after a crash (it just finishes a run stopped before
    # combining the folds).
    return [fold for fold in requested if fold not in done], sorted(done), False


def lock_folds(experiment: ExperimentDir, folds: list[int], held: contextlib.ExitStack) -> None:
    """Lock each fold until `held` closes; a fold another live process trains is refused at once."""
    for fold in folds:
        busy = f"{experiment.root}: fold {fold} is being trained by another process"
        held.enter_context(locks.hold(experiment.lock_path(f"fold{fold}"), busy))


def writing(experiment: ExperimentDir):
    """The lock for the experiment's shared files (settings, scores, combined logits): held
    for moments, so another process waits for it."""
    busy = f"{experiment.root}: its files are being written by another process"
    return locks.hold(experiment.lock_path("experiment"), busy, wait=60)


def settings_text(experiment: ExperimentDir) -> str | None:
    return experiment.settings_path.read_text() if experiment.exists() else None


def train_experiment(
    workspace: Workspace,
    name: str,
    settings: TrainSettings,
    folds_to_run: list[int] | None = None,
    force: bool = False,
    progress: Progress | None = None,
    executor: parallel.Executor = parallel.Executor(),
) -> ExperimentResult:
    """Train the asked folds (default: all) of experiment `name`, resuming what a stopped run left.

    The folds are locked while this process runs them: another process asking for one of
    them is refused, while other folds of the experiment may run in other processes.
    `executor` says where the folds train (here, worker processes, a Dask cluster); the
    locks stay with this process.
    """
    with contextlib.ExitStack() as fold_locks:
        return _train_experiment(workspace, name, settings, folds_to_run, force, progress, fold_locks, executor)


def _train_experiment(
    workspace: Workspace,
    name: str,
    settings: TrainSettings,
    folds_to_run: list[int] | None,
    force: bool,
    progress: Progress | None,
    fold_locks: contextlib.ExitStack,
    executor: parallel.Executor,
) -> ExperimentResult:
    experiment = ExperimentDir(workspace.models_dir, name)
    competition = load_competition(workspace)
    folds = read_folds(workspace, competition)
    metric = metrics.get(competition.settings.metric)
    requested = sorted(set(range(folds.k) if folds_to_run is None else folds_to_run))
    policy = tta.parse_policy(settings.tta, settings.tta_merge)  # 'hflip, none' and 'hflip' are one experiment
    settings = dataclasses.replace(settings, tta=policy.spec, tta_merge=policy.merge)
    outside = [fold for fold in requested if not 0 <= fold < folds.k]
    if outside:
        raise EnsError(f"--folds: fold {outside[0]} does not exist; the folds file has folds 0..{folds.k - 1}")
    settings = resolve_settings(workspace, settings)
    record = describe_run(competition, folds, name, settings)
    lock_folds(experiment, requested, fold_locks)
    planned = settings_text(experiment)
    to_train, kept, wipe = plan_folds(experiment, record, requested, force)
    if wipe:  # the whole experiment goes: no other process may be training any of it
        lock_folds(experiment, sorted(set(range(folds.k)) - set(requested)), fold_locks)
    # Temporary files of a killed run can be as large as a checkpoint. Only the folds this
    # run trains are cleaned: another process may be training, and writing, the others.
    for fold in to_train:
        for leftover in experiment.fold_dir(fold).glob(".*.tmp"):
            leftover.unlink()
    if not to_train:  # nothing left to train; combines the folds if a run stopped before that
        with writing(experiment):
            fold_scores, oof_score = summarize(experiment, competition, folds, metric)
        return ExperimentResult(name, experiment.root, metric.name, fold_scores, oof_score, [], kept)
    check_input_size(settings.model, len(competition.classes), settings.size, settings.attention, settings.attention_in_blocks)
    if settings.pretrained:  # a file that does not fit is refused before anything is written
        mapping = check_weights(settings, len(competition.classes))
        if progress:
            progress(WeightsChecked(mapping.summary()))
    check_stage_sizes(settings, len(competition.classes))
    if not executor.cluster:  # the workers of a cluster may have devices this machine lacks
        resolve_device(settings.device)
    for fold in to_train:
        if np.count_nonzero(folds.fold_of != fold) < 2:
            raise EnsError(f"{workspace.folds_dir / 'folds.csv'}: fold {fold}'s model would train on fewer than 2 rows; make fewer or other folds")

    started = time.perf_counter()
    train_images, train_cached = cached_images(workspace.root, competition.train_image_paths(), competition.train_ids, settings.size)
    test_images, test_cached = cached_images(workspace.root, competition.test_image_paths(), competition.test_ids, settings.size)
    if progress:
        seconds = time.perf_counter() - started
        progress(ImagesRead(len(train_images), len(test_images), settings.size, seconds, train_cached and test_cached))

    with writing(experiment):
        if settings_text(experiment) not in (planned, None):  # another process began it meanwhile
            if differences(with_legacy_values(store.read_json(experiment.settings_path)), record):
                raise EnsError(
                    f"{experiment.settings_path}: written meanwhile by another process with other settings; "
                    "run the command again"
                )
            wipe = False  # with these settings: it is training the other folds, keep them
        if wipe:
            shutil.rmtree(experiment.root)
        if force:  # retrain the requested folds from scratch, finished or cut off
            for fold in to_train:
                shutil.rmtree(experiment.fold_dir(fold), ignore_errors=True)
        # The combined logits are rebuilt once every fold is done again.
        experiment.oof_path.unlink(missing_ok=True)
        experiment.test_path.unlink(missing_ok=True)
        store.write_json(experiment.settings_path, record)

    jobs = [
        FoldJob(experiment, competition, folds.fold_of, fold, train_images, test_images, settings, metric.name, position, len(to_train))
        for position, fold in enumerate(to_train, 1)
    ]
    if progress and not executor.in_process:
        workers = min(executor.jobs, len(to_train))
        where = f"the Dask cluster at {executor.cluster}" if executor.cluster else f"{workers} worker process{'es' if workers > 1 else ''}"
        progress(FoldsSent(to_train, where, workers))
    failures: list[parallel.Failure] = []
    try:
        for end in parallel.run_jobs(run_fold, jobs, executor, workspace.root, progress):
            if isinstance(end, parallel.Failure):
                failures.append(end)
                continue
            if progress and executor.cluster:  # a cluster's workers send no events: the fold's end is its result
                progress(end)
            with writing(experiment):
                fold_scores, oof_score = summarize(experiment, competition, folds, metric)
    except EnsError as error:  # a worker died: name the folds it left undone
        missing = sorted(set(to_train) - set(experiment.done_folds()))
        raise EnsError(f"{error}; folds not finished: {','.join(map(str, missing))}") from None
    if failures:
        first = failures[0]
        others = f" (and {len(failures) - 1} more: folds {','.join(str(f.job.fold) for f in failures[1:])})" if len(failures) > 1 else ""
        raise EnsError(f"fold {first.job.fold}: {first.message}{others}; the other folds are kept")
    return ExperimentResult(name, experiment.root, metric.name, fold_scores, oof_score, to_train, kept)


def summarize(experiment: ExperimentDir, competition: Competition, folds: Folds, metric: metrics.Metric) -> tuple[list, float | None]:
    """Once every fold is done, write oof.npz and test.npz; always write scores.json.
    Returns (fold_scores, oof_score)."""
    done = experiment.done_folds()
    if len(done) == folds.k and not experiment.is_complete():
        oof = np.zeros((len(competition.train_ids), len(competition.classes)), dtype=np.float32)
        test = np.zeros((len(competition.test_ids), len(competition.classes)), dtype=np.float64)
        for fold in done:
            fold_oof = store.load_logits(experiment.fold_oof_path(fold))
            oof[store.positions(competition.train_ids, fold_oof.ids)] = fold_oof.values
            test += store.load_logits(experiment.fold_test_path(fold)).values
        # test.npz first: is_complete() looks for both, and oof.npz is the one blending trusts.
        store.save_logits(experiment.test_path, Logits(competition.test_ids, competition.classes, (test / folds.k).astype(np.float32)))
        store.save_logits(experiment.oof_path, Logits(competition.train_ids, competition.classes, oof))
    fold_scores, oof_score = experiment_scores(experiment, competition, folds.k, metric)
    results = {fold: store.read_json(experiment.fold_result_path(fold)) for fold in done}
    store.write_json(
        experiment.scores_path,
        {
            "name": experiment.name,
            "model": store.read_json(experiment.settings_path)["train"]["model"],
            "metric": metric.name,
            "oof_score": oof_score,
            "fold_scores": fold_scores,
            "seconds": [results[fold]["seconds"] if fold in results else None for fold in range(folds.k)],
        },
    )
    return fold_scores, oof_score
