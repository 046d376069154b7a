"""Blend members must match the competition (and so each other) on ids and classes."""

import re

import numpy as np
import pytest

from ensemble.artifacts.store import Logits, load_logits, save_logits
from ensemble.blend.members import load_members
from ensemble.config import Workspace
from ensemble.data.competition import load_competition
from ensemble.errors import EnsError


def rewrite(path, change):
    save_logits(path, change(load_logits(path)))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda l: Logits(l.ids[::-1], l.classes, l.values[::-1]), None),  # another row order is fine
        (lambda l: Logits(np.where(l.ids == "0005", "9999", l.ids), l.classes, l.values), "no logits for id '0005'"),
        (lambda l: Logits(l.ids[1:], l.classes, l.values[1:]), "no logits for id '0000'"),
        (lambda l: Logits(l.ids, ("cat", "owl", "dog"), l.values), "classes"),
        (lambda l: Logits(l.ids, l.classes, np.where(l.ids[:, None] == "0003", np.nan, l.values)), r"id '0003'\) has a NaN"),
    ],
)
def test_members_are_aligned_by_id_or_refused(trained_copy, change, message):
    workspace = Workspace.load(trained_copy)
    competition = load_competition(workspace, check_images=False)
    expected = load_members(workspace.models_dir, competition, ["a", "b"])
    rewrite(trained_copy / "models" / "b" / "oof.npz", change)
    if message is None:
        np.testing.assert_array_equal(load_members(workspace.models_dir, competition, ["a", "b"]).oof, expected.oof)
    else:
        with pytest.raises(EnsError, match=message):
            load_members(workspace.models_dir, competition, ["a", "b"])


def test_incomplete_experiment_is_refused(trained_copy):
    (trained_copy / "models" / "a" / "oof.npz").unlink()
    workspace = Workspace.load(trained_copy)
    with pytest.raises(EnsError, match="not every fold is trained"):
        load_members(workspace.models_dir, load_competition(workspace, check_images=False), ["a"])


def damage(path):
    path.write_text("{")


LEFT_OUT = [
    (lambda root: (root / "models" / "p" / "oof.npz").unlink(), "p", re.escape("not every fold is predicted (done: [0, 1, 2]); run `ens predict --name a --as p` again")),
    (lambda root: (root / "models" / "b" / "oof.npz").unlink(), "b", re.escape("not every fold is trained (done: [0, 1, 2]); run `ens train-folds --name b` again")),
    (lambda root: damage(root / "models" / "b" / "settings.json"), "b", "cannot be read: .*b/settings.json: cannot read JSON"),
    (lambda root: damage(root / "models" / "p" / "settings.json"), "p", "cannot be read: .*p/settings.json: cannot read JSON"),
    (lambda root: damage(root / "models" / "a" / "fold0" / "result.json"), "p", "cannot be read: .*a/fold0/result.json: cannot read JSON"),
]


@pytest.mark.parametrize("change, name, reason", LEFT_OUT)
def test_default_members_leave_out_what_cannot_be_blended_and_say_why(trained_copy, change, name, reason):
    from ensemble.blend.members import resolve_names
    from tests.test_scores import make_predicted

    make_predicted(trained_copy)
    change(trained_copy)
    workspace = Workspace.load(trained_copy)
    names, left_out = resolve_names(workspace.models_dir, load_competition(workspace, check_images=False), None)
    assert name not in names and len(names) == 2 and list(left_out) == [name]
    assert re.match(reason, left_out[name])
