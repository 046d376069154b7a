"""Lock files: one holder at a time, a dead holder's lock broken, another host's never."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from ensemble.artifacts import locks
from ensemble.errors import EnsError

BUSY = "models/r: fold 0 is being trained by another process"
HOST = re.escape(socket.gethostname())


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_held_while_the_block_runs_and_removed_after(tmp_path):
    path = tmp_path / ".locks" / "r" / "fold0.lock"
    with locks.hold(path, BUSY):
        holder = json.loads(path.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert not path.exists()
    assert list(path.parent.iterdir()) == []  # no temporary left beside it


def test_a_lock_held_is_refused_also_to_the_same_process(tmp_path):
    path = tmp_path / "fold0.lock"
    with locks.hold(path, BUSY):
        with pytest.raises(EnsError, match=rf"^{BUSY} \(host {HOST}, pid {os.getpid()}\)$"):
            with locks.hold(path, BUSY):
                pass
        assert path.is_file()  # the refused attempt leaves the holder's lock alone
    assert not path.exists()


def write_lock(path, host: str, pid: int) -> None:
    path.write_text(json.dumps({"host": host, "pid": pid, "started": 0.0}))


def test_a_stale_lock_of_a_dead_process_on_this_host_is_broken(tmp_path):
    path = tmp_path / "fold0.lock"
    write_lock(path, socket.gethostname(), dead_pid())
    with locks.hold(path, BUSY):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


@pytest.mark.parametrize(
    "host, pid, message",
    [
        # Another host: its pid says nothing here, so the error names the file to remove.
        ("elsewhere", 1, r"\(host elsewhere, pid 1; if that process is gone, remove .*fold0\.lock\)$"),
        # This host, a live process (this one's parent): never broken.
        (socket.gethostname(), os.getppid(), rf"\(host {HOST}, pid {os.getppid()}\)$"),
    ],
)
def test_a_lock_of_a_live_or_unknown_holder_is_refused(tmp_path, host, pid, message):
    path = tmp_path / "fold0.lock"
    write_lock(path, host, pid)
    with pytest.raises(EnsError, match=rf"^{BUSY} {message}"):
        with locks.hold(path, BUSY):
            pass
    assert json.loads(path.read_text())["pid"] == pid


def test_wait_takes_the_lock_once_the_holder_lets_go(tmp_path):
    path = tmp_path / "experiment.lock"
    entered = threading.Event()

    def hold_briefly():
        with locks.hold(path, BUSY):
            entered.set()
            time.sleep(0.3)

    holder = threading.Thread(target=hold_briefly)
    holder.start()
    entered.wait(5)
    started = time.monotonic()
    with locks.hold(path, BUSY, wait=10):
        waited = time.monotonic() - started
    holder.join()
    assert 0.1 < waited < 5


def test_wait_gives_up_after_its_seconds(tmp_path):
    path = tmp_path / "experiment.lock"
    with locks.hold(path, BUSY):
        started = time.monotonic()
        with pytest.raises(EnsError, match=BUSY):
            with locks.hold(path, BUSY, wait=0.3):
                pass
        assert 0.25 < time.monotonic() - started < 5
