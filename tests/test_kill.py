"""A training run killed with SIGKILL mid-fold resumes and ends bit for bit where an unbroken run does."""

import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ensemble.artifacts.store import load_logits

COMMAND = [sys.executable, "-m", "ensemble", "train-folds", "-n", "k", "--epochs", "10"]


@pytest.mark.slow
def test_sigkill_mid_fold_then_resume_matches_an_unbroken_run(trained_dir, tmp_path):
    unbroken, killed = tmp_path / "unbroken", tmp_path / "killed"
    for root in (unbroken, killed):
        shutil.copytree(trained_dir, root)
    subprocess.run([*COMMAND, "-w", str(unbroken)], check=True, capture_output=True)

    process = subprocess.Popen([*COMMAND, "-w", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume_state = killed / "models" / "k" / "fold1" / "resume.pt"
    deadline = time.monotonic() + 120
    while not resume_state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert resume_state.exists(), "the run ended before fold 1 saved an epoch: nothing was killed mid-fold"
    assert not (killed / "models" / "k" / "oof.npz").exists()

    finished = subprocess.run([*COMMAND, "-w", str(killed)], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert "fold 1: training on" in finished.stderr and "(resuming)" in finished.stderr
    for name in ("oof.npz", "test.npz"):
        np.testing.assert_array_equal(
            load_logits(unbroken / "models" / "k" / name).values, load_logits(killed / "models" / "k" / name).values
        )
