"""A fold's torch files (resume.pt, model.pt): written atomically, read back memory-mapped.

model.pt's sha256 is recorded in the fold's result.json (inference/checkpoints.py checks it);
resume.pt's in resume.json beside it, written before resume.pt is renamed into place and
naming both the new file and the one it replaces, so that a kill between the two writes
still leaves a resume.pt its record names, and a damaged one is refused.

Kept apart from artifacts/store.py, which blending, the leaderboard and reports import without torch.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from ensemble.errors import EnsError
from ensemble.io import atomic_path, read_json, sha256_file, write_json


class _WriteErrors(io.RawIOBase):
    """A file wrapper that remembers the OSError a write raised: torch.save reports a full
    disk as a RuntimeError ("unexpected pos ..."), which says nothing about why."""

    def __init__(self, stream: io.BufferedWriter):
        self.stream = stream
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        try:
            return self.stream.write(data)
        except OSError as error:
            self.error = error
            raise


def save_torch(path: Path, document: Any, hash_record: Path | None = None) -> None:
    """torch.save, atomically; a failed write is an EnsError naming `path`.

    hash_record: a JSON file to record the new file's sha256 in (and the replaced one's),
    written before the rename.
    """
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as stream:
            writer = _WriteErrors(stream)
            try:
                torch.save(document, writer)
            except RuntimeError:
                if writer.error is None:
                    raise
                raise writer.error from None
        if hash_record is not None:
            # The file in place now, hashed (not its record: a kill before an earlier rename
            # leaves a record of a file that never landed), stays valid until the rename.
            previous = sha256_file(path) if path.is_file() else None
            write_json(hash_record, {"sha256": sha256_file(temporary), "previous_sha256": previous})


def resume_hash_path(resume_path: Path) -> Path:
    """fold<k>/resume.json: the sha256 of resume.pt (artifacts/store.ExperimentDir.resume_hash_path)."""
    return resume_path.with_suffix(".json")


def save_resume(path: Path, state: dict) -> None:
    """resume.pt, with its sha256 recorded in resume.json."""
    save_torch(path, state, resume_hash_path(path))


def load_checkpoint(path: Path) -> dict:
    """model.pt: state_dict plus fold_job.rebuild_record's keys. Memory-mapped: checking a header is cheap."""
    if not path.is_file():
        raise EnsError(f"{path}: checkpoint not found; train the fold first")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise EnsError(f"{path}: cannot read checkpoint: {str(error).splitlines()[0]}") from None


def load_resume(path: Path) -> dict:
    """resume.pt, memory-mapped on the CPU (load_state_dict copies each tensor to its device).
    An unreadable one, or one whose sha256 resume.json does not name, is one line naming it:
    --force starts the fold again. Without resume.json (older runs) it is read unchecked."""
    check_resume_hash(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (OSError, RuntimeError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as error:
        raise EnsError(
            f"{path}: cannot read the fold's resume state ({str(error).splitlines()[0] if str(error) else type(error).__name__}); "
            "use --force to train the fold again from its start"
        ) from None


def check_resume_hash(path: Path) -> None:
    record_path = resume_hash_path(path)
    if not record_path.is_file():
        return
    again = "use --force to train the fold again from its start"
    try:
        record = read_json(record_path)
        recorded = {record.get("sha256"), record.get("previous_sha256")} - {None}
    except (EnsError, AttributeError):
        raise EnsError(f"{record_path}: cannot read the sha256 of {path.name}; {again}") from None
    if sha256_file(path) not in recorded:
        raise EnsError(f"{path}: damaged or replaced: its sha256 is not the one {record_path.name} records; {again}")
