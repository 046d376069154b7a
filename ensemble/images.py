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

# What decoding does to a file; part of the image cache's key (cache.py): bump it when a change
# here gives other pixels, so caches decoded the old way are not read.
DECODER = 1


def float_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Float grayscale to 0..255: 0..1 images are scaled up, others clipped.

    Converting with Pillow instead would turn 0..1 floats black.
    """
    scale = 255.0 if pixels.size and float(np.nanmax(pixels)) <= 1.0 else 1.0
    return np.clip(np.nan_to_num(pixels * scale), 0, 255).round().astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit data (older Pillows open it as 32-bit "I"): keep the top 8 bits, the same
        # scale for every image however dark, instead of Pillow's clipping above 255.
        pixels = np.asarray(image, dtype=np.float64) / 257
        image = Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))
    elif image.mode == "F":
        image = Image.fromarray(float_to_uint8(np.asarray(image, dtype=np.float32)))
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

    # Enough pieces for every thread, however few (and large) the images.
    chunk = max(1, min(256, -(-len(paths) // jobs)))
    Parallel(n_jobs=jobs, prefer="threads")(
        delayed(fill)(start, min(start + chunk, len(paths))) for start in range(0, len(paths), chunk)
    )
    return images
