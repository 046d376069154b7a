"""Running independent jobs (an experiment's folds) in this process, in worker processes on this
machine (--jobs), or on a Dask cluster (joblib's dask backend).

Each job writes its own artifacts, atomically, from the process that ran it, so the parent
only learns which jobs finished. A job that raises loses only itself: the others run on and
the failures are reported together at the end. A worker process that dies loses only its
own job too. With --jobs every job runs in a fresh process of its own (training/processes.py). On Dask, the scheduler runs a dead worker's
job again on another worker (the fold resumes from its last saved epoch). Either way finished
folds are kept, the run says which folds did not finish, and the same command trains what is
missing.

On a cluster, the workers read the images and write the experiment through the workspace's
own paths: it must be on a filesystem every worker mounts at the same path. That is checked
before any job is sent (a file written here must be visible there).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ensemble.errors import EnsError
from ensemble.training.processes import Failure, in_processes

DASK_EXTRA = "dask[distributed] is needed for --cluster; install it with: pip install 'ens[dask]'"


@dataclass(frozen=True)
class Executor:
    """Where jobs run: jobs=1 and no cluster is in this process, one after another.

    threads: torch threads for every job wherever it runs; None: torch's default in this
    process, the cores shared out among worker processes or a host's Dask workers. The same
    thread count gives the same float sums, so a fold's logits are bit for bit the same
    whatever executor runs it; fewer threads order the sums otherwise, and the difference
    grows through training.
    """

    jobs: int = 1
    cluster: str | None = None  # tcp://HOST:PORT of a Dask scheduler
    threads: int | None = None

    def __post_init__(self):
        if self.jobs < 1:
            raise EnsError(f"--jobs must be at least 1, got {self.jobs}")
        if self.threads is not None and self.threads < 1:
            raise EnsError(f"--threads must be at least 1, got {self.threads}")
        if self.jobs > 1 and self.cluster:
            raise EnsError(f"--jobs {self.jobs} with --cluster: a cluster runs as many folds at once as it has workers; give one of them")
        if self.cluster is not None:
            check_address(self.cluster)

    @property
    def in_process(self) -> bool:
        return self.jobs == 1 and not self.cluster


ADDRESS = re.compile(r"(tcp|tls)://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")


def check_address(address: str) -> None:
    """A Dask scheduler's address, tcp://HOST:PORT, checked before anything connects or is written."""
    match = ADDRESS.fullmatch(address)
    if not match or not 0 < int(match.group(3)) < 65536:
        raise EnsError(f"--cluster {address!r}: expected a Dask scheduler's address tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786")


@contextlib.contextmanager
def connected(executor: Executor, shared_root: Path) -> Iterator[dict | None]:
    """The cluster connected and checked, for run_jobs(cluster=...): a run opens it before it
    writes anything, so an unreachable scheduler leaves no settings.json behind. None without one."""
    if not executor.cluster:
        yield None
        return
    with dask_cluster(executor.cluster, shared_root) as threads:
        yield threads


@dataclass(frozen=True)
class Slot:
    """What a worker may use: torch threads (None: torch's default) and a CUDA device index."""

    threads: int | None = None
    gpu: int | None = None


Task = Callable[[Any, Any, Slot], Any]  # task(job, progress, slot) -> result


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS)
        return os.cpu_count() or 1


@contextlib.contextmanager
def gpu_slot() -> Iterator[int | None]:
    """A CUDA device no other ens worker on this machine holds, when there are several.

    An advisory file lock per device: held while the job runs, released when its process
    ends, dies included.
    """
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 2:
        yield None
        return
    folder = Path(tempfile.gettempdir())
    for attempt in range(2):  # first look for a free one; then wait for the first
        for index in range(count):
            handle = open(folder / f"ens-cuda-{index}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (fcntl.LOCK_NB if attempt == 0 else 0))
            except BlockingIOError:
                handle.close()
                continue
            try:
                yield index
            finally:
                handle.close()
            return


def guarded(task: Task, job: Any, threads: int | dict | None, progress=None) -> Any:
    """Run one job in a worker; its error comes back as a Failure instead of stopping the others.

    threads: torch threads for this worker, or {dask worker address: threads}.
    """
    if isinstance(threads, dict):
        from distributed import get_worker

        threads = threads.get(get_worker().address)
    try:
        with gpu_slot() as gpu:
            return task(job, progress, Slot(threads, gpu))
    except Exception as error:  # noqa: BLE001 - reported, with its fold, by the parent
        return Failure(job, str(error) if isinstance(error, EnsError) else f"{type(error).__name__}: {error}")


def guarded_job(task: Task, threads: int | None, job: Any, progress) -> Any:
    """guarded, its arguments in the order processes.in_processes calls a job's body."""
    return guarded(task, job, threads, progress)


def run_jobs(task: Task, jobs: list, executor: Executor, shared_root: Path, progress=None, cluster: dict | None = None) -> Iterator[Any]:
    """Each job's result (or Failure) as it finishes; in order when in process. cluster: the
    cluster as `connected` opened it (else it is opened here).

    Raises EnsError when the cluster cannot be used, and when a Dask worker dies more often
    than the scheduler retries its job. Close the iterator (contextlib.closing) when leaving
    it early: that stops the worker processes.
    """
    if executor.in_process:
        for job in jobs:
            yield task(job, progress, Slot(executor.threads))
        return
    if not executor.cluster:
        n_jobs = min(executor.jobs, len(jobs))
        # Shared out by --jobs, not by the folds left: the same command resumes a fold with the
        # thread count it started with, so it ends bit for bit as a run never stopped.
        threads = executor.threads or max(1, cpu_cores() // executor.jobs)
        yield from in_processes(functools.partial(guarded_job, task, threads), jobs, n_jobs, progress)
        return
    from joblib import Parallel, delayed, parallel_config

    with contextlib.ExitStack() as opened:
        threads = cluster or opened.enter_context(dask_cluster(executor.cluster, shared_root))
        opened.enter_context(parallel_config(backend="dask"))
        parallel = Parallel(n_jobs=min(len(threads), len(jobs)), return_as="generator_unordered")
        threads = executor.threads or threads
        try:
            yield from parallel(delayed(guarded)(task, job, threads) for job in jobs)
        except Exception as error:
            if type(error).__name__ != "KilledWorker":
                raise
            reason = str(error).splitlines()[0][:200]
            raise EnsError(f"a Dask worker died ({reason}); finished folds are kept: run the same command again to resume") from None


@contextlib.contextmanager
def dask_cluster(address: str, shared_root: Path) -> Iterator[dict]:
    """A client of the scheduler at `address`, its workers checked; yields {worker: torch threads}."""
    try:
        from distributed import Client
    except ImportError:
        raise EnsError(DASK_EXTRA) from None
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as error:
        raise EnsError(f"--cluster {address}: cannot reach a Dask scheduler there: {error}") from None
    with client:
        cores_by_worker = check_shared(client, shared_root)
        workers_on_host: dict[str, int] = {}
        for worker in cores_by_worker:
            host = client.scheduler_info()["workers"][worker]["host"]
            workers_on_host[host] = workers_on_host.get(host, 0) + 1
        threads = {
            worker: max(1, cores // workers_on_host[client.scheduler_info()["workers"][worker]["host"]])
            for worker, cores in cores_by_worker.items()
        }
        yield threads


def probe(token: str) -> tuple[int, bool]:
    """Run on each Dask worker: its CPU cores, and whether it sees the file written here."""
    return cpu_cores(), os.path.isfile(token)


def check_shared(client, shared_root: Path) -> dict[str, int]:
    """{worker address: CPU cores}; an EnsError when there are no workers or one cannot see
    the workspace at the same path."""
    if not client.scheduler_info()["workers"]:
        raise EnsError(f"--cluster {client.scheduler.address}: no workers are connected to the scheduler; start some with `dask worker`")
    token = Path(shared_root) / f".ens-shared-{uuid.uuid4().hex}"
    token.write_text("written by ens to check that Dask workers share this filesystem\n")
    try:
        answers = client.run(probe, str(token))
    finally:
        token.unlink()
    blind = sorted(worker for worker, (_, sees) in answers.items() if not sees)
    if blind:
        raise EnsError(
            f"--cluster: Dask worker {blind[0]} cannot see {shared_root}; the workers read the images and write "
            "the experiment there, so the workspace (and its images) must be on a filesystem every worker mounts at the same path"
        )
    return {worker: cores for worker, (cores, _) in answers.items()}
