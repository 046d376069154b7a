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

from ensemble.artifacts.writer import ExperimentResult
from ensemble.blend.teacher import TeacherOptions, distilled_targets, open_teacher, pseudo_labels
from ensemble.config import TrainSettings, Workspace
from ensemble.data.competition import load_competition
from ensemble.data.folds import read_folds
from ensemble.training import parallel
from ensemble.training.events import Progress
from ensemble.training.experiment import train_experiment
from ensemble.training.student import Lesson, Teaching


def make_teaching(workspace: Workspace, name: str, options: TeacherOptions) -> Teaching:
    """Every fold's lesson for student `name`, and the record its settings.json keeps."""
    options.check()
    competition = load_competition(workspace, check_images=False)
    folds = read_folds(workspace, competition)
    record: dict = {"pseudo": None, "distill": None}
    pseudo: dict[int, tuple] = {}
    distilled: dict[int, object] = {}
    if options.pseudo:
        teacher = open_teacher(workspace, competition, folds.fold_of, options.pseudo, name, options.nested)
        record["pseudo"] = teacher.record(threshold=options.pseudo_threshold, weight=options.pseudo_weight)
        pseudo = {fold: pseudo_labels(teacher, fold, options.pseudo_threshold) for fold in range(folds.k)}
    if options.distill:
        teacher = open_teacher(workspace, competition, folds.fold_of, options.distill, name, options.nested)
        record["distill"] = teacher.record(alpha=options.distill_alpha)
        distilled = {fold: distilled_targets(teacher, fold, options.distill_alpha) for fold in range(folds.k)}
    lessons = {
        fold: Lesson(
            train_targets=distilled.get(fold),
            **({"test_rows": pseudo[fold][0], "test_targets": pseudo[fold][1], "test_weight": options.pseudo_weight} if fold in pseudo else {}),
        )
        for fold in range(folds.k)
    }
    return Teaching(record, lessons, len(competition.test_ids))


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
    teaching = make_teaching(workspace, name, options)
    return train_experiment(workspace, name, settings, folds_to_run, force, progress, executor, given, teaching)
