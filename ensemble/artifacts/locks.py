"""Lock files, so that two processes never train the same fold or write the same file at once.

A lock is a small JSON file, {"host", "pid", "started"}, made by linking a complete
temporary file to the lock's name: it appears whole or not at all, and two processes can
never both create it (os.link fails on an existing name, also on NFS).

A lock left by a killed process is stale and is broken by the next process that wants it,
but only by a process on the same host: a pid says nothing about a process on another
machine of a cluster, so a lock taken there is never broken here; the error names the file
to remove by hand once that machine's process is known to be gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterator

from ensemble.errors import EnsError


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}


def _read(path: Path) -> dict | None:
    """The holder's record; None when the lock is gone; {} when it cannot be read."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would end the process there, not probe it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def is_stale(holder: dict) -> bool:
    """Whether the holder is known to be gone: a process of this host that no longer runs."""
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)


def _create(path: Path, record: dict) -> bool:
    """Make the lock file holding `record`; False when it exists already."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(record, stream)
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(temporary)


def _break(path: Path, stale: dict) -> None:
    """Remove a stale lock, unless another process has broken it and taken the lock since:
    the file is moved aside first (atomic), and put back when it is no longer the stale one."""
    aside = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.stale")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return
    if _read(aside) != stale:
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    aside.unlink(missing_ok=True)


def holder_text(holder: dict, path: Path) -> str:
    text = f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}"
    if holder.get("host") != socket.gethostname():
        text += f"; if that process is gone, remove {path}"
    return text


@contextlib.contextmanager
def hold(path: Path, busy: str, wait: float = 0.0) -> Iterator[None]:
    """Hold the lock file `path` for the block.

    busy: the error's start when another live process holds it, e.g. "models/r: fold 0 is
    being trained by another process"; the holder's host and pid are added.
    wait: seconds to wait for the other process to let go before that error.
    """
    path = Path(path)
    me = _me()
    deadline = time.monotonic() + wait
    while not _create(path, me):
        holder = _read(path)
        if holder is None:
            continue  # let go just now: try again
        if is_stale(holder):
            _break(path, holder)
            continue
        if time.monotonic() >= deadline:
            raise EnsError(f"{busy} ({holder_text(holder, path)})")
        time.sleep(0.05)
    try:
        yield
    finally:
        if _read(path) == me:
            path.unlink(missing_ok=True)
