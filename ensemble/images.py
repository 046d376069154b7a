"""Decoding images into one uint8 array at the training size.

Grayscale, palette, RGBA and 16-bit files all become RGB; transparent pixels are laid on
black. Any size is resized (not cropped) to size x size. Decoding runs on threads: Pillow
releases the GIL while it decodes and resizes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from joblib import Parallel, delayed
from PIL import Image, ImageOps, UnidentifiedImageError

from ensemble.errors import EnsError


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """32-bit or float grayscale to 0..255, by the range its values use.

    0..1 floats are scaled up, 0..255 kept, 0..65535 keeps its top 8 bits; anything
    wider is scaled by its own maximum. Converting with Pillow instead would clip
    everything above 255 and turn 0..1 floats black.
    """
    high = float(pixels.max()) if pixels.size else 0.0
    if pixels.dtype.kind == "f" and high <= 1.0:
        scale = 255.0
    elif high <= 255:
        scale = 1.0
    elif high <= 65535:
        scale = 1 / 257
    else:
        scale = 255.0 / high
    return np.clip(np.nan_to_num(pixels * scale), 0, 255).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L"):
        # 16-bit: keep the top 8 bits of every image alike, however dark one of them is.
        image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257).round().astype(np.uint8))
    elif image.mode in ("I", "F"):
        dtype = np.float32 if image.mode == "F" else np.float64
        image = Image.fromarray(to_uint8(np.asarray(image, dtype=dtype)))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def read_image(path: Path, size: int, image_id: str = "") -> np.ndarray:
    """One image as uint8 (size, size, 3); an unreadable file is an EnsError naming it and its id."""
    try:
        with Image.open(path) as image:
            image = to_rgb(ImageOps.exif_transpose(image))
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise EnsError(f"{path}: image not found for id {str(image_id)!r}") from None
    except Image.DecompressionBombError as error:
        raise EnsError(f"{path}: image for id {str(image_id)!r} is over Pillow's size limit: {error}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise EnsError(f"{path}: cannot read image for id {str(image_id)!r}: {error}") from None


def read_images(paths: Sequence[Path], ids: Sequence[str], size: int, jobs: int | None = None) -> np.ndarray:
    """Every image as one uint8 array (n_images, size, size, 3), in the order given.

    jobs: threads; default one per CPU core, at most 8.
    """
    jobs = jobs or min(8, os.cpu_count() or 1)
    images = np.empty((len(paths), size, size, 3), dtype=np.uint8)

    def fill(start: int, stop: int) -> None:
        for row in range(start, stop):
            images[row] = read_image(paths[row], size, ids[row])

    chunk = 256
    Parallel(n_jobs=jobs, prefer="threads")(
        delayed(fill)(start, min(start + chunk, len(paths))) for start in range(0, len(paths), chunk)
    )
    return images
