"""A fold's torch files (resume.pt, model.pt): written atomically, read back memory-mapped.

Kept apart from artifacts/store.py, which blending, the leaderboard and reports import without torch.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from ensemble.errors import EnsError
from ensemble.io import atomic_path


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


def save_torch(path: Path, document: Any) -> None:
    """torch.save, atomically; a failed write is an EnsError naming `path`."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as stream:
            writer = _WriteErrors(stream)
            try:
                torch.save(document, writer)
            except RuntimeError:
                if writer.error is None:
                    raise
                raise writer.error from None


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
    An unreadable one is one line naming it: --force starts the fold again."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (OSError, RuntimeError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as error:
        raise EnsError(
            f"{path}: cannot read the fold's resume state ({str(error).splitlines()[0] if str(error) else type(error).__name__}); "
            "use --force to train the fold again from its start"
        ) from None
