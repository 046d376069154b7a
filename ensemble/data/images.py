"""Decoding images into one uint8 array at the training size.

Grayscale, palette, RGBA, 16-bit, 32-bit and float files all become RGB; transparent pixels
are laid on black. Any size is resized (not cropped) to size x size. Decoding runs on threads: Pillow
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


def stretch_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """32-bit integer or float grayscale to 0..255, stretched from the image's own min..max.

    Such files say nothing about the range their values are meant to span: 8-bit, 12-bit
    and 16-bit data are all stored as 32-bit integers, floats may be 0..1, -1..1 or
    reflectances in the thousands. Any fixed scale turns some of them black, white or a
    handful of grey levels; the image's own range keeps all 256 levels. NaN and infinite
    pixels become black; a constant image is black.
    """
    pixels = pixels.astype(np.float64)
    finite = np.isfinite(pixels)
    if not finite.any():
        return np.zeros(pixels.shape, dtype=np.uint8)
    low, high = pixels[finite].min(), pixels[finite].max()
    scaled = (pixels - low) * (255.0 / (high - low)) if high > low else np.zeros_like(pixels)
    return np.clip(np.where(finite, scaled, 0), 0, 255).round().astype(np.uint8)


# Formats that hold at most 16 bits a sample; older Pillows open their 16-bit grayscale as "I".
SIXTEEN_BIT_FORMATS = ("PNG", "PPM")


def to_rgb(image: Image.Image, file_format: str | None = None) -> Image.Image:
    """Any Pillow image as RGB; file_format (Image.format, e.g. "PNG") tells 16-bit data
    that an older Pillow opened as 32-bit from real 32-bit data."""
    if image.mode in ("I;16", "I;16B", "I;16L") or (image.mode == "I" and file_format in SIXTEEN_BIT_FORMATS):
        # 16-bit files mean 0..65535: keep the top 8 bits, the same scale for every image
        # however dark, instead of Pillow's clipping above 255.
        pixels = np.asarray(image, dtype=np.float64) / 257
        image = Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))
    elif image.mode in ("I", "F"):
        image = Image.fromarray(stretch_to_uint8(np.asarray(image)))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def read_image(path: Path, size: int, image_id: str = "") -> np.ndarray:
    """One image as uint8 (size, size, 3); an unreadable file is an EnsError naming it and its id."""
    try:
        with Image.open(path) as image:
            image = to_rgb(ImageOps.exif_transpose(image), image.format)
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise EnsError(f"{path}: image not found for id {str(image_id)!r}") from None
    except Image.DecompressionBombError as error:
        raise EnsError(f"{path}: image for id {str(image_id)!r} is over Pillow's size limit: {error}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise EnsError(f"{path}: cannot read image for id {str(image_id)!r}: {error}") from None


def median_side(paths: Sequence[Path], ids: Sequence[str], sample: int = 500) -> float:
    """The median longer side of the images (of `sample` of them, evenly spread), read from their
    headers alone: milliseconds for a sample of any size of image."""
    step = max(1, len(paths) // sample)
    sides = []
    for row in range(0, len(paths), step):
        try:
            with Image.open(paths[row]) as image:
                sides.append(max(image.size))
        except FileNotFoundError:
            raise EnsError(f"{paths[row]}: image not found for id {str(ids[row])!r}") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
            raise EnsError(f"{paths[row]}: cannot read image for id {str(ids[row])!r}: {error}") from None
    return float(np.median(sides))


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
