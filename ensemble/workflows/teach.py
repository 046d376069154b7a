"""`ens train-folds --pseudo BLEND` and `--distill BLEND`: a student experiment taught by a blend.

Each fold's lesson is made from cached logits alone (blend/teacher.py: the blend fitted
without the fold, its members' fold models), then the student trains as any experiment
(training/experiment.py), each fold on its own lesson, validated on its true labels. The
teacher (the blend's name and JSON hash, and every option here) is part of the student's
identity: a blend written again makes another student, and resuming with it is refused.

--pseudo adds the test images, with the teacher's outputs as soft targets (or, above
--pseudo-threshold, hard ones for the images it is that sure of), each weighing
--pseudo-weight in the loss. --distill replaces the training rows' targets by the teacher's
out-of-fold outputs mixed with the true label: alpha x teacher + (1 - alpha) x label. Both
together: a distilled student that also learns the test images. A second round of
pseudo-labels is a blend that includes the student teaching another experiment.
"""

from __future__ import annotations

import numpy as np

from ensemble.artifacts.writer import ExperimentResult
from ensemble.blend.teacher import Teacher, TeacherOptions, distilled_targets, fold_blender, open_teacher, pseudo_labels
from ensemble.config import TrainSettings, Workspace
from ensemble.data.competition import load_competition
from ensemble.data.folds import read_folds
from ensemble.training import parallel
from ensemble.training.events import Progress
from ensemble.training.experiment import train_experiment
from ensemble.training.student import Lesson, Teaching


def make_teaching(workspace: Workspace, name: str, options: TeacherOptions, folds_to_run: list[int] | None = None) -> Teaching:
    """The lessons of the asked folds (default: all) for student `name`, and the record its settings.json keeps."""
    options.check()
    competition = load_competition(workspace, check_images=False)
    folds = read_folds(workspace, competition)
    if options.pseudo_threshold > 0:  # a kind without hard decisions refuses before any blend is read
        competition.task.confident(np.zeros((0, len(competition.classes))), options.pseudo_threshold)
    pseudo = open_teacher(workspace, competition, folds.fold_of, options.pseudo, name, options.nested) if options.pseudo else None
    distill = None
    if options.distill:
        distill = pseudo if options.distill == options.pseudo else open_teacher(workspace, competition, folds.fold_of, options.distill, name, options.nested)
    record = {
        "pseudo": pseudo.record(threshold=options.pseudo_threshold, weight=options.pseudo_weight) if pseudo else None,
        "distill": distill.record(alpha=options.distill_alpha) if distill else None,
    }
    asked = range(folds.k) if folds_to_run is None else [fold for fold in folds_to_run if 0 <= fold < folds.k]
    return Teaching(record, {fold: fold_lesson(fold, options, pseudo, distill) for fold in asked}, len(competition.test_ids))


def fold_lesson(fold: int, options: TeacherOptions, pseudo: Teacher | None, distill: Teacher | None) -> Lesson:
    """Fold k's lesson, its nested blend fitted once when one blend both labels and distils."""
    pseudo_blender = fold_blender(pseudo, fold) if pseudo else None
    distill_blender = pseudo_blender if distill is pseudo else fold_blender(distill, fold) if distill else None
    train_targets = distilled_targets(distill, fold, options.distill_alpha, distill_blender).astype(np.float32) if distill else None
    if not pseudo:
        return Lesson(train_targets)
    rows, targets = pseudo_labels(pseudo, fold, options.pseudo_threshold, pseudo_blender)
    return Lesson(train_targets, rows, targets.astype(np.float32), options.pseudo_weight)


def train_student(
    workspace: Workspace,
    name: str,
    settings: TrainSettings,
    options: TeacherOptions,
    folds_to_run: list[int] | None = None,
    force: bool = False,
    progress: Progress | None = None,
    executor: parallel.Executor = parallel.Executor(),
    given: frozenset[str] | None = None,
) -> ExperimentResult:
    """train_experiment for a student: its lessons made first, then every asked fold trained on its own."""
    teaching = make_teaching(workspace, name, options, folds_to_run)
    return train_experiment(workspace, name, settings, folds_to_run, force, progress, executor, given, teaching)
