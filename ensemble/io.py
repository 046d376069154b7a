"""The ground floor's file handling: atomic writes, JSON, npz archives, content hashes, TOML text.

Every file is written to a temporary name in its own folder and renamed into place, so a
killed run leaves either the old file or the new one, never half of one. The folds file, the
image cache, experiments and submissions all write through here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import io
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ensemble.errors import EnsError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes files only their owner can read; artifacts get the usual mode instead.
FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A failed write (a full disk, a quota, a read-only folder) becomes an EnsError naming
    `path`; the temporary file is removed and an existing `path` is left as it was.
    """
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        yield Path(temporary)
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except OSError as error:
        if error.filename is not None and Path(error.filename) not in (Path(temporary or path), path, *path.parents):
            raise  # about another file the block read: not this write's failure
        raise EnsError(f"{path}: cannot write: {error.strerror or error}") from None
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: Path, document: Any) -> None:
    write_text(path, json.dumps(document, indent=2) + "\n")


# The key under which a group's manifest records the sha256 of the group's other files.
GROUP_HASHES = "files_sha256"


def write_group(files: dict[Path, bytes], manifest: Path, document: dict) -> None:
    """Write several files that belong together: every temporary first, then the renames, in
    the order given, and last `manifest`, the JSON `document` with the sha256 of each other
    file by name (GROUP_HASHES). A kill between the renames leaves files the manifest does not
    name: group_complete then says the group is not written. A failure while writing (a full
    disk) renames nothing and is one EnsError naming the path."""
    manifest = Path(manifest)
    hashes = {Path(path).name: sha256_bytes(data) for path, data in files.items()}
    files = {**files, manifest: (json.dumps({**document, GROUP_HASHES: hashes}, indent=2) + "\n").encode()}
    temporaries: dict[Path, str] = {}
    path = None
    try:
        for path, data in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporaries[path] = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.close(handle)
            Path(temporaries[path]).write_bytes(data)
            os.chmod(temporaries[path], FILE_MODE)
        for path, temporary in temporaries.items():
            os.replace(temporary, path)
    except OSError as error:
        raise EnsError(f"{path}: cannot write: {error.strerror or error}") from None
    finally:
        for temporary in temporaries.values():
            if os.path.exists(temporary):
                os.unlink(temporary)


def group_complete(manifest: Path) -> bool:
    """Whether the group write_group wrote with `manifest` is whole: the manifest is there and
    readable, and every file it names holds the bytes it recorded. A manifest written before
    the hashes were recorded is trusted, as it was then."""
    try:
        document = json.loads(Path(manifest).read_text())
    except (OSError, ValueError):
        return False
    hashes = document.get(GROUP_HASHES, {}) if isinstance(document, dict) else None
    if not isinstance(hashes, dict):
        return False
    for name, recorded in hashes.items():
        path = Path(manifest).with_name(name)
        if not path.is_file() or sha256_file(path) != recorded:
            return False
    return True


def remove_temporaries(paths: list[Path]) -> None:
    """Remove the temporaries a killed write left beside `paths` (.NAME.XXXXXXXX.tmp)."""
    for path in map(Path, paths):
        for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            leftover.unlink(missing_ok=True)


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise EnsError(f"{path}: cannot read JSON: {error}") from None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """An .npz archive of `arrays` (plain arrays: no pickles), in memory, for write_bytes or write_group."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    write_bytes(path, npz_bytes(**arrays))


def to_toml(sections: dict[str, Any]) -> str:
    """Write settings dataclasses (or plain dicts) as TOML tables; enough for ens.toml files."""
    lines = []
    for name, settings in sections.items():
        table = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else settings
        lines.append(f"[{name}]")
        for key, value in table.items():
            lines.append(f"{key} = {toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


# What a damaged .npz raises: a cut or overwritten zip is BadZipFile or EOFError (neither an
# OSError nor a ValueError), a missing member KeyError, an odd compression NotImplementedError.
NPZ_ERRORS = (OSError, ValueError, KeyError, EOFError, NotImplementedError, zipfile.BadZipFile, zlib.error)


def read_npz(path: Path, what: str, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """The arrays `keys` (every array when None) of an .npz archive, read whole; a missing or
    damaged file is an EnsError "PATH: cannot read WHAT: ...". Pickles are never loaded."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in (archive.files if keys is None else keys)}
    except NPZ_ERRORS as error:
        raise EnsError(f"{path}: cannot read {what}: {error}") from None
