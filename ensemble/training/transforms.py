"""Train-time transforms of whole uint8 batches, on the device: the tensor half of augment.py.

Each transform draws its parameters from a torch.Generator on the CPU (see augment.py for
why) and maps uint8 (n, 3, h, w) to uint8 (n, 3, h, w). Geometric ones (shift, scale,
rotate) give matrices instead, which Augment composes and `warp` applies once; the pixels
they bring in from outside the image take a fill colour (augment.FILLS).

Random resized crop and random erasing follow Szegedy et al. 2015 and Zhong et al. 2017
(arXiv:1708.04896); the colour jitter is torchvision's brightness/contrast/saturation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class Transform:
    """One random transform of a batch: uint8 (n, 3, h, w) -> uint8 (n, 3, h, w), same device."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


class Affine(Transform):
    """A geometric transform, as one 2x3 matrix per image in affine_grid's normalised coordinates.

    Augment composes consecutive ones and warps once (see `warp`), so they are never called.
    """

    def matrices(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """float32 (n, 3, 3) on the CPU: output coordinates -> input coordinates."""
        raise NotImplementedError


def identity_matrices(n: int) -> torch.Tensor:
    import torch

    return torch.eye(3).repeat(n, 1, 1)


def warp(images: torch.Tensor, matrices: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Resample each image through its matrix; pixels from outside the image take `fill`,
    float (3,) in 0..255."""
    import torch
    import torch.nn.functional as F

    matrices = matrices[:, :2].to(images.device)
    fill = fill.to(images.device).view(1, -1, 1, 1)
    # grid_sample pads with zeros: shift the colours so that zero is the fill, then back.
    pixels = images.float() - fill
    grid = F.affine_grid(matrices, list(pixels.shape), align_corners=False)
    warped = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (warped + fill).round_().clamp_(0, 255).to(torch.uint8)


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

    HI above 1 zooms out, with the fill colour around.
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
