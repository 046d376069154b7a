"""A blend as a teacher (blend/teacher.py) and a student's rows (training/student.py): fold k's
lesson never depends on fold k's labels nor on the member models that trained on them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ensemble import tasks
from ensemble.artifacts import store
from ensemble.blend import teacher as teachers
from ensemble.blend.run import blend_experiments
from ensemble.blend.teacher import TeacherOptions, distilled_targets, open_teacher, pseudo_labels
from ensemble.config import Workspace
from ensemble.data.competition import load_competition
from ensemble.data.folds import read_folds
from ensemble.errors import EnsError
from ensemble.inference.scaling import UNSCALED, Standardised, UnitRange
from ensemble.io import npz_bytes, write_bytes
from ensemble.training.losses import for_task
from ensemble.training.recipe import mix_batch
from ensemble.training.student import Lesson, StudentRows, weighted_loss


def teacher_of(root, method: str, nested: bool = True, student: str = "s"):
    workspace = Workspace.load(root)
    blend_experiments(workspace, method, method, ["a", "b"])
    competition = load_competition(workspace, check_images=False)
    folds = read_folds(workspace, competition)
    return open_teacher(workspace, competition, folds.fold_of, method, student, nested)


def with_targets(teacher, targets: np.ndarray):
    """The same teacher on a competition whose labels are `targets`."""
    return dataclasses.replace(teacher, competition=dataclasses.replace(teacher.competition, targets=targets))


def informative(teacher):
    """The teacher with members whose OOF logits say much: a knows the labels, b is noise, so
    what a blend learns from them depends on the labels it is fitted on."""
    rng = np.random.default_rng(0)
    targets = teacher.competition.targets
    good = 3 * np.eye(3)[targets] + rng.normal(size=(len(targets), 3))
    oof = np.stack([good, rng.normal(size=good.shape)]).astype(np.float32)
    return dataclasses.replace(teacher, members=dataclasses.replace(teacher.members, oof=oof))


@pytest.mark.parametrize("method", ["weighted", "stack"])
def test_fold_k_lesson_ignores_fold_k_labels_the_leaky_teacher_does_not(trained_copy, method):
    teacher = informative(teacher_of(trained_copy, method))
    fold_of = teacher.members.fold_of
    relabelled = teacher.competition.targets.copy()
    relabelled[fold_of == 0] = (relabelled[fold_of == 0] + 1) % 3  # fold 0's labels, all wrong
    rows, before = pseudo_labels(teacher, 0)
    _, after = pseudo_labels(with_targets(teacher, relabelled), 0)
    np.testing.assert_array_equal(before, after)
    assert np.array_equal(rows, np.arange(len(teacher.competition.test_ids)))
    np.testing.assert_allclose(before.sum(axis=1), 1.0)
    # Fold 1's teacher learns from fold 0's rows: the same change moves it.
    assert not np.allclose(pseudo_labels(teacher, 1)[1], pseudo_labels(with_targets(teacher, relabelled), 1)[1])
    # The leaky teacher is the blend as fitted on every OOF row, fold 0's labels included, for every fold.
    leaky = dataclasses.replace(teacher, nested=False)
    np.testing.assert_array_equal(pseudo_labels(leaky, 0)[1], pseudo_labels(leaky, 2)[1])
    assert not np.allclose(pseudo_labels(leaky, 0)[1], before)
    # Distillation: the other folds' targets come from a blend that never saw fold 0's labels.
    kept = distilled_targets(teacher, 0, 0.5)
    moved = distilled_targets(with_targets(teacher, relabelled), 0, 0.5)
    np.testing.assert_array_equal(kept[fold_of != 0], moved[fold_of != 0])


def test_fold_k_pseudo_labels_read_only_the_members_fold_k_models(trained_copy):
    teacher = teacher_of(trained_copy, "mean")
    before = {fold: pseudo_labels(teacher, fold)[1] for fold in range(3)}
    path = store.ExperimentDir(teacher.workspace.models_dir, "a").fold_test_path(1)
    logits = store.load_logits(path)
    write_bytes(path, npz_bytes(ids=logits.ids, classes=np.asarray(logits.classes), logits=logits.values + np.array([5, 0, 0], dtype=np.float32)))
    after = {fold: pseudo_labels(teacher, fold)[1] for fold in range(3)}
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[2], after[2])
    assert (after[1][:, 0] > before[1][:, 0]).all()


def test_hard_pseudo_labels_keep_only_confident_images(trained_copy):
    teacher = teacher_of(trained_copy, "mean")
    soft = teachers.test_outputs(teacher, 0, teacher.blender)  # mean learns nothing: the nested blend is the blend
    threshold = float(np.median(soft.max(axis=1)))
    rows, hard = pseudo_labels(teacher, 0, threshold)
    assert 0 < len(rows) < len(soft)
    np.testing.assert_array_equal(rows, np.flatnonzero(soft.max(axis=1) >= threshold))
    np.testing.assert_array_equal(hard, np.eye(3)[soft[rows].argmax(axis=1)])


def test_distilled_targets_mix_teacher_and_labels_and_keep_held_out_rows_true(trained_copy):
    teacher = teacher_of(trained_copy, "mean")
    competition, fold_of = teacher.competition, teacher.members.fold_of
    true = np.eye(3)[competition.targets]
    taught = tasks.get("single_label").outputs(teacher.members.oof).mean(axis=0)
    mixed = distilled_targets(teacher, 2, 0.25)
    np.testing.assert_allclose(mixed[fold_of != 2], 0.25 * taught[fold_of != 2] + 0.75 * true[fold_of != 2], atol=1e-6)
    np.testing.assert_array_equal(mixed[fold_of == 2], true[fold_of == 2])


def test_kinds_without_hard_decisions_refuse_a_threshold():
    with pytest.raises(EnsError, match="pseudo-threshold"):
        tasks.get("regression").confident(np.zeros((3, 1)), 0.9)
    rows, hard = tasks.get("multi_label").confident(np.array([[0.95, 0.02], [0.95, 0.6]]), 0.9)
    assert rows.tolist() == [True, False] and hard.tolist() == [[1, 0], [1, 1]]


@pytest.mark.parametrize("options, message", [
    (TeacherOptions(pseudo="b", pseudo_threshold=1.0), "--pseudo-threshold 1"),
    (TeacherOptions(pseudo="b", pseudo_weight=0), "--pseudo-weight 0"),
    (TeacherOptions(distill="b", distill_alpha=1.5), "--distill-alpha 1.5"),
])
def test_teacher_options_refuse_values_out_of_range(options, message):
    with pytest.raises(EnsError, match=message):
        options.check()


def test_student_rows_put_test_images_after_train_images_with_their_weight():
    images = np.arange(4)[:, None, None, None] * np.ones((1, 2, 2, 3), dtype=np.uint8)
    test_images = 10 + np.arange(3)[:, None, None, None] * np.ones((1, 2, 2, 3), dtype=np.uint8)
    lesson = Lesson(test_rows=np.array([2, 0]), test_targets=np.array([[0.2, 0.8], [1.0, 0.0]]), test_weight=0.5)
    targets = np.array([0, 1, 1, 0])
    student = StudentRows(lesson, tasks.SINGLE_LABEL, targets, 2, np.array([0, 3]), UNSCALED)
    assert student.rows.tolist() == [0, 3, 4, 5]
    np.testing.assert_allclose(student.weighted_targets[[0, 3, 4, 5]], [[1, 0, 1], [1, 0, 1], [0.2, 0.8, 0.5], [1, 0, 0.5]])
    read = student.images(np.array([5, 0, 4, 3]), images, test_images)
    assert read[:, 0, 0, 0].tolist() == [10, 0, 12, 3]


def test_student_rows_encode_a_regression_with_the_folds_scale():
    lesson = Lesson(train_targets=np.array([[1.0], [2.0], [3.0]]), test_rows=np.array([1]), test_targets=np.array([[2.5]]))
    scale = Standardised.fit(np.array([1.0, 3.0]))
    student = StudentRows(lesson, tasks.get("regression"), np.array([1.0, 2.0, 3.0]), 1, np.array([0, 2]), scale)
    np.testing.assert_allclose(student.weighted_targets[:, 0], scale.encode(np.array([1.0, 2.0, 3.0, 2.5]))[:, 0])
    np.testing.assert_array_equal(student.weighted_targets[:, 1], 1.0)


def test_a_teachers_values_are_clipped_to_the_folds_range_before_a_bce_regression_trains_on_them():
    lesson = Lesson(train_targets=np.array([[12.0], [2.0], [-3.0]]))
    scale = UnitRange.fit(np.array([0.0, 10.0]))
    student = StudentRows(lesson, tasks.get("regression"), np.array([0.0, 2.0, 10.0]), 1, np.array([0, 1, 2]), scale)
    np.testing.assert_allclose(student.weighted_targets[:, 0], [1.0, 0.2, 0.0])


def test_mixing_mixes_a_rows_weight_with_its_targets():
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.3, 0.7, 0.3], [0.5, 0.5, 0.5]])  # weight = first column
    for seed in range(5):
        _, mixed = mix_batch(torch.zeros(4, 3, 8, 8), targets, 2, 0.4, 1.0, np.random.default_rng(seed))
        torch.testing.assert_close(mixed[:, 2], mixed[:, 0])
        torch.testing.assert_close(mixed[:, :2].sum(dim=1), torch.ones(4))


def test_a_lesson_needs_a_target_per_test_image():
    with pytest.raises(ValueError, match="2 rows, 1 targets"):
        Lesson(test_rows=np.array([0, 1]), test_targets=np.zeros((1, 3)))


def test_weighted_loss_is_the_mean_at_weight_one_and_ignores_weight_zero_rows():
    loss = for_task("auto", tasks.SINGLE_LABEL)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    soft = torch.tensor([[1.0, 0.0], [0.3, 0.7], [0.0, 1.0]])
    plain = loss.build(0.0, None, torch.device("cpu"))(logits, soft)
    weighted = weighted_loss(loss.build(0.0, None, torch.device("cpu"), "none"))
    torch.testing.assert_close(weighted(logits, torch.cat([soft, torch.ones(3, 1)], 1)), plain)
    without_last = loss.build(0.0, None, torch.device("cpu"))(logits[:2], soft[:2])
    torch.testing.assert_close(weighted(logits, torch.cat([soft, torch.tensor([[1.0], [1.0], [0.0]])], 1)), without_last)
