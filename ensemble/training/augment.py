"""Train-time augmentation: random transforms of whole uint8 batches, on the device.

`--augment hflip,shift:0.1,erase:0.25` is a comma list of registered transforms, applied in
order to each training batch, uint8 (n, 3, h, w) in and out, before it is normalised and
resized to its stage's size. Every random draw comes from a torch.Generator on the CPU that
the training loop seeds per (seed, fold, epoch): the same epoch draws the same transforms on
any device, so a resumed run stays bit-identical.

Units, the same as the TTA views': `shift:F` and `scale:LO-HI` are fractions of the image
side, `rotate:DEG` degrees, `rot90` a random multiple of 90 degrees. Consecutive geometric
transforms (shift, scale, rotate) are folded into one affine warp, so an image is
interpolated once. Flips and rotations change what digits and text mean (a 6 becomes a 9),
so the default has none; add them for photos, textures and aerial or medical images.

The pixels that shift, scale and rotate bring in from outside the image take the mean colour
(nets.networks.normalization), as the TTA views of the same names do (train.augment_fill
"mean"); experiments recorded before that setting existed filled them with black: those whose
spec warps record black (identity.LEGACY) and resume with --augment-fill black.

The transforms themselves are in transforms.py. Torch is imported inside functions: the
names are read by the CLI's help text and by the settings check, which must not pay for it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

from ensemble.errors import EnsError
from ensemble.registry import Registry
from ensemble.training.transforms import Affine, Color, Erase, Flip, Rot90, Rotate, Scale, Shift, Transform, warp

if TYPE_CHECKING:
    import torch


# name -> (parameter text or None -> Transform); the factory checks its parameter.
TRANSFORMS: Registry[Callable[[str | None], Transform]] = Registry("augmentation")


def number(text: str | None, name: str, low: float, high: float, example: str) -> float:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not low <= value <= high:
        given = f"got {name}:{text}" if text is not None else "got none"
        raise EnsError(f"augmentation {name} needs a number in {low:g}..{high:g}, e.g. {example}; {given}")
    return value


def no_parameter(name: str, text: str | None) -> None:
    if text is not None:
        raise EnsError(f"augmentation {name}:{text}: {name} takes no parameter")


@TRANSFORMS.register("hflip")
def hflip(text):
    no_parameter("hflip", text)
    return Flip(-1)


@TRANSFORMS.register("vflip")
def vflip(text):
    no_parameter("vflip", text)
    return Flip(-2)


@TRANSFORMS.register("rot90")
def rot90(text):
    no_parameter("rot90", text)
    return Rot90()


@TRANSFORMS.register("shift")
def shift(text):
    return Shift(number(text, "shift", 0, 0.5, "shift:0.1"))


@TRANSFORMS.register("scale")
def scale(text):
    low, dash, high = (text or "").partition("-")
    try:
        bounds = [number(part, "scale", 0.05, 2, "scale:0.6-1") for part in (low, high)] if dash else None
    except EnsError:
        bounds = None
    if bounds is None:  # quote the whole part: 'scale:0.9', not what one half of it left
        given = f"got scale:{text}" if text is not None else "got none"
        raise EnsError(f"augmentation scale needs LO-HI, two numbers in 0.05..2 (fractions of the side), e.g. scale:0.6-1; {given}")
    if bounds[0] > bounds[1]:
        raise EnsError(f"augmentation scale:{text}: LO must not exceed HI, e.g. scale:0.6-1")
    return Scale(*bounds)


@TRANSFORMS.register("rotate")
def rotate(text):
    return Rotate(number(text, "rotate", 0, 180, "rotate:15"))


@TRANSFORMS.register("color")
def color(text):
    return Color(number(text, "color", 0, 1, "color:0.3"))


@TRANSFORMS.register("erase")
def erase(text):
    return Erase(number(text, "erase", 0, 1, "erase:0.25"))


def canonical(spec: str) -> str:
    """One spelling per spec (' hflip, shift:0.1 ' -> 'hflip,shift:0.1'; '' -> 'none')."""
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    return ",".join(parts) if parts else "none"


def parse(spec: str) -> list[Transform]:
    """'hflip,shift:0.1' -> transforms; 'none' or '' -> []. Unknown names: one EnsError listing them.
    A name given twice is refused: the two would compose past the range each one checks."""
    spec = canonical(spec)
    if spec == "none":
        return []
    if "none" in spec.split(","):
        raise EnsError(f"augmentation {spec}: none means no transforms and cannot be combined with transforms; leave it out")
    transforms, named = [], set()
    for part in spec.split(","):
        name, colon, text = part.partition(":")
        if name in named:
            raise EnsError(f"--augment names {name} twice ({spec}); give each transform once, with the strength wanted")
        named.add(name)
        transforms.append(TRANSFORMS.get(name)(text if colon else None))
    return transforms


# train.augment_fill: the backbone's normalisation mean (0..1 per channel) -> the colour,
# 0..255, of the pixels a warp brings in from outside the image.
FILLS: Registry[Callable[[tuple[float, ...]], tuple[float, ...]]] = Registry("augment fill")
FILLS.register("mean")(lambda mean: tuple(255.0 * channel for channel in mean))
FILLS.register("black")(lambda mean: (0.0, 0.0, 0.0))


class Augment:
    """The transforms of a spec, applied in order; consecutive affine ones warp once.

    fill: "mean" (the mean colour, see nets.networks.normalization) or "black" (what
    experiments before train.augment_fill did); mean: the backbone's, 0..1 per channel.
    """

    def __init__(self, spec: str, fill: str = "mean", mean: tuple[float, ...] | None = None):
        import torch

        from ensemble.nets.networks import IMAGENET_MEAN

        self.transforms = parse(spec)
        self.fill = torch.tensor(FILLS.get(fill)(tuple(mean or IMAGENET_MEAN)), dtype=torch.float32)

    def __bool__(self) -> bool:
        return bool(self.transforms)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """images: uint8 (n, 3, h, w) on any device -> uint8 (n, 3, h, w); draws from `generator`."""
        pending = None  # composed matrices of the affine transforms not yet applied
        for transform in self.transforms:
            if isinstance(transform, Affine):
                matrices = transform.matrices(len(images), generator)
                pending = matrices if pending is None else pending @ matrices
                continue
            if pending is not None:
                images, pending = warp(images, pending, self.fill), None
            images = transform(images, generator)
        return images if pending is None else warp(images, pending, self.fill)
