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

Random resized crop and random erasing follow Szegedy et al. 2015 and Zhong et al. 2017
(arXiv:1708.04896); the colour jitter is torchvision's brightness/contrast/saturation.

Torch is imported inside the transforms: the names are read by the CLI's help text and by
the settings check, which must not pay for importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ensemble.errors import EnsError
from ensemble.registry import Registry

if TYPE_CHECKING:
    import torch

DEFAULT = "none"


class Transform:
    """One random transform of a batch: uint8 (n, 3, h, w) -> uint8 (n, 3, h, w), same device."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


class Affine(Transform):
    """A geometric transform, as one 2x3 matrix per image in affine_grid's normalised coordinates."""

    def matrices(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """float32 (n, 3, 3) on the CPU: output coordinates -> input coordinates."""
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return warp(images, self.matrices(len(images), generator))


def identity_matrices(n: int) -> torch.Tensor:
    import torch

    return torch.eye(3).repeat(n, 1, 1)


def warp(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Resample each image through its matrix; pixels from outside the image are black."""
    import torch
    import torch.nn.functional as F

    matrices = matrices[:, :2].to(images.device)
    pixels = images.float()
    grid = F.affine_grid(matrices, list(pixels.shape), align_corners=False)
    warped = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped.round_().clamp_(0, 255).to(torch.uint8)


def uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    import torch

    return low + (high - low) * torch.rand(n, generator=generator)


def chosen(n: int, probability: float, generator: torch.Generator) -> torch.Tensor:
    """bool (n,): which images a transform of this probability applies to."""
    import torch

    return torch.rand(n, generator=generator) < probability


@dataclass(frozen=True)
class Flip(Transform):
    dim: int  # -1 mirrors left-right, -2 upside down

    def __call__(self, images, generator):
        import torch

        flip = chosen(len(images), 0.5, generator).to(images.device).view(-1, 1, 1, 1)
        return torch.where(flip, images.flip(self.dim), images)


@dataclass(frozen=True)
class Rot90(Transform):
    def __call__(self, images, generator):
        import torch

        turns = torch.randint(0, 4, (len(images),), generator=generator).to(images.device)
        if images.shape[-1] != images.shape[-2]:  # a quarter turn of a non-square image changes its shape
            turns = turns - turns % 2
        out = images
        for quarter in (1, 2, 3):
            rotated = torch.rot90(images, quarter, dims=(-2, -1))
            out = torch.where((turns == quarter).view(-1, 1, 1, 1), rotated, out)
        return out


@dataclass(frozen=True)
class Shift(Affine):
    fraction: float  # up to this fraction of the side, each way, on each axis

    def matrices(self, n, generator):
        matrices = identity_matrices(n)
        # affine_grid coordinates span 2 across the image.
        matrices[:, 0, 2] = uniform(n, -2 * self.fraction, 2 * self.fraction, generator)
        matrices[:, 1, 2] = uniform(n, -2 * self.fraction, 2 * self.fraction, generator)
        return matrices


@dataclass(frozen=True)
class Scale(Affine):
    """Random resized crop: a square of side LO..HI of the image's, anywhere inside, to full size.

    HI above 1 zooms out, with black around.
    """

    low: float
    high: float

    def matrices(self, n, generator):
        side = uniform(n, self.low, self.high, generator)
        room = (1 - side).abs()  # how far the crop's centre may move, in half-sides
        matrices = identity_matrices(n)
        matrices[:, 0, 0] = side
        matrices[:, 1, 1] = side
        matrices[:, 0, 2] = uniform(n, -1, 1, generator) * room
        matrices[:, 1, 2] = uniform(n, -1, 1, generator) * room
        return matrices


@dataclass(frozen=True)
class Rotate(Affine):
    degrees: float

    def matrices(self, n, generator):
        angle = uniform(n, -self.degrees, self.degrees, generator) * (math.pi / 180)
        matrices = identity_matrices(n)
        matrices[:, 0, 0] = angle.cos()
        matrices[:, 0, 1] = -angle.sin()
        matrices[:, 1, 0] = angle.sin()
        matrices[:, 1, 1] = angle.cos()
        return matrices


@dataclass(frozen=True)
class Color(Transform):
    """Brightness, contrast and saturation each times a factor in 1-S..1+S."""

    strength: float

    def __call__(self, images, generator):
        import torch

        n = len(images)
        factors = [uniform(n, 1 - self.strength, 1 + self.strength, generator).to(images.device).view(-1, 1, 1, 1) for _ in range(3)]
        brightness, contrast, saturation = factors
        pixels = images.float() * brightness
        grey = pixels.mean(dim=1, keepdim=True)  # per-pixel grey, for saturation
        pixels = grey + (pixels - grey) * saturation
        mean = pixels.mean(dim=(1, 2, 3), keepdim=True)
        pixels = mean + (pixels - mean) * contrast
        return pixels.round_().clamp_(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class Erase(Transform):
    """With probability P, one rectangle (2-25% of the area, aspect 1/3..3) becomes random noise."""

    probability: float

    def __call__(self, images, generator):
        import torch

        n, _, height, width = images.shape
        area = uniform(n, 0.02, 0.25, generator)
        aspect = uniform(n, math.log(1 / 3), math.log(3), generator).exp()
        box_h = (area * aspect).sqrt().clamp(max=1) * height
        box_w = (area / aspect).sqrt().clamp(max=1) * width
        top = uniform(n, 0, 1, generator) * (height - box_h)
        left = uniform(n, 0, 1, generator) * (width - box_w)
        apply = chosen(n, self.probability, generator)
        # Parameters come from the CPU generator; the pixels of noise from a device generator
        # seeded by it, so a GPU batch never crosses the bus.
        noise_generator = torch.Generator(images.device).manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        noise = torch.randint(0, 256, images.shape, generator=noise_generator, device=images.device, dtype=torch.uint8)
        box = [value.to(images.device).view(-1, 1, 1) for value in (top, top + box_h, left, left + box_w, apply)]
        rows = torch.arange(height, device=images.device).view(1, -1, 1)
        cols = torch.arange(width, device=images.device).view(1, 1, -1)
        inside = (rows >= box[0]) & (rows < box[1]) & (cols >= box[2]) & (cols < box[3]) & box[4]
        return torch.where(inside.unsqueeze(1), noise, images)


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
    low, _, high = (text or "").partition("-")
    bounds = [number(part, "scale", 0.05, 2, "scale:0.6-1") for part in (low, high)]
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
    """'hflip,shift:0.1' -> transforms; 'none' or '' -> []. Unknown names: one EnsError listing them."""
    spec = canonical(spec)
    if spec == "none":
        return []
    transforms = []
    for part in spec.split(","):
        name, colon, text = part.partition(":")
        transforms.append(TRANSFORMS.get(name)(text if colon else None))
    return transforms


class Augment:
    """The transforms of a spec, applied in order; consecutive affine ones warp once."""

    def __init__(self, spec: str):
        self.transforms = parse(spec)

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
                images, pending = warp(images, pending), None
            images = transform(images, generator)
        return images if pending is None else warp(images, pending)
