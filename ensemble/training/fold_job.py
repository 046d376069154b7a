"""One fold's job: train it, then write its logits, weights and result. It runs in this
process, in a worker process, or on a Dask worker (parallel.py), so it carries everything it
needs and reports progress only through the callback it is given.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ensemble import metrics
from ensemble.artifacts import writer
from ensemble.artifacts.store import ExperimentDir, Logits
from ensemble.config import TrainSettings
from ensemble.data.competition import Competition
from ensemble.io import sha256_file
from ensemble.nets import torch_files
from ensemble.nets.devices import out_of_memory_as_error
from ensemble.training import parallel
from ensemble.training.events import Progress
from ensemble.training.features import Features
from ensemble.training.head import train_head_fold
from ensemble.training.student import Lesson
from ensemble.training.trainer import FoldData, FoldOutput, train_fold


@dataclass(frozen=True)
class FoldStart:
    fold: int
    n_train: int
    n_valid: int
    resuming: bool
    position: int = 1  # 1-based among the folds this run trains
    count: int = 1


@dataclass(frozen=True)
class FoldEnd:
    fold: int
    metric: str
    score: float
    seconds: float


@dataclass(frozen=True)
class FoldJob:
    """One fold to train: everything a worker process needs (picklable; images are read by path)."""

    experiment: ExperimentDir
    competition: Competition
    fold_of: np.ndarray
    fold: int
    train_images: Any  # uint8 (n_train, size, size, 3): cache.CachedImages or an ndarray
    test_images: Any
    settings: TrainSettings
    metric: str
    position: int = 1  # 1-based among the folds this run trains, for the progress display
    count: int = 1
    lesson: Lesson | None = None  # a student fold's teacher targets (student.py)
    features: Features | None = None  # a frozen-features experiment's (features.py): its head trains on them


def run_fold(job: FoldJob, progress: Progress | None, slot: parallel.Slot) -> FoldEnd:
    """Train one fold and write its artifacts; runs in this process or in a worker, with the
    slot's torch threads (this process's own count is put back afterwards)."""
    import torch

    before = torch.get_num_threads()
    if slot.threads:
        torch.set_num_threads(slot.threads)
    try:
        return train_and_write(job, progress, slot)
    finally:
        torch.set_num_threads(before)


def train_and_write(job: FoldJob, progress: Progress | None, slot: parallel.Slot) -> FoldEnd:
    settings, fold, experiment = job.settings, job.fold, job.experiment
    if slot.gpu is not None and settings.device in ("auto", "cuda"):
        settings = dataclasses.replace(settings, device=f"cuda:{slot.gpu}")
    metric = metrics.get(job.metric)
    valid_rows = np.flatnonzero(job.fold_of == fold)
    train_rows = np.flatnonzero(job.fold_of != fold)
    if progress:
        progress(FoldStart(fold, len(train_rows), len(valid_rows), experiment.resume_path(fold).exists(), job.position, job.count))
    fold_started = time.perf_counter()
    competition = job.competition
    data = FoldData(job.train_images, competition.targets, train_rows, valid_rows, job.test_images, len(competition.classes), competition.task, job.lesson)
    with out_of_memory_as_error(settings.batch_size, f"fold {fold}"):
        if job.features is not None:
            output = train_head_fold(data, job.features, settings, fold, metric, progress)
        else:
            output = train_fold(data, settings, fold, metric, experiment.resume_path(fold), progress)
    score = metric.score(data.valid_targets, competition.task.outputs(output.valid_logits))
    seconds = output.resumed_seconds + time.perf_counter() - fold_started
    write_fold(experiment, fold, competition, valid_rows, output, settings, metric, score, seconds)
    end = FoldEnd(fold, metric.name, score, seconds)
    if progress:
        progress(end)
    return end


def write_fold(
    experiment: ExperimentDir,
    fold: int,
    competition: Competition,
    valid_rows: np.ndarray,
    output: FoldOutput,
    settings: TrainSettings,
    metric: metrics.Metric,
    score: float,
    seconds: float,
) -> None:
    """The fold's weights, then its logits and result through the experiment's writer."""
    import torch

    classes = competition.classes
    checkpoint = {"state_dict": output.state_dict, **rebuild_record(settings, classes, output.target_scale)}
    torch_files.save_torch(experiment.checkpoint_path(fold), checkpoint)
    result = {
        "fold": fold,
        "metric": metric.name,
        "score": score,
        "seconds": seconds,
        "threads": torch.get_num_threads(),  # the float sums' order: the same count, the same logits
        "checkpoint_sha256": sha256_file(experiment.checkpoint_path(fold)),  # predicted experiments compare it
        "history": [dataclasses.asdict(event) for event in output.history],
    }
    oof = Logits(competition.train_ids[valid_rows], classes, output.valid_logits)
    writer.write_fold(experiment, fold, oof, Logits(competition.test_ids, classes, output.test_logits), result)


def rebuild_record(settings: TrainSettings, classes: tuple[str, ...], target_scale: dict | None) -> dict:
    """What inference.checkpoints needs to build the fold's network again and read its outputs, stored in model.pt.

    size: the size the network predicts at; net_options: keywords for nets.create_net;
    target_scale: a regression's decoding constants, fitted on the fold's training rows
    (inference/scaling.py); absent for classification, whose logits are read as they are.
    """
    record = {
        "model": settings.model,
        "classes": list(classes),
        "size": settings.size,
        "net_options": {"attention": settings.attention, "attention_in_blocks": settings.attention_in_blocks},
    }
    return record | ({"target_scale": target_scale} if target_scale else {})
