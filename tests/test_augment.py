"""Train-time transforms: every registered one keeps shape and dtype, follows its seed, changes images."""

import pytest
import torch
from typer.testing import CliRunner

from ensemble.cli import app
from ensemble.config import TrainSettings
from ensemble.errors import EnsError
from ensemble.tasks import SINGLE_LABEL
from ensemble.training.augment import TRANSFORMS, Augment, canonical
from ensemble.training.preflight import validate

# A parameter for each transform that takes one; every registered name must be here.
EXAMPLES = {
    "hflip": "hflip", "vflip": "vflip", "rot90": "rot90", "shift": "shift:0.2", "scale": "scale:0.5-0.9",
    "rotate": "rotate:30", "color": "color:0.5", "erase": "erase:1",
}


def batch(n=6, side=12):
    return torch.randint(0, 256, (n, 3, side, side), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_every_transform_is_exercised_here():
    assert sorted(EXAMPLES) == TRANSFORMS.names()


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_transform_keeps_shape_and_dtype_and_follows_its_seed(name):
    images = batch()
    augment = Augment(EXAMPLES[name])
    first = augment(images, torch.Generator().manual_seed(1))
    assert first.shape == images.shape and first.dtype == torch.uint8
    assert torch.equal(first, augment(images, torch.Generator().manual_seed(1))), "same seed, same images"
    assert not torch.equal(first, images), "a transform that never changes anything"
    assert not torch.equal(first, augment(images, torch.Generator().manual_seed(2))), "another seed, other draws"


def test_geometric_transforms_move_pixels_as_their_units_say():
    images = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    images[..., 3, 3] = 200
    flipped = Augment("hflip")(images.repeat(64, 1, 1, 1), torch.Generator().manual_seed(0))
    assert {tuple(torch.nonzero(image[0]).tolist()[0]) for image in flipped} == {(3, 3), (3, 4)}
    turned = Augment("rot90")(images.repeat(64, 1, 1, 1), torch.Generator().manual_seed(0))
    assert {tuple(torch.nonzero(image[0]).tolist()[0]) for image in turned} == {(3, 3), (3, 4), (4, 3), (4, 4)}
    # shift:0 and scale:1-1 are the identity, pixel for pixel (one warp, no blur).
    still = batch()
    assert torch.equal(Augment("shift:0,scale:1-1,rotate:0")(still, torch.Generator()), still)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("flip", "unknown augmentation 'flip'; expected one of: color, erase, hflip"),
        ("shift:2", r"shift needs a number in 0..0.5, e.g. shift:0.1; got shift:2"),
        ("scale:0.9-0.5", "LO must not exceed HI"),
        ("scale:0.5", r"scale needs LO-HI, two numbers in 0.05..2 \(fractions of the side\), e.g. scale:0.6-1; got scale:0.5$"),
        ("scale:0.9", r"e.g. scale:0.6-1; got scale:0.9$"),
        ("scale:0.5-9", r"scale needs LO-HI.*; got scale:0.5-9$"),
        ("scale", r"scale needs LO-HI.*; got none$"),
        ("none,hflip", r"augmentation none,hflip: none means no transforms and cannot be combined with transforms"),
        ("hflip, none", r"augmentation hflip,none: none means no transforms"),
        ("hflip:1", "hflip takes no parameter"),
        ("erase", r"erase needs a number in 0..1, e.g. erase:0.25; got none"),
        # Named twice, a transform composes with itself past its range (shift 0.5 + 0.5 = 1).
        ("shift:0.5,shift:0.5", "--augment names shift twice"),
        ("hflip,vflip,hflip", "--augment names hflip twice"),
    ],
)
def test_bad_specs_are_refused_by_the_registry(spec, message):
    with pytest.raises(EnsError, match=message):
        validate(TrainSettings(augment=spec), SINGLE_LABEL)


def test_specs_are_spelled_one_way():
    assert canonical(" hflip , shift:0.1,") == "hflip,shift:0.1"
    assert validate(TrainSettings(augment=""), SINGLE_LABEL).augment == "none" == TrainSettings().augment
    assert not Augment("none")


def test_unknown_transform_is_one_error_line_exit_1(competition_dir):
    result = CliRunner().invoke(app, ["train-folds", "-w", str(competition_dir), "-n", "x", "--augment", "hflip,twirl"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: unknown augmentation 'twirl'; expected one of: color, erase, hflip, rot90, rotate, scale, shift, vflip"
    ]
    assert not (competition_dir / "models" / "x").exists()


def test_a_shift_brings_in_the_mean_colour_and_a_legacy_run_black():
    images = torch.full((64, 3, 16, 16), 200, dtype=torch.uint8)
    mean = (0.5, 0.25, 0.0)
    new = Augment("shift:0.4", mean=mean)(images, torch.Generator().manual_seed(0))
    old = Augment("shift:0.4", fill="black", mean=mean)(images, torch.Generator().manual_seed(0))
    assert not torch.equal(new, old)
    # Every pixel is the image's colour, the fill, or a blend of the two along the seam.
    assert set(new[:, 2].unique().tolist()) <= set(range(0, 201)) and 0 in new[:, 2].unique().tolist()
    border = new[:, :, 0, 0]  # a corner the shift uncovered for some images: the mean colour exactly
    assert any(pixel.tolist() == [128, 64, 0] for pixel in border)
    assert not any(pixel.tolist() == [0, 0, 0] for pixel in new.permute(0, 2, 3, 1).reshape(-1, 3))
    assert any(pixel.tolist() == [0, 0, 0] for pixel in old.permute(0, 2, 3, 1).reshape(-1, 3))


def test_the_fill_of_a_new_run_is_the_mean_and_of_an_old_record_black():
    from ensemble.artifacts.identity import with_legacy_values

    assert TrainSettings().augment_fill == "mean"
    assert with_legacy_values({"train": {"size": 32, "epochs": 1, "augment": "shift:0.1"}})["train"]["augment_fill"] == "black"
    assert with_legacy_values({"train": {"size": 32, "epochs": 1, "augment_fill": "mean"}})["train"]["augment_fill"] == "mean"
    # Nothing was filled where nothing warped: those experiments resume under today's default.
    for spec in ("hflip,color:0.2", "none", "rot90"):
        assert with_legacy_values({"train": {"size": 32, "epochs": 1, "augment": spec}})["train"]["augment_fill"] == "mean"
    assert with_legacy_values({"train": {"size": 32, "epochs": 1}})["train"]["augment_fill"] == "mean"
    assert with_legacy_values({"train": {"size": 32, "epochs": 1, "augment": "hflip,rotate:15"}})["train"]["augment_fill"] == "black"
    with pytest.raises(EnsError, match="unknown augment fill 'grey'; expected one of: black, mean"):
        validate(TrainSettings(augment_fill="grey"), SINGLE_LABEL)


@pytest.mark.parametrize("fill, colour", [("black", [0.0, 0.0, 0.0]), ("mean", [0.485 * 255, 0.456 * 255, 0.406 * 255])])
def test_the_trainer_augments_with_the_recorded_fill(fill, colour):
    """A resumed experiment recorded before augment_fill (legacy: black) keeps its black borders."""
    import numpy as np

    from ensemble import metrics
    from ensemble.training.trainer import FoldData, FoldTrainer

    images = np.zeros((8, 16, 16, 3), dtype=np.uint8)
    data = FoldData(images, np.arange(8) % 2, np.arange(6), np.arange(6, 8), images[:2], 2)
    settings = TrainSettings(size=16, augment="shift:0.1", augment_fill=fill, device="cpu")
    trainer = FoldTrainer(data, settings, 0, metrics.METRICS.get("accuracy"))
    assert torch.allclose(trainer.augment.fill, torch.tensor(colour))
