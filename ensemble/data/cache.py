"""The decoded-image cache: each (image list, size) decoded once into a uint8 .npy file.

Files live in the workspace's cache/ folder, named by a hash of the images' content key
(content.py: relative paths, byte sizes and each file's edges), the size, and images.DECODER
(bumped when decoding changes). A cache made from other files, or from the same files since
edited, has another name and is never read; a copied or moved workspace keeps its cache.

Peak memory does not depend on the dataset: decoding writes one chunk at a time into a
temporary file that is renamed into place when complete, and `CachedImages` reads the rows of
one batch with pread instead of mapping the file, so the pages it reads stay in the page cache
(shared, evictable) and out of the process's resident set. 100,000 images at 384 px are 44 GB
on disk and a batch in memory.

A process that reads a cache file holds a shared lock (flock) on it while it may read it, and
a build holds an exclusive one on its temporary file: `ens cache --clear` refuses to delete a
file anyone holds, rather than pull it from under a running train-folds or predict.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ensemble.data.content import competition_keys, content_key
from ensemble.data.images import DECODER, read_images
from ensemble.errors import EnsError
from ensemble.io import atomic_path, sha256_bytes, write_json

if TYPE_CHECKING:
    from ensemble.data.competition import Competition

CACHE_DIR = "cache"
CHUNK_BYTES = 32 << 20  # decoded pixels held in memory at once while building a cache


def cache_dir(workspace_root: Path) -> Path:
    return Path(workspace_root) / CACHE_DIR


def cache_key(images_key: str, size: int) -> str:
    """Hash of the images' content key (content.py) and of how they are decoded."""
    return sha256_bytes(f"ens-images {DECODER} {size}\n{images_key}".encode())


def lock(fd: int, operation: int) -> None:
    """flock, where the filesystem has it: without locks (some network mounts), a cache in use
    is not protected from a clear, and nothing else changes."""
    try:
        fcntl.flock(fd, operation)
    except OSError as error:
        if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise


class CachedImages:
    """uint8 (n_images, size, size, 3) in a .npy file, read a batch of rows at a time.

    Indexing with an int array or a slice returns a fresh ndarray of those rows. Pickles as
    its path, so processes on other machines read the same file (given a shared filesystem).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        with open(self.path, "rb") as stream:
            version = np.lib.format.read_magic(stream)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(stream)
            self.offset = stream.tell()
        if dtype != np.uint8 or fortran or len(shape) != 4 or shape[3] != 3:
            raise ValueError(f"{self.path}: not an image cache (shape {shape}, dtype {dtype})")
        if os.path.getsize(self.path) != self.offset + int(np.prod(shape)):
            raise ValueError(f"{self.path}: truncated")
        self.shape = tuple(shape)
        self.dtype = np.dtype(np.uint8)
        self.row_bytes = int(np.prod(shape[1:]))
        self._fd: int | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None}

    def hold(self) -> "CachedImages":
        """Open the file for reading and hold a shared lock on it, so `ens cache --clear` leaves it
        alone while this process may read it. Raises FileNotFoundError when the path no longer
        names the file (cleared meanwhile); a worker process holds it on its first read."""
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDONLY)
        try:
            lock(fd, fcntl.LOCK_SH)  # waits while a clear holds it; then the file is gone
            if os.stat(self.path).st_ino != os.fstat(fd).st_ino:
                raise FileNotFoundError(f"{self.path} was deleted and made again")
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(len(self)))
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if self._fd is None:
            try:
                self.hold()
            except FileNotFoundError:
                raise EnsError(f"{self.path}: the image cache was deleted while this run read it; run the same command again") from None
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        if not len(rows):
            return out
        flat = out.reshape(len(rows), self.row_bytes)
        # Consecutive rows come in one read: prediction walks the file in order.
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for start, stop in zip([0, *breaks], [*breaks, len(rows)]):
            first = int(rows[start])
            if first < 0 or int(rows[stop - 1]) >= len(self):
                raise IndexError(f"row {first} outside {self.path} ({len(self)} rows)")
            os.preadv(self._fd, [flat[start:stop]], self.offset + first * self.row_bytes)
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Every row at once; for small sets and tests, not for training."""
        return self[:] if dtype is None else self[:].astype(dtype)


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    n_images: int
    size: int
    bytes: int
    created: str
    source: str  # the folder of the first image, to tell entries apart
    damaged: str | None = None  # what is wrong with it; a damaged cache is decoded again when needed


def build(target: Path, paths: Sequence[Path], ids: Sequence[str], size: int) -> None:
    """Decode every image into `target` chunk by chunk; the file appears only when complete."""
    shape = (len(paths), size, size, 3)
    rows_per_chunk = max(1, CHUNK_BYTES // (size * size * 3))
    with atomic_path(target) as temporary:
        with open(temporary, "wb") as stream:
            lock(stream.fileno(), fcntl.LOCK_EX)  # in use: a clear meanwhile must not delete it
            header = {"descr": "|u1", "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_2_0(stream, header)
            for start in range(0, len(paths), rows_per_chunk):
                stop = min(start + rows_per_chunk, len(paths))
                read_images(paths[start:stop], ids[start:stop], size).tofile(stream)


def cached_images(
    workspace_root: Path, paths: Sequence[Path], ids: Sequence[str], size: int, images_key: str | None = None
) -> tuple[CachedImages, bool]:
    """The images of `paths` at `size`, from the cache, decoded into it first if missing.

    images_key: their content key (content.py), when the caller has it already. Returns
    (images, whether they were already cached). Several processes may ask at once: each
    builds its own temporary file and the last rename wins; the files are identical.
    """
    if images_key is None:
        images_key = content_key(paths, Path(os.path.commonpath([str(path) for path in paths])) if paths else Path("."))
    key = cache_key(images_key, size)
    folder = cache_dir(workspace_root)
    target = folder / f"images-{size}px-{len(paths)}-{key[:24]}.npy"
    if target.is_file():
        try:
            images = CachedImages(target)
            if images.shape == (len(paths), size, size, 3):
                return images.hold(), True
        except (OSError, ValueError):
            pass  # damaged, or cleared meanwhile: decoded again below
    build(target, list(paths), list(ids), size)
    source = str(Path(paths[0]).parent) if len(paths) else ""
    note = {"n_images": len(paths), "size": size, "key": key, "source": source, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json(target.with_suffix(".json"), note)
    try:
        return CachedImages(target).hold(), False
    except FileNotFoundError:
        raise EnsError(f"{target}: deleted as soon as it was written (ens cache --clear?); run the same command again") from None


@dataclass(frozen=True)
class ImagesRead:
    """Progress event: a run's train and test images are decoded (or found in the cache)."""

    n_train: int
    n_test: int
    size: int
    seconds: float
    from_cache: bool = False


def competition_images(
    workspace_root: Path, competition: "Competition", size: int, keys: dict[str, str] | None = None
) -> tuple[CachedImages, CachedImages, ImagesRead]:
    """The competition's train and test images at `size`, through the cache: (train, test, event).

    keys: content.competition_keys(competition), when the caller has them already."""
    started = time.perf_counter()
    keys = keys or competition_keys(competition)
    train, train_cached = cached_images(workspace_root, competition.train_image_paths(), competition.train_ids, size, keys["train"])
    test, test_cached = cached_images(workspace_root, competition.test_image_paths(), competition.test_ids, size, keys["test"])
    return train, test, ImagesRead(len(train), len(test), size, time.perf_counter() - started, train_cached and test_cached)


def read_note(path: Path) -> tuple[dict, str | None]:
    """A cache file's side file (cache/images-*.json): (its fields, what is wrong with it or None).
    Only `ens cache` reads it; the cache's name holds its key, so training never needs it."""
    if not path.is_file():
        return {}, None
    try:
        note = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return {}, f"{path.name} cannot be read ({error})"
    if not isinstance(note, dict):
        return {}, f"{path.name} is not a JSON object"
    return note, None


def list_cache(workspace_root: Path) -> list[CacheEntry]:
    """Every cache file, damaged ones included (with what is wrong): listing never fails on one."""
    entries = []
    for path in sorted(cache_dir(workspace_root).glob("images-*.npy")):
        note, damaged = read_note(path.with_suffix(".json"))
        try:
            n_images, size = CachedImages(path).shape[:2]
        except (OSError, ValueError) as error:
            n_images, size, damaged = 0, 0, f"{path.name} cannot be read ({error}); it is decoded again when needed"
        entries.append(
            CacheEntry(path, n_images, size, path.stat().st_size, str(note.get("created", "?")), str(note.get("source", "?")), damaged)
        )
    return entries


def clear_cache(workspace_root: Path) -> tuple[int, int]:
    """Delete every cache file, and temporaries a killed build left. Returns (files, bytes).

    Refused, deleting nothing, while any of them is in use: read by a running train-folds or
    predict, or being built (they hold a lock on it). The exclusive locks taken here are held
    until every file is gone, so no run starts reading a file half-way through a clear.
    """
    folder = cache_dir(workspace_root)
    locked = [path for pattern in ("images-*.npy", ".images-*.tmp") for path in sorted(folder.glob(pattern))]
    handles = []
    try:
        for path in locked:
            try:
                handles.append(open(path, "rb"))
            except FileNotFoundError:  # a build renamed it, or another clear took it, meanwhile
                continue
            try:
                lock(handles[-1].fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise EnsError(
                    f"{path}: in use by a running train-folds or predict; nothing was deleted: clear the cache once it ends"
                ) from None
        removed = freed = 0
        for path in [*(Path(handle.name) for handle in handles), *folder.glob("images-*.json")]:
            with contextlib.suppress(FileNotFoundError):
                freed += path.stat().st_size
                path.unlink()
                removed += path.suffix == ".npy"
        return removed, freed
    finally:
        for handle in handles:
            handle.close()
