"""The one way a run writes an experiment folder: `ens train-folds` and `ens predict` both go through it.

A run (1) plans its folds against what the folder holds: same settings, finished folds are
kept; other settings, refused unless --force wipes the experiment; (2) locks the folds it
writes, so that two processes never write one fold; (3) prepares the folder: clears what it
replaces and writes settings.json; (4) writes each fold, result.json last, as the mark of a
finished fold; (5) combines the folds into oof.npz and test.npz once every one is done.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensemble import metrics
from ensemble.artifacts import locks
from ensemble.artifacts.identity import differences, images_changed, legacy_flags, with_legacy_values
from ensemble.artifacts.scores import experiment_scores
from ensemble.artifacts.store import ExperimentDir, Logits, load_logits, positions, save_logits
from ensemble.data.competition import Competition
from ensemble.data.folds import Folds
from ensemble.errors import EnsError
from ensemble.io import read_json, write_json, write_npz


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


@dataclass(frozen=True)
class FoldPlan:
    """to_run: the folds this run writes; kept: finished folds left as they are; wipe: the old
    experiment (made with other settings) goes first."""

    to_run: list[int]
    kept: list[int]
    wipe: bool


@dataclass(frozen=True)
class Verb:
    """What a run does to an experiment, in its messages."""

    verb: str  # "train"
    past: str  # "trained"
    name_flag: str  # the flag that names another experiment
    replaces_trained: bool  # whether --force may replace a trained experiment (one whose settings name no source)


TRAIN = Verb("train", "trained", "--name", True)
PREDICT = Verb("predict", "predicted", "--as", False)


def plan_folds(experiment: ExperimentDir, record: dict, requested: list[int], force: bool, verb: Verb = TRAIN) -> FoldPlan:
    """What a run with settings `record` does to `experiment`."""
    if not experiment.exists():
        return FoldPlan(requested, [], False)
    existing = read_json(experiment.settings_path)
    # Decided here, under the fold locks: a check before them misses a run that trains it meanwhile.
    if not verb.replaces_trained and "source" not in existing:
        raise EnsError(
            f"{experiment.root}: a trained experiment; {verb.verb} never replaces trained weights, "
            f"even with --force: name another {verb.name_flag}"
        )
    old = with_legacy_values(existing)
    changed = differences(old, record)
    images = images_changed(old, record.get("images_sha256", {}))
    if changed or images:
        if not force:
            how = f"with other settings ({'; '.join(changed[:3])})" if changed else f"on other {' and '.join(images)} images (their content changed since)"
            flags = legacy_flags(existing, record) if changed else []
            resume = f"{' '.join(flags)} resumes it as it was made (an older ens recorded no such key); " if flags else ""
            raise EnsError(f"{experiment.root}: was {verb.past} {how}; {resume}use --force to {verb.verb} it again, or another {verb.name_flag}")
        return FoldPlan(requested, [], True)
    done = set(experiment.done_folds())
    if force:
        return FoldPlan(requested, sorted(done - set(requested)), False)
    # Asked folds all done with the same settings: nothing to run, and not an error, so a
    # script may rerun the command after a crash (it just combines the folds).
    return FoldPlan([fold for fold in requested if fold not in done], sorted(done), False)


def files_lock(experiment: ExperimentDir):
    """The lock of the experiment's shared files (settings, scores, combined logits): held
    for moments, so another process waits for it."""
    busy = f"{experiment.root}: its files are being written by another process"
    return locks.hold(experiment.lock_path("experiment"), busy, wait=60)


class ExperimentWriter:
    """Plans, locks and prepares `experiment` for a run with settings `record`, then combines
    its folds. Used as a context manager: the fold locks are held until it closes.

    k: the number of folds; requested: the folds asked for.
    """

    def __init__(self, experiment: ExperimentDir, record: dict, k: int, requested: list[int], force: bool, verb: Verb = TRAIN):
        self.experiment, self.record, self.k, self.force = experiment, record, k, force
        self.requested, self.verb = requested, verb
        self._held = contextlib.ExitStack()
        self._scores: tuple[list, float | None] | None = None  # the last combine's (fold_scores, oof_score)

    def __enter__(self) -> "ExperimentWriter":
        self._held.__enter__()
        try:
            self._lock_folds(self.requested)
            self._planned = self._settings_text()
            self.plan = plan_folds(self.experiment, self.record, self.requested, self.force, self.verb)
            if self.plan.wipe:  # the whole experiment goes: no other process may be writing any of it
                self._lock_folds(sorted(set(range(self.k)) - set(self.requested)))
            # A killed run's temporaries can be as large as a checkpoint. Only the folds this run
            # writes are cleaned: another process may be writing the others.
            for fold in self.plan.to_run:
                for leftover in self.experiment.fold_dir(fold).glob(".*.tmp"):
                    leftover.unlink(missing_ok=True)
        except BaseException:
            self._held.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._held.__exit__(*exc)

    def _lock_folds(self, folds: list[int]) -> None:
        for fold in folds:
            busy = f"{self.experiment.root}: fold {fold} is being {self.verb.past} by another process"
            self._held.enter_context(locks.hold(self.experiment.lock_path(f"fold{fold}"), busy))

    def _settings_text(self) -> str | None:
        return self.experiment.settings_path.read_text() if self.experiment.exists() else None

    def redo(self, folds: list[int]) -> None:
        """Run these finished folds again too (their files are replaced as the run writes them)."""
        plan = self.plan
        self.plan = FoldPlan(sorted(set(plan.to_run) | set(folds)), [fold for fold in plan.kept if fold not in folds], plan.wipe)

    def prepare(self) -> None:
        """Clear what this run replaces and write settings.json; call it once every check has passed."""
        experiment, wipe = self.experiment, self.plan.wipe
        with files_lock(experiment):
            if self._settings_text() not in (self._planned, None):  # another process began it meanwhile
                meanwhile = with_legacy_values(read_json(experiment.settings_path))
                if differences(meanwhile, self.record) or images_changed(meanwhile, self.record.get("images_sha256", {})):
                    raise EnsError(
                        f"{experiment.settings_path}: written meanwhile by another process with other settings; "
                        "run the command again"
                    )
                wipe = False  # with these settings: it is writing the other folds, keep them
            if wipe:
                shutil.rmtree(experiment.root)
            if self.force:  # the requested folds again from scratch, finished or cut off
                for fold in self.plan.to_run:
                    shutil.rmtree(experiment.fold_dir(fold), ignore_errors=True)
            # The combined logits are made again once every fold is done.
            experiment.oof_path.unlink(missing_ok=True)
            experiment.test_path.unlink(missing_ok=True)
            write_json(experiment.settings_path, self.record)

    def combine(self, competition: Competition, folds: Folds, metric: metrics.Metric) -> tuple[list, float | None]:
        """summarize, under the lock of the shared files."""
        with files_lock(self.experiment):
            self._scores = summarize(self.experiment, competition, folds, metric)
        return self._scores

    def result(self, competition: Competition, folds: Folds, metric: metrics.Metric, ran: list[int]) -> ExperimentResult:
        # The folds were combined after the last one written; combined again only if none was.
        fold_scores, oof_score = self._scores or self.combine(competition, folds, metric)
        experiment = self.experiment
        return ExperimentResult(experiment.name, experiment.root, metric.name, fold_scores, oof_score, ran, self.plan.kept)


def write_fold(experiment: ExperimentDir, fold: int, oof: Logits, test: Logits, result: dict, views: dict | None = None) -> None:
    """One fold's logits (and, when given, its per-view logits), then result.json, last: the
    mark of a finished fold. A training run's resume state goes once the fold is done.

    views: the arrays of fold<k>/views.npz (see ensemble.inference.predict.views_arrays), or
    None to remove an older one, which would no longer match the fold's logits.
    """
    # A fold written again (predict --keep-views redoes finished ones) is not done meanwhile.
    experiment.fold_result_path(fold).unlink(missing_ok=True)
    save_logits(experiment.fold_oof_path(fold), oof)
    save_logits(experiment.fold_test_path(fold), test)
    if views is not None:
        write_npz(experiment.views_path(fold), **views)
    else:
        experiment.views_path(fold).unlink(missing_ok=True)
    write_json(experiment.fold_result_path(fold), result)
    experiment.resume_path(fold).unlink(missing_ok=True)
    experiment.resume_hash_path(fold).unlink(missing_ok=True)


def summarize(experiment: ExperimentDir, competition: Competition, folds: Folds, metric: metrics.Metric) -> tuple[list, float | None]:
    """Once every fold is done, write oof.npz and test.npz; always write scores.json.
    Returns (fold_scores, oof_score)."""
    done = experiment.done_folds()
    if len(done) == folds.k and not experiment.is_complete():
        oof = np.zeros((len(competition.train_ids), len(competition.classes)), dtype=np.float32)
        test = np.zeros((len(competition.test_ids), len(competition.classes)), dtype=np.float64)
        for fold in done:
            fold_oof = load_logits(experiment.fold_oof_path(fold))
            oof[positions(competition.train_ids, fold_oof.ids)] = fold_oof.values
            test += load_logits(experiment.fold_test_path(fold)).values
        # test.npz first: is_complete() looks for both, and oof.npz is the one blending trusts.
        save_logits(experiment.test_path, Logits(competition.test_ids, competition.classes, (test / folds.k).astype(np.float32)))
        save_logits(experiment.oof_path, Logits(competition.train_ids, competition.classes, oof))
    fold_scores, oof_score = experiment_scores(experiment, competition, folds.k, metric)
    results = {fold: read_json(experiment.fold_result_path(fold)) for fold in done}
    write_json(
        experiment.scores_path,
        {
            "name": experiment.name,
            "model": read_json(experiment.settings_path)["train"]["model"],
            "metric": metric.name,
            "oof_score": oof_score,
            "fold_scores": fold_scores,
            "seconds": [results[fold]["seconds"] if fold in results else None for fold in range(folds.k)],
            **({"features_seconds": features} if (features := experiment.features_seconds()) else {}),
        },
    )
    return fold_scores, oof_score
