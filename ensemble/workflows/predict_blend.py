"""`ens predict --blend`: a recorded blend (submissions/NAME.json) applied to a new test list.

Every member's fold models predict the images under the member's own TTA policy (a member
made by `ens predict --as` with its source's checkpoints; a member that is one TTA view, with
that view), the fold logits are combined as `ens blend` combined the cached ones, and the
blend's recorded parameters (blend/recorded.py) make the submission: nothing is refitted. On
the competition's own test images it writes what `ens blend` wrote. An exported bundle
(workflows/export/) runs the same `blend_new_images` on its own copies of the fold models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ensemble import tasks
from ensemble.artifacts.store import open_experiment
from ensemble.blend import recorded
from ensemble.blend.base import Blender
from ensemble.blend.members import split_member
from ensemble.blend.saved import check_inputs_unchanged, open_blend
from ensemble.config import Workspace
from ensemble.data.competition import Competition, load_competition
from ensemble.data.reading_rules import TestList, read_test_list, rules_of, submission_text
from ensemble.errors import EnsError
from ensemble.inference.checkpoints import checkpoint_owner, choose_policy, fold_checkpoints, settings_of
from ensemble.inference.fold_models import MemberModels, fold_model, predict_members
from ensemble.io import write_text


@dataclass(frozen=True)
class BlendPrediction:
    """images_per_second: measured over decoding and every fold model's prediction."""

    path: Path
    rows: int
    kind: str
    members: list[str]
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def used_members(blender: Blender, n_members: int) -> list[bool]:
    """Which members the blend reads: a member of weight zero (hill often leaves some out)
    adds nothing to a weighted mean of outputs, transformed or not, so it is not predicted."""
    weights = blender.weights_
    return [True] * n_members if weights is None else [bool(weight > 0) for weight in weights]


def workspace_members(workspace: Workspace, competition: Competition, names: list[str], used: list[bool], device) -> list[MemberModels | None]:
    """Each used member's fold models from the workspace's checkpoints (a predicted member's:
    its source's); None for a member the blend does not read."""
    members = []
    for name, needed in zip(names, used):
        if not needed:
            members.append(None)
            continue
        experiment_name, view = split_member(name)
        experiment = open_experiment(workspace.models_dir, experiment_name)
        settings = settings_of(experiment)
        owner = checkpoint_owner(workspace.models_dir, experiment)
        folds = list(range(settings["k"]))
        checkpoints, size = fold_checkpoints(owner, folds, settings, competition.classes)
        models = [fold_model(checkpoints[fold], checkpoints[fold]["state_dict"], owner.checkpoint_path(fold), device, settings["train"]["batch_size"]) for fold in folds]
        members.append(MemberModels(name, size, choose_policy(settings, None, None, competition.task), view, models))
    return members


def blend_new_images(
    blender: Blender, members: list[MemberModels | None], rules: dict, test_list: TestList, progress: Callable | None = None, amp: bool = False
) -> np.ndarray:
    """float64 (n, n_columns): the blend's outputs for test_list's images, in its order.
    members: in the blend's order, None where used_members says the blend does not read one
    (its logits are zeros, multiplied by its weight zero)."""
    predicted = [member for member in members if member is not None]
    outputs = iter(predict_members(predicted, test_list.paths, test_list.ids, tasks.get(rules["task"]), progress, amp))
    fold_counts = {len(member.folds) for member in predicted}
    if len(fold_counts) != 1:
        raise EnsError(f"the blend's members have different numbers of fold models: {', '.join(f'{m.name} {len(m.folds)}' for m in predicted)}")
    k = fold_counts.pop()
    unread = [np.zeros((len(test_list.ids), len(rules["classes"])), dtype=np.float32)] * k
    per_member = [unread if member is None else next(outputs) for member in members]
    fold_stacks = [np.stack([folds[fold] for folds in per_member]) for fold in range(k)]
    return recorded.apply(blender, fold_stacks)


def check_out(out: Path, force: bool) -> Path:
    out = Path(out).expanduser().resolve()
    if out.exists() and not force:
        raise EnsError(f"{out}: already exists; use --force to replace it")
    return out


def predict_blend(
    workspace: Workspace,
    name: str,
    test_csv: Path,
    test_images: Path,
    out: Path,
    device_name: str | None = None,
    force: bool = False,
    progress: Callable | None = None,
    amp: bool = False,
) -> BlendPrediction:
    """A CSV shaped like the sample submission for the ids of `test_csv`, in its order, from blend `name`.
    amp: CUDA autocast (fold_models.predict_members)."""
    from ensemble.nets.devices import resolve_device

    document, blender = open_blend(workspace, name)
    out = check_out(out, force)
    check_inputs_unchanged(workspace, document)
    competition = load_competition(workspace, check_images=False)
    rules = rules_of(competition)
    test_list = read_test_list(rules, test_csv, test_images)
    names = [member["name"] for member in document["members"]]
    members = workspace_members(workspace, competition, names, used_members(blender, len(names)), resolve_device(device_name or workspace.train.device))
    started = time.perf_counter()
    probs = blend_new_images(blender, members, rules, test_list, progress, amp)
    seconds = time.perf_counter() - started
    write_text(out, submission_text(rules, test_list.ids, probs))
    return BlendPrediction(out, len(test_list.ids), rules["submission"]["kind"], names, seconds)
