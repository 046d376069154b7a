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
from dataclasses import dataclass

import numpy as np

from ensemble import metrics
from ensemble.artifacts.identity import describe_run, recorded_defaults
from ensemble.artifacts.store import ExperimentDir
from ensemble.artifacts.writer import ExperimentResult, ExperimentWriter
from ensemble.config import TrainSettings, Workspace
from ensemble.data.cache import competition_images
from ensemble.data.competition import load_competition
from ensemble.data.content import competition_keys
from ensemble.data.folds import Folds, read_folds
from ensemble.errors import EnsError
from ensemble.io import read_json
from ensemble.nets.devices import library_versions
from ensemble.training import parallel
from ensemble.training.events import Progress
from ensemble.training.features import check_run as check_frozen_run
from ensemble.training.features import experiment_features
from ensemble.training.fold_job import FoldJob, run_fold
from ensemble.training.preflight import check_network, resolve
from ensemble.training.student import Teaching


@dataclass(frozen=True)
class RecordedKept:
    """An existing experiment resumes with recorded values where today's defaults differ: {key: (recorded, default)}."""

    name: str
    kept: dict


@dataclass(frozen=True)
class FoldsSent:
    """Folds handed to worker processes (which report their progress) or a cluster (which does not)."""

    folds: list[int]
    where: str
    workers: int = 1  # folds running at once


def train_experiment(
    workspace: Workspace,
    name: str,
    settings: TrainSettings,
    folds_to_run: list[int] | None = None,
    force: bool = False,
    progress: Progress | None = None,
    executor: parallel.Executor = parallel.Executor(),
    given: frozenset[str] | None = None,
    teaching: Teaching | None = None,
) -> ExperimentResult:
    """Train the asked folds (default: all) of experiment `name`, resuming what a stopped run left.

    given: the train settings the user set (in ens.toml or by a flag). An existing experiment
    keeps its recorded value of every other one (identity.recorded_defaults), so that a default
    changed since it began does not refuse it; None: every setting counts as given.

    The folds are locked while this process runs them: another process asking for one of
    them is refused, while other folds of the experiment may run in other processes.
    `executor` says where the folds train (here, worker processes, a Dask cluster); the
    locks stay with this process. teaching: a student's teacher (workflows/teach.py), part
    of the experiment's identity; each fold trains on its own lesson.
    """
    from ensemble.nets.weights import weights_identity

    experiment = ExperimentDir(workspace.models_dir, name)
    competition = load_competition(workspace)
    settings = resolve(workspace, settings, competition)  # its loss and merges are the task kind's; its size the images'
    folds = read_folds(workspace, competition)
    metric = metrics.get(competition.metric)
    requested = sorted(set(range(folds.k) if folds_to_run is None else folds_to_run))
    outside = [fold for fold in requested if not 0 <= fold < folds.k]
    if outside:
        raise EnsError(f"--folds: fold {outside[0]} does not exist; the folds file has folds 0..{folds.k - 1}")
    weights = weights_identity(settings.pretrained, settings.model)
    images = competition_keys(competition)
    teacher = teaching.record if teaching else None
    record = describe_run(competition, folds, name, settings, weights, library_versions(), images, teacher)
    if given is not None and not force and experiment.settings_path.is_file():
        kept = recorded_defaults(read_json(experiment.settings_path), record, given)
        if kept:
            settings = resolve(workspace, dataclasses.replace(settings, **{key: old for key, (old, _) in kept.items()}), competition)
            record = describe_run(competition, folds, name, settings, weights, library_versions(), images, teacher)
            if progress:
                progress(RecordedKept(name, kept))
    check_frozen_run(settings, executor.cluster, teaching is not None)
    # The cluster first: an unreachable scheduler must not leave a settings.json behind.
    with parallel.connected(executor, workspace.root) as cluster, ExperimentWriter(experiment, record, folds.k, requested, force) as writer:
        to_train = writer.plan.to_run
        if not to_train:  # nothing left to train; combines the folds if a run stopped before that
            return writer.result(competition, folds, metric, [])
        if progress and teaching:
            progress(teaching.made())
        check_network(settings, len(competition.classes), progress)
        if not executor.cluster:  # the workers of a cluster may have devices this machine lacks
            from ensemble.nets.devices import resolve_device

            resolve_device(settings.device)
        check_training_rows(workspace, folds, to_train)
        train_images, test_images, read = competition_images(workspace.root, competition, settings.size, images)
        if progress:
            progress(read)
        writer.prepare()
        features = None
        if settings.frozen_features:
            copies = 1 + executor.jobs if executor.jobs > 1 else 1  # each worker process receives the features
            features = experiment_features(experiment, settings, len(competition.classes), train_images, test_images, progress, force, copies)
        jobs = [
            FoldJob(
                experiment, competition, folds.fold_of, fold, train_images, test_images, settings, metric.name, position, len(to_train),
                teaching.lessons[fold] if teaching else None, features,
            )
            for position, fold in enumerate(to_train, 1)
        ]
        run_jobs(jobs, writer, competition, folds, metric, executor, workspace, progress, cluster)
        return writer.result(competition, folds, metric, to_train)


def check_training_rows(workspace: Workspace, folds: Folds, to_train: list[int]) -> None:
    for fold in to_train:
        if np.count_nonzero(folds.fold_of != fold) < 2:
            raise EnsError(f"{workspace.folds_dir / 'folds.csv'}: fold {fold}'s model would train on fewer than 2 rows; make fewer or other folds")


def run_jobs(
    jobs, writer: ExperimentWriter, competition, folds: Folds, metric, executor: parallel.Executor, workspace: Workspace, progress, cluster=None
) -> None:
    """Every fold job through the executor; the folds are combined after each one ends."""
    to_train = [job.fold for job in jobs]
    if progress and not executor.in_process:
        workers = min(executor.jobs, len(to_train))
        where = f"the Dask cluster at {executor.cluster}" if executor.cluster else f"{workers} worker process{'es' if workers > 1 else ''}"
        progress(FoldsSent(to_train, where, workers))
    failures: list[parallel.Failure] = []
    try:
        # closing: leaving early (Ctrl-C, SIGTERM) stops the worker processes before the locks go
        with contextlib.closing(parallel.run_jobs(run_fold, jobs, executor, workspace.root, progress, cluster)) as ends:
            for end in ends:
                if isinstance(end, parallel.Failure):
                    failures.append(end)
                    continue
                if progress and executor.cluster:  # a cluster's workers send no events: the fold's end is its result
                    progress(end)
                writer.combine(competition, folds, metric)
    except EnsError as error:  # a worker died: name the folds it left undone
        missing = sorted(set(to_train) - set(writer.experiment.done_folds()))
        raise EnsError(f"{error}; folds not finished: {','.join(map(str, missing))}") from None
    if failures:
        first = failures[0]
        others = f" (and {len(failures) - 1} more: folds {','.join(str(f.job.fold) for f in failures[1:])})" if len(failures) > 1 else ""
        raise EnsError(f"fold {first.job.fold}: {first.message}{others}; the other folds are kept")
