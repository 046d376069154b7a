"""A blend as a teacher: the targets a student experiment trains on, fold by fold, made
without the labels of the fold the student is scored on.

Fold k's student is validated on fold k's rows. Its OOF score is honest only if nothing it
learns came from their labels, and a blend's outputs usually did: the blend's weights were
fitted on every OOF row (a stacker learned them), and each member's test logits are a mean
over fold models, k-1 of which trained on fold k. So fold k's teacher is the nested blend:

- pseudo-labels (the test images): the blend's method fitted again on the OOF rows of the
  other folds (nested.fit, as the blend's out-of-fold score is made), applied to the
  members' fold-k models alone (fold<k>/test.npz), which never saw fold k. This is QUEST's
  1st place's "only those models that were trained using only the current train set".
- distillation (the training rows): the same nested blend applied to the members' OOF logits
  of the student's training rows. What remains: the OOF logit of a row in fold j comes from
  fold j's member models, which trained on fold k's rows. No cached logit avoids it without
  training every member again per pair of folds; README.md measures what it costs, and the
  leaderboard marks distilled experiments.

nested=False is the leaky teacher (the blend as `ens blend` fitted it, on every OOF row, and
the members' fold-averaged test logits) for every fold: only benchmarks ask for it, to
measure the inflation the nested one avoids, and the student's settings.json records it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ensemble.blend.base import Blender, clone
from ensemble.blend.members import Members, fold_test_stack, load_members, split_member
from ensemble.blend.nested import fit
from ensemble.blend.run import test_probabilities
from ensemble.blend.saved import check_inputs_unchanged, open_blend
from ensemble.config import Workspace
from ensemble.data.competition import Competition
from ensemble.errors import EnsError
from ensemble.io import sha256_file

# The teacher's share of a distilled target, measured (benchmarks/bench_teacher.py, docs/training.md): of 0.25, 0.5
# and 1, 0.25 scored best on hidden test labels (0.928, 0.921, 0.917) and inflated the OOF score least.
DISTILL_ALPHA = 0.25


@dataclass(frozen=True)
class TeacherOptions:
    """pseudo, distill: blend names (None: not taught that way). nested=False is the leaky
    teacher (blend/teacher.py): for benchmarks that measure the leak, never a flag."""

    pseudo: str | None = None
    pseudo_threshold: float = 0.0
    pseudo_weight: float = 1.0
    distill: str | None = None
    distill_alpha: float = DISTILL_ALPHA
    nested: bool = True

    def __bool__(self) -> bool:
        return bool(self.pseudo or self.distill)

    def check(self) -> "TeacherOptions":
        if not 0 <= self.pseudo_threshold < 1:
            raise EnsError(f"--pseudo-threshold {self.pseudo_threshold:g}: expected 0 (soft targets) or a confidence in (0, 1)")
        if not (math.isfinite(self.pseudo_weight) and self.pseudo_weight > 0):
            raise EnsError(f"--pseudo-weight {self.pseudo_weight:g}: expected a positive weight (a train image weighs 1)")
        if not 0 < self.distill_alpha <= 1:
            raise EnsError(f"--distill-alpha {self.distill_alpha:g}: expected the teacher's share of the target, in (0, 1]")
        return self


@dataclass(frozen=True)
class Teacher:
    """A written blend, checked against the student's competition and folds. sha256: NAME.json's,
    the student's identity; blender: fitted as recorded; members: their cached logits."""

    name: str
    sha256: str
    blender: Blender
    members: Members
    workspace: Workspace
    competition: Competition
    nested: bool = True

    def record(self, **options) -> dict:
        """What the student's settings.json records of this teacher: a change makes another experiment."""
        return {"blend": self.name, "blend_sha256": self.sha256, "nested": self.nested, **options}


def open_teacher(workspace: Workspace, competition: Competition, fold_of: np.ndarray, name: str, student: str, nested: bool = True) -> Teacher:
    """Blend `name` as a teacher of experiment `student` on folds `fold_of` (int (n_train,), the
    folds file's); one error line when it does not exist, was made on other train data or
    other folds, its members changed since, or the student is one of them."""
    where = workspace.submissions_dir / f"{name}.json"
    read = sha256_file(where) if where.is_file() else None
    document, blender = open_blend(workspace, name)
    if sha256_file(where) != read:
        raise EnsError(f"{where}: written again while this run read it; run the same command again")
    if document.get("train_sha256") != competition.train_hash:
        raise EnsError(f"{where}: blend {name} was made on other train data than {competition.train_csv.name}; run `ens blend -n {name} --force` again first")
    check_inputs_unchanged(workspace, document)
    names = [member["name"] for member in document["members"]]
    if student in {split_member(member)[0] for member in names}:
        raise EnsError(f"{where}: {student} is a member of blend {name}; an experiment cannot learn from a blend of itself: give the student a new name")
    members = load_members(workspace.models_dir, competition, names)
    if not np.array_equal(members.fold_of, fold_of):
        row = int(np.argmax(members.fold_of != fold_of))
        raise EnsError(
            f"{where}: blend {name}'s members were trained on other folds than {workspace.folds_dir / 'folds.csv'} "
            f"(id {str(competition.train_ids[row])!r} is in their fold {members.fold_of[row]}, in the folds file's {fold_of[row]}); "
            "a teacher must share the student's folds"
        )
    return Teacher(name, read, blender, members, workspace, competition, nested)


def fold_blender(teacher: Teacher, fold: int) -> Blender:
    """Fold k's teacher: the blend's method fitted on the OOF rows of the other folds (nested), or the blend itself."""
    if not teacher.nested:
        return teacher.blender
    members, targets = teacher.members, teacher.competition.targets
    keep = members.fold_of != fold
    return fit(clone(teacher.blender), members.oof[:, keep], targets[keep], members.fold_of[keep])


def test_outputs(teacher: Teacher, fold: int, blender: Blender) -> np.ndarray:
    """float64 (n_test, n_columns): fold k's teacher on the members' fold-k models' test logits
    (nested), or the blend's own test outputs, made from every fold's models."""
    if not teacher.nested:
        return test_probabilities(blender, teacher.workspace, teacher.competition, teacher.members)
    return np.asarray(blender.predict_proba(fold_test_stack(teacher.workspace.models_dir, teacher.competition, teacher.members.names, fold)), dtype=np.float64)


def pseudo_labels(teacher: Teacher, fold: int, threshold: float = 0.0, blender: Blender | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, targets) of fold k's test images: int64 (n_kept,) test rows and float64 (n_kept,
    n_columns) outputs-space targets. threshold 0: every image, soft; above: hard decisions,
    only for the images the teacher is at least that sure of (Task.confident). blender: fold
    k's, when already fitted (fold_blender)."""
    outputs = test_outputs(teacher, fold, fold_blender(teacher, fold) if blender is None else blender)
    if threshold <= 0:
        return np.arange(len(outputs), dtype=np.int64), outputs
    kept, hard = teacher.competition.task.confident(outputs, threshold)
    return np.flatnonzero(kept).astype(np.int64), hard[kept]


def distilled_targets(teacher: Teacher, fold: int, alpha: float, blender: Blender | None = None) -> np.ndarray:
    """float64 (n_train, n_columns): alpha x fold k's teacher on the members' OOF logits +
    (1 - alpha) x the true targets, in outputs space; fold k's own rows keep their true targets.
    blender: fold k's, when already fitted (fold_blender)."""
    competition = teacher.competition
    true = competition.task.as_outputs(competition.targets, len(competition.classes))
    blender = fold_blender(teacher, fold) if blender is None else blender
    taught = np.asarray(blender.predict_proba(teacher.members.oof), dtype=np.float64).reshape(true.shape)
    mixed = alpha * taught + (1 - alpha) * true
    held_out = teacher.members.fold_of == fold
    mixed[held_out] = true[held_out]
    return mixed
