"""Jobs in worker processes on this machine (--jobs): each job in a fresh process of its own,
started and watched by a thread of its own, at most N at once.

A job's process sends back its progress events and its result through a pipe; a process that
dies (the out-of-memory killer) is a Failure of its job alone. A run left early (Ctrl-C,
SIGTERM, which the CLI turns into a KeyboardInterrupt, an error) stops its running workers at
once rather than wait for their folds to end, and starts no other; a worker whose parent died
(SIGKILL) stops itself, so none trains on, orphaned, into a pipe nobody reads.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

Body = Callable[[Any, Any], Any]  # body(job, progress) -> result, run in the worker; picklable


@dataclass(frozen=True)
class Failure:
    job: Any
    message: str


def child_main(body: Body, job: Any, send, parent: int) -> None:
    """The body of a job's own process: "started", its progress events, then its result (or
    Failure), go back through `send`. It stops, quietly, on SIGINT (Ctrl-C, or the parent
    stopping the run) and when its parent is gone (killed: nobody would read its result)."""
    try:
        send.send(("started", None))
        threading.Thread(target=watch_parent, args=(parent,), daemon=True).start()
        send.send(("result", body(job, lambda event: send.send(("event", event)))))
        send.close()
    except (KeyboardInterrupt, BrokenPipeError, EOFError, ConnectionResetError):  # the parent alone says why
        return


def watch_parent(parent: int) -> None:
    """In a worker: interrupt it, as Ctrl-C does, once the process that started it has died."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL)
    os.kill(os.getpid(), signal.SIGINT)


PARENT_POLL = 1.0  # seconds between a worker's checks that its parent lives
STOP_GRACE = 15.0  # seconds a stopped worker has to end (its KeyboardInterrupt) before it is killed


class Workers:
    """The worker processes of one run, so that leaving the run early stops them all."""

    def __init__(self):
        self.lock = threading.Lock()
        self.live: dict[Any, bool] = {}  # process -> whether its job started (it handles SIGINT)
        self.stopping = False

    def start(self, process) -> bool:
        """Start `process` unless the run is stopping; False when it was not started."""
        with self.lock:
            if self.stopping:
                return False
            process.start()
            self.live[process] = False
            return True

    def started(self, process) -> None:
        with self.lock:
            self.live[process] = True

    def ended(self, process) -> None:
        with self.lock:
            self.live.pop(process, None)

    def stop(self) -> None:
        """SIGINT to every worker whose job started (it ends as under Ctrl-C, its temporary
        files removed), SIGTERM to one still starting; SIGKILL to any left after STOP_GRACE."""
        with self.lock:
            self.stopping = True
            live = dict(self.live)
        for process, started in live.items():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT if started else signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for process in live:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def in_own_process(body: Body, job: Any, progress, lock: threading.Lock, workers: Workers) -> Any:
    """body(job, progress) in a fresh process, its progress events passed to `progress`
    (one thread at a time, under `lock`); if that process dies, a Failure of this job alone.

    spawn, not fork: the parent may hold torch's threads, which a forked child inherits broken.
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=child_main, args=(body, job, send, os.getpid()))
    if not workers.start(process):
        return Failure(job, "the run was stopped before it started")
    send.close()  # the child holds the only sending end: its death is EOF here
    result = None
    while True:  # read to the end whatever happens here, or the child would block on a full pipe
        try:
            kind, payload = receive.recv()
        except (EOFError, OSError):  # OSError: the process died in the middle of a message
            break
        if kind == "started":
            workers.started(process)
        elif kind == "result":
            result = payload
            break
        elif progress:
            try:
                with lock:
                    progress(payload)
            except BaseException:  # noqa: BLE001 - a progress line that cannot be shown (stderr gone, disk full) is dropped, with the rest
                progress = None
    process.join()
    workers.ended(process)
    if result is not None:
        return result
    code = process.exitcode
    how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
    return Failure(job, f"its worker process died ({how}); run the same command again to resume it")


def in_processes(body: Body, jobs: list, n_workers: int, progress) -> Iterator[Any]:
    """Each job in a process of its own, n_workers at once, started and watched by a thread
    each; every job's result (or Failure) as it ends. Leaving early (KeyboardInterrupt, SIGTERM
    made into one by the CLI, an error, close()) stops every worker and starts no other job,
    instead of waiting for the running ones to finish their folds."""
    pending: queue.SimpleQueue = queue.SimpleQueue()
    for job in jobs:
        pending.put(job)
    ends: queue.SimpleQueue = queue.SimpleQueue()
    workers, lock = Workers(), threading.Lock()

    def watcher() -> None:
        while not workers.stopping:
            try:
                job = pending.get_nowait()
            except queue.Empty:
                return
            ends.put(in_own_process(body, job, progress, lock, workers))

    watchers = [threading.Thread(target=watcher, daemon=True) for _ in range(n_workers)]
    for thread in watchers:
        thread.start()
    try:
        for _ in jobs:
            while True:
                try:  # a timeout, so that Ctrl-C and SIGTERM reach this thread at once
                    yield ends.get(timeout=0.2)
                    break
                except queue.Empty:
                    continue
    finally:
        workers.stop()
        for thread in watchers:
            thread.join()
