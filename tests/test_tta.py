"""TTA views, merges and batched prediction, looped over the registries."""

import numpy as np
import pytest
import timm
import torch

from ensemble.errors import EnsError
from ensemble.inference import tta
from ensemble.inference.batches import Batches
from ensemble.tasks import MERGES

VALUES = {"scale": "1.25", "shift": "0.125"}  # a value for each family that takes one


def family_views(name: str) -> list[tta.View]:
    return list(tta.parse_policy(f"{name}:{VALUES[name]}" if name in VALUES else name).views[1:])


def every_family() -> str:
    return ",".join(f"{name}:{VALUES[name]}" if name in VALUES else name for name in tta.VIEWS.names())


@pytest.mark.parametrize("name", tta.VIEWS.names())
def test_every_view_keeps_the_shape_and_flips_and_rotations_undo_exactly(name):
    batch = torch.randn(2, 3, 12, 12)
    for view in family_views(name):
        seen = view.apply(batch)
        assert seen.shape == batch.shape, view.name
        assert not torch.equal(seen, batch), f"{view.name} changes nothing"
        if name in ("hflip", "vflip", "rot90", "d4"):
            assert view.undo is not None and torch.equal(view.undo(seen), batch), view.name
        else:
            assert view.undo is None, f"{view.name} loses pixels; it cannot be undone"


def test_d4_is_the_eight_distinct_symmetries_of_a_square():
    batch = torch.arange(16.0).view(1, 1, 4, 4)
    policy = tta.parse_policy("d4")
    images = [view.apply(batch) for view in policy.views]
    assert policy.n_views == 8
    assert len({tuple(image.flatten().tolist()) for image in images}) == 8
    # Closed under composition: a flip of any of them is one of them.
    for image in images:
        assert any(torch.equal(image.flip(-1), other) for other in images)


def test_scale_and_shift_move_pixels_as_documented():
    batch = torch.zeros(1, 1, 10, 10)
    batch[..., 0, 0] = 1.0
    right, left, down, up = (view.apply(batch) for view in tta.shift(0.2))
    assert right[0, 0, 0, 2] == 1 and down[0, 0, 2, 0] == 1  # 0.2 of a 10-pixel side is 2 pixels
    assert left.sum() == 0 and up.sum() == 0  # moved out of the frame; the mean colour (0) fills in
    ones = torch.ones(1, 1, 10, 10)
    smaller = tta.scale(0.6)[0].apply(ones)
    assert smaller[0, 0, 0, 0] == 0 and smaller[0, 0, 5, 5] == 1  # shrunk, padded back to 10
    assert torch.allclose(tta.scale(1.5)[0].apply(ones), ones)  # grown, centre-cropped back


def test_the_spec_is_canonical_and_views_are_not_repeated():
    policy = tta.parse_policy(" hflip, none,d4 ,hflip, scale:1.10")
    assert policy.spec == "hflip,d4,scale:1.1"
    assert policy.n_views == 9 and policy.views[0].name == "identity"
    alone = tta.parse_policy("none", "gmean")
    assert (alone.spec, alone.merge, alone.n_views) == ("none", "mean", 1)  # one view: nothing to merge
    assert tta.parse_policy("").spec == "none"


@pytest.mark.parametrize(
    "spec, merge, message",
    [
        ("hflip,flip", "mean", "unknown TTA view 'flip'; expected one of: d4, hflip, none, rot90, scale, shift, vflip$"),
        ("scale", "mean", r"TTA view 'scale': expected scale:F"),
        ("hflip:2", "mean", "TTA view 'hflip:2': expected hflip without ':'"),
        ("scale:big", "mean", "'big' is not a number"),
        ("scale:1", "mean", "between 0.5 and 2 and not 1"),
        ("shift:0.7", "mean", "between 0 and 0.5"),
        ("hflip", "median", "unknown TTA merge 'median'; expected one of: gmean, max, mean$"),
    ],
)
def test_bad_policies_are_one_error(spec, merge, message):
    with pytest.raises(EnsError, match=message):
        tta.parse_policy(spec, merge)


def reference_merge(merge: str, logits: np.ndarray) -> np.ndarray:
    """The merges written plainly in probabilities, float64: what tta does in log space."""
    probs = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    merged = {
        "mean": probs.mean(axis=0),
        "gmean": np.prod(probs, axis=0) ** (1 / len(probs)),
        "max": probs.max(axis=0),
    }[merge]
    return np.log(merged / merged.sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("merge", MERGES.names())
@pytest.mark.parametrize("offset", [0.0, -30.0])  # -30: every logit negative (NaN in ttach's gmean)
def test_every_merge_agrees_with_a_float64_reference(merge, offset):
    logits = np.random.default_rng(0).normal(0, 3, size=(5, 7, 4)) + offset
    policy = tta.Policy(spec="test", merge=merge, views=(tta.IDENTITY,) * 5)
    merged = policy.merged(logits.astype(np.float32))
    assert merged.dtype == np.float32 and np.isfinite(merged).all()
    np.testing.assert_allclose(merged, reference_merge(merge, logits.astype(np.float32).astype(np.float64)), atol=2e-6)
    np.testing.assert_allclose(np.exp(merged.astype(np.float64)).sum(axis=1), 1.0, atol=1e-5)


def test_one_view_keeps_the_logits_unchanged():
    logits = np.random.default_rng(1).normal(size=(1, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(tta.NO_TTA.merged(logits), logits[0])


@pytest.fixture(scope="module")
def net_and_images():
    torch.manual_seed(0)
    net = timm.create_model("test_resnet", pretrained=False, num_classes=3).eval()
    images = np.random.default_rng(0).integers(0, 256, size=(21, 16, 16, 3), dtype=np.uint8)
    return net, images


def test_batched_views_equal_one_pass_per_view(net_and_images):
    net, images = net_and_images
    batches = Batches(net, torch.device("cpu"), batch_size=8)
    policy = tta.parse_policy(every_family(), "gmean")
    rows = np.arange(3, 21)
    prediction = tta.predict(net, batches, images, rows, policy)
    with torch.inference_mode():
        inputs = batches.to_input(torch.from_numpy(images[rows]))
        per_view = np.stack([net(view.apply(inputs)).numpy() for view in policy.views])
    assert prediction.views.shape == (policy.n_views, len(rows), 3)
    np.testing.assert_allclose(prediction.views, per_view, atol=1e-5)
    np.testing.assert_allclose(prediction.logits, policy.merged(per_view), atol=1e-5)


def test_rows_per_pass_never_fall_below_the_loops_and_one_view_keeps_training_batches():
    assert tta.images_per_pass("cpu", 64, 1, 224) == 64
    assert tta.images_per_pass("cuda", 64, 8, 224) == 64  # 512 rows: a GPU takes them in one pass
    assert tta.images_per_pass("cpu", 64, 8, 32) * 8 <= tta.CPU_PIXELS_PER_PASS // (32 * 32)
    assert tta.images_per_pass("cpu", 64, 8, 224) * 8 >= 64  # rows per pass never below the loop's 64
    assert tta.images_per_pass("cpu", 2, 8, 512) >= 1


def test_a_family_with_a_number_says_so_in_its_parameter_help():
    from ensemble.inference.tta import VIEWS

    assert "mean colour" in VIEWS.get("shift").parameter_help and VIEWS.get("hflip").parameter_help == ""


def test_option_help_says_where_the_default_comes_from():
    from ensemble.cli.app import default_help
    from ensemble.config import TrainSettings

    assert default_help(TrainSettings, "optimizer") == "(default: ens.toml, else 'adamw')"
