"""Folds trained in worker processes (--jobs) and on a Dask cluster equal a sequential run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ensemble.artifacts.store import load_logits
from ensemble.cli import app
from ensemble.errors import EnsError
from ensemble.metrics import softmax
from ensemble.training import parallel

runner = CliRunner()


def train(root, *args):
    result = runner.invoke(app, ["train-folds", "-w", str(root), *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def assert_same_probabilities(root, name, folds, reference="a"):
    """Within 1e-4: the workers use fewer threads than the sequential run, so sums are ordered differently."""
    for path in [f"fold{fold}/{kind}.npz" for fold in folds for kind in ("oof", "test")]:
        ours = load_logits(root / "models" / name / path)
        theirs = load_logits(root / "models" / reference / path)
        assert ours.ids.tolist() == theirs.ids.tolist()
        np.testing.assert_allclose(softmax(ours.values), softmax(theirs.values), atol=1e-4, rtol=0)


def test_jobs_2_equals_a_sequential_run(trained_copy):
    # 'a' (in the trained_dir fixture) was trained in the test process, one fold after another.
    # Two folds, one per worker, keep the test quick; combining folds is the same code as sequential.
    result = train(trained_copy, "-n", "j", "--jobs", "2", "--folds", "0,1")
    assert "training folds 0,1 on 2 worker processes" in result.stderr
    # Each worker's events reach the parent as they happen, once each.
    for fold in (0, 1):
        assert f"fold {fold}: training on" in result.stderr and f"  fold {fold} epoch 1/" in result.stderr
        assert result.stderr.count(f"fold {fold}: accuracy") == 1, result.stderr
    assert_same_probabilities(trained_copy, "j", [0, 1])
    again = train(trained_copy, "-n", "j", "--jobs", "2", "--folds", "0,1")  # rerun-is-safe holds in parallel too
    assert "nothing trained" in again.stderr


def test_the_same_threads_give_bit_identical_folds_under_jobs_and_one_after_another(trained_copy):
    # What --threads promises: the thread count, not the executor, decides the float sums.
    train(trained_copy, "-n", "s", "--threads", "1", "--folds", "0,1")
    train(trained_copy, "-n", "p", "--threads", "1", "--jobs", "2", "--folds", "0,1")
    for path in [f"fold{fold}/{kind}.npz" for fold in (0, 1) for kind in ("oof", "test")]:
        sequential = load_logits(trained_copy / "models" / "s" / path)
        parallel_run = load_logits(trained_copy / "models" / "p" / path)
        np.testing.assert_array_equal(sequential.values, parallel_run.values)
    results = [json.loads((trained_copy / "models" / name / "fold0" / "result.json").read_text()) for name in ("s", "p")]
    assert [result["threads"] for result in results] == [1, 1]
    assert torch.get_num_threads() != 1 or os.cpu_count() == 1  # this process's own count was put back


@pytest.mark.slow
def test_a_dask_cluster_equals_a_sequential_run(trained_copy):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = train(trained_copy, "-n", "d", "--cluster", cluster.scheduler_address, "--folds", "1,2")
    assert f"on the Dask cluster at {cluster.scheduler_address}" in result.stderr
    assert_same_probabilities(trained_copy, "d", [1, 2])


def test_a_cluster_that_cannot_see_the_workspace_is_refused(tmp_path):
    class Client:  # what check_shared asks of a distributed.Client
        def scheduler_info(self):
            return {"workers": {"tcp://10.0.0.2:1": {"host": "10.0.0.2"}}}

        def run(self, function, *args):
            return {"tcp://10.0.0.2:1": (4, False)}  # a worker on another machine, without the file

    with pytest.raises(EnsError, match="tcp://10.0.0.2:1 cannot see .* filesystem every worker mounts at the same path"):
        parallel.check_shared(Client(), tmp_path)
    assert list(tmp_path.iterdir()) == []  # the probe file is removed


def test_cluster_without_dask_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if dask[distributed] were not installed
    with pytest.raises(EnsError, match=r"dask\[distributed\] is needed for --cluster; install it with: pip install 'ens\[dask\]'"):
        list(parallel.run_jobs(finish_or_die, ["x"], parallel.Executor(cluster="tcp://127.0.0.1:1"), tmp_path))


def finish_or_die(job, progress, slot):
    if job == "die":
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer does
    if job == "fail":
        raise EnsError("this fold failed")
    if job == "slow":
        time.sleep(3)  # still running when "die" dies beside it
    return job


def test_a_failed_job_is_reported_and_the_others_finish():
    results = list(parallel.run_jobs(finish_or_die, ["x", "fail", "y"], parallel.Executor(jobs=2), "."))
    failures = [result for result in results if isinstance(result, parallel.Failure)]
    assert sorted(result for result in results if isinstance(result, str)) == ["x", "y"]
    assert [(failure.job, failure.message) for failure in failures] == [("fail", "this fold failed")]


def test_a_dead_worker_loses_only_its_own_job():
    # The job running beside the dead one, and the job queued after it, both finish.
    results = list(parallel.run_jobs(finish_or_die, ["slow", "die", "x"], parallel.Executor(jobs=2), "."))
    failures = [result for result in results if isinstance(result, parallel.Failure)]
    assert sorted(result for result in results if isinstance(result, str)) == ["slow", "x"]
    assert [failure.job for failure in failures] == ["die"]
    assert failures[0].message == "its worker process died (killed by SIGKILL); run the same command again to resume it"


def chatty(job, progress, slot):
    for event in range(5000):  # far more than a pipe holds
        progress(event)
    return job


def test_a_progress_callback_that_fails_neither_hangs_nor_loses_the_result():
    def broken_stderr(event):
        raise OSError(28, "No space left on device")

    results = list(parallel.run_jobs(chatty, ["x", "y"], parallel.Executor(jobs=2), ".", broken_stderr))
    assert sorted(results) == ["x", "y"]


@pytest.mark.parametrize("address", ["localhost", "localhost:8786", "http://h:8786", "tcp://h", "tcp://h:0", "tcp://h:99999", "tcp://a b:1", "tcp://h:1/x"])
def test_a_cluster_address_of_the_wrong_shape_is_refused(address):
    with pytest.raises(EnsError, match=r"--cluster .*: expected a Dask scheduler's address tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786"):
        parallel.Executor(cluster=address)


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "tls://scheduler.example:8786", "tcp://[::1]:8786", "tcp://node-3_a:1"])
def test_a_cluster_address_of_the_right_shape_is_accepted(address):
    assert parallel.Executor(cluster=address).cluster == address


def test_an_unreachable_cluster_is_refused_before_anything_is_written(trained_copy, monkeypatch):
    def unreachable(address, shared_root):
        raise EnsError(f"--cluster {address}: cannot reach a Dask scheduler there")

    monkeypatch.setattr(parallel, "dask_cluster", unreachable)
    result = runner.invoke(app, ["train-folds", "-w", str(trained_copy), "-n", "d", "--cluster", "tcp://127.0.0.1:1"])
    assert result.exit_code == 1 and result.output == "error: --cluster tcp://127.0.0.1:1: cannot reach a Dask scheduler there\n"
    assert not (trained_copy / "models" / "d").exists()
    result = runner.invoke(app, ["train-folds", "-w", str(trained_copy), "-n", "d", "--cluster", "127.0.0.1:1"])
    assert result.exit_code == 1 and "expected a Dask scheduler's address tcp://HOST:PORT" in result.output


def worker_pids(pid: int) -> list[int]:
    """The child processes of `pid` (Linux /proc)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return children


def running(pid: int) -> str | None:
    """The command line of a live process (not a zombie left for init to reap), else None."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return None
    return None if "State:\tZ" in status else command


@pytest.mark.slow
@pytest.mark.parametrize("stop, code, said", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_stopping_the_parent_of_jobs_2_stops_its_workers_at_once(tmp_path, stop, code, said):
    """Issue 16, 13: SIGTERM orphaned the workers (they trained on, then BrokenPipeError), and
    SIGINT to the parent alone waited for every running fold to end."""
    from tests.conftest import make_competition

    root = make_competition(tmp_path / "ws", n_train=24, n_test=4)
    subprocess.run([sys.executable, "-m", "ensemble", "folds", "-w", str(root), "--k", "2"], check=True, capture_output=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "ensemble", "train-folds", "-w", str(root), "-n", "j", "--jobs", "2", "--epochs", "500"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    saved = [root / "models" / "j" / f"fold{fold}" / "resume.pt" for fold in (0, 1)]
    deadline = time.monotonic() + 120
    while not all(path.exists() for path in saved) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = worker_pids(process.pid)
    assert all(path.exists() for path in saved) and len(workers) >= 2, "the workers never finished an epoch"
    stopped = time.monotonic()
    process.send_signal(stop)  # to the parent alone, as `kill` sends it
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - stopped < 20, "the parent waited for the folds to end"
    assert process.returncode == code, stderr
    assert stderr.strip().splitlines()[-1] == f"{said}; run the same command again to resume"
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    time.sleep(1)
    assert [pid for pid in workers if running(pid)] == []
    assert not list((root / "models" / ".locks").rglob("*.lock"))  # released, not held by a dead pid
    assert not (root / "models" / "j" / "oof.npz").exists()
