"""Content keys of image lists: what an experiment records of the pixels it was trained on, and
what names a decoded-image cache file.

One key per image list: for each image in order, its path relative to the image folder, its
size in bytes, and a sha256 of its first and last 64 KB. Cheap (at most 128 KB read per image,
nothing decoded) and portable: a copied or moved workspace (cp -r, rsync, a new unzip) keeps
its key, while an image replaced by another changes it, even one of the same size whose
modification time was kept (cp -p), which a key of paths, sizes and times would miss.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ensemble.errors import EnsError

if TYPE_CHECKING:
    from ensemble.data.competition import Competition

EDGE_BYTES = 64 << 10
# Reading is I/O-bound (a network filesystem, a cold disk): a few threads hide the latency.
READERS = 8


def file_digest(path: Path) -> str:
    """'<bytes>:<sha256 of the first and last EDGE_BYTES>' of one file."""
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            digest = hashlib.sha256(stream.read(EDGE_BYTES))
            if size > EDGE_BYTES:
                stream.seek(max(EDGE_BYTES, size - EDGE_BYTES))
                digest.update(stream.read(EDGE_BYTES))
    except OSError as error:
        raise EnsError(f"{path}: cannot read: {error.strerror or error}") from None
    return f"{size}:{digest.hexdigest()}"


def content_key(paths: Sequence[Path], folder: Path) -> str:
    """sha256 of every image's path relative to `folder`, byte size and edges, in order."""
    folder = Path(folder)
    with ThreadPoolExecutor(READERS) as pool:
        digests = list(pool.map(file_digest, paths))
    digest = hashlib.sha256(b"ens-content 1\n")
    for path, file_key in zip(paths, digests):
        path = Path(path)
        relative = path.relative_to(folder) if path.is_relative_to(folder) else path.name
        digest.update(f"{relative.as_posix() if isinstance(relative, Path) else relative}\t{file_key}\n".encode())
    return digest.hexdigest()


def competition_keys(competition: "Competition") -> dict[str, str]:
    """{'train': key, 'test': key} of the competition's images, as settings.json records them."""
    return {
        "train": content_key(competition.train_image_paths(), competition.train_images),
        "test": content_key(competition.test_image_paths(), competition.test_images),
    }
