"""Blend members must match the competition (and so each other) on ids and classes."""

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
