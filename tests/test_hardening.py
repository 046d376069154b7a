"""Unusual inputs a new user hits (issue 5): full disks, concurrent runs, damaged files, demos
pointed at the wrong folder. Every one ends in one `error:` line, or in a note, never a traceback."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import ens, one_line_error, snapshot

ROOT = Path(__file__).resolve().parents[1]


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    "args, path",
    [
        (["folds", "--force"], "folds/folds.json"),
        (["blend", "--name", "s"], "submissions/s.csv"),
    ],
)
def test_a_full_disk_is_one_line_naming_the_file(trained_copy, monkeypatch, args, path):
    before = snapshot(trained_copy)
    monkeypatch.setattr(Path, "write_bytes", no_space)
    one_line_error(ens(*args, "-w", trained_copy), f"{trained_copy / path}: cannot write: No space left on device")
    assert snapshot(trained_copy) == before  # nothing half-written, no temporary left


def ends_in_error(result, *fragments: str) -> None:
    """Exit 1 and a last line `error: ...` holding every fragment (progress lines may come first)."""
    assert result.exit_code == 1, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "Traceback" not in result.output, result.stderr
    for fragment in fragments:
        assert fragment in last, (fragment, last)


class FullDisk:
    """A file whose writes fail as on a full disk."""

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False

    def write(self, data):
        no_space()


def open_on_a_full_disk(path, mode="r", *args, **kwargs):
    return FullDisk() if "w" in mode else open(path, mode, *args, **kwargs)


def test_train_folds_on_a_full_disk_names_the_checkpoint(trained_copy, monkeypatch):
    # torch.save reports a failed write as RuntimeError("unexpected pos ..."): torch_files
    # finds the OSError behind it.
    monkeypatch.setattr("ensemble.nets.torch_files.open", open_on_a_full_disk, raising=False)
    result = ens("train-folds", "-w", trained_copy, "-n", "c", "--folds", "0")
    ends_in_error(result, f"{trained_copy / 'models/c/fold0/resume.pt'}: cannot write: No space left on device")
    assert not list((trained_copy / "models" / "c").rglob("*.tmp"))


def test_other_write_errors_are_one_line(tmp_path, monkeypatch):
    from PIL import Image

    def full(image, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(Image.Image, "save", full)
    one_line_error(ens("demo", tmp_path / "d"), "digit", ".png: cannot write: No space left on device")


HOLD_LOCK = """
import sys, time
from pathlib import Path
from ensemble.artifacts import locks
with locks.hold(Path(sys.argv[1]), "busy"):
    print("held", flush=True)
    sys.stdin.read()
"""


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_fold_trained_elsewhere_is_refused_and_other_folds_still_run(trained_copy):
    locks = trained_copy / "models" / ".locks" / "c"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(locks / "fold0.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        one_line_error(
            ens("train-folds", "-w", trained_copy, "-n", "c", "--folds", "0"),
            "fold 0 is being trained by another process", f"host {socket.gethostname()}, pid {holder.pid})",
        )
        # A lock from another machine is never judged from here, even with a pid that is free here.
        (locks / "fold1.lock").write_text(json.dumps({"host": "other-machine", "pid": dead_pid()}))
        one_line_error(
            ens("train-folds", "-w", trained_copy, "-n", "c", "--folds", "1"),
            "fold 1 is being trained", "host other-machine", f"remove {locks / 'fold1.lock'}",
        )
        # A lock left by a killed process of this host is broken; fold 2 trains beside fold 0's holder.
        (locks / "fold2.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": dead_pid()}))
        result = ens("train-folds", "-w", trained_copy, "-n", "c", "--folds", "2")
        assert result.exit_code == 0, result.output
        assert (trained_copy / "models" / "c" / "fold2" / "result.json").is_file()
        assert not (locks / "fold2.lock").exists()  # let go at the end
        assert (locks / "fold0.lock").exists()  # the other process's lock is untouched
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_a_deleted_folds_json_is_named(trained_copy):
    (trained_copy / "folds" / "folds.json").unlink()
    one_line_error(ens("train-folds", "-w", trained_copy, "-n", "x"), "folds.json: not found", "ens folds --force")


def test_the_leaderboard_needs_neither_test_csv_nor_a_clear_sample(trained_copy):
    (trained_copy / "data" / "test.csv").unlink()
    (trained_copy / "data" / "sample_submission.csv").write_text("id,label\nt000,7\n")
    result = ens("leaderboard", "-w", trained_copy, "--format", "json")
    assert result.exit_code == 0, result.output
    assert all(row["oof_score"] is not None for row in json.loads(result.stdout))


def test_one_damaged_experiment_costs_only_its_row(trained_copy):
    (trained_copy / "models" / "b" / "scores.json").write_text("{not json")
    result = ens("leaderboard", "-w", trained_copy, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["a"]["oof_score"] is not None and rows["a"]["note"] is None
    assert rows["b"]["oof_score"] is None and "scores.json: cannot read JSON" in rows["b"]["note"]
    table = ens("leaderboard", "-w", trained_copy)
    assert table.exit_code == 0 and "note: b: cannot be scored" in table.stderr


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damaged", ["oof.npz", "fold1/oof.npz"])
def test_a_truncated_logits_file_costs_only_its_row_or_names_the_member(trained_copy, damaged):
    """Issue 16, 8: leaderboard and report keep the broken experiment as a row with a note;
    blend is one line naming the member's file."""
    truncate(trained_copy / "models" / "b" / damaged)
    result = ens("leaderboard", "-w", trained_copy, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["a"]["oof_score"] is not None
    assert rows["b"]["oof_score"] is None and f"b/{damaged}: cannot read logits" in rows["b"]["note"]
    report = ens("report", "-w", trained_copy)
    assert report.exit_code == 0, report.output
    assert f"b/{damaged}: cannot read logits" in (trained_copy / "report.html").read_text()
    one_line_error(ens("blend", "-w", trained_copy, "-n", "s", "--experiments", "a,b"), f"models/b/{damaged}", "cannot read logits")
    assert not (trained_copy / "submissions" / "s.csv").exists()


def test_timm_weights_offline_is_one_line_and_writes_nothing(trained_copy, monkeypatch):
    """Issue 16, 10: `--pretrained timm` without a network was ~114 lines ending in LocalEntryNotFoundError."""
    import timm.models._builder
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub")

    monkeypatch.setattr(timm.models._builder, "load_state_dict_from_hf", offline)
    before = snapshot(trained_copy)
    one_line_error(ens("train-folds", "-w", trained_copy, "-n", "pt", "--pretrained", "timm"), "--pretrained timm: cannot download", "--pretrained FILE")
    assert snapshot(trained_copy) == before


def test_running_out_of_gpu_memory_names_the_batch_size(trained_copy, monkeypatch):
    import torch

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr("ensemble.training.fold_job.train_fold", out_of_memory)
    ends_in_error(
        ens("train-folds", "-w", trained_copy, "-n", "c", "--folds", "0"),
        "fold 0: out of GPU memory at batch size 16", "smaller --batch-size (e.g. 8)",
    )


def test_the_demo_never_writes_into_a_folder_it_did_not_make(tmp_path):
    user = tmp_path / "mine"
    (user / "data").mkdir(parents=True)
    (user / "data" / "train.csv").write_text("id,label\nx,1\n")
    before = snapshot(user)
    one_line_error(ens("demo", user), "not empty and not written by `ens demo`")
    assert snapshot(user) == before
    (tmp_path / "file").write_text("x")
    one_line_error(ens("demo", tmp_path / "file"), "is a file")


def test_an_interrupted_demo_resumes_with_the_command_it_names(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("ensemble.workflows.demo.train_experiment", interrupt)
    root = tmp_path / "d"
    first = ens("demo", root, "--force")
    assert first.exit_code == 130 and f"run `ens demo {root}` again to resume" in first.stderr
    written = (root / "data" / "train.csv").stat().st_mtime_ns
    again = ens("demo", root)  # resumes: no refusal, the competition is not written again
    assert again.exit_code == 130 and "resume" in again.stderr
    assert (root / "data" / "train.csv").stat().st_mtime_ns == written
    assert (root / "folds" / "folds.csv").is_file()


@pytest.mark.parametrize("other_lr, refused", [(None, False), (0.5, True)])
def test_a_run_started_meanwhile_on_the_same_experiment(trained_copy, monkeypatch, other_lr, refused):
    """Two runs begin a new experiment at once with different --folds: the second to write
    settings.json carries on beside the first when their settings agree, and is refused
    (never overwriting the first's settings) when they differ."""
    from ensemble.config import Workspace, override
    from ensemble.training import experiment

    workspace = Workspace.load(trained_copy)
    real_read_images = experiment.competition_images
    started = []

    def read_images_while_another_run_starts(*args, **kwargs):
        if not started:  # the other run writes settings.json and trains fold 0 meanwhile
            started.append(True)
            monkeypatch.setattr(experiment, "competition_images", real_read_images)
            experiment.train_experiment(workspace, "c", override(workspace.train, lr=other_lr), [0])
        return real_read_images(*args, **kwargs)

    monkeypatch.setattr(experiment, "competition_images", read_images_while_another_run_starts)
    result = ens("train-folds", "-w", trained_copy, "-n", "c", "--folds", "1")
    settings = json.loads((trained_copy / "models" / "c" / "settings.json").read_text())
    assert settings["train"]["lr"] == (other_lr or workspace.train.lr)
    if refused:
        ends_in_error(result, "written meanwhile by another process with other settings")
    else:
        assert result.exit_code == 0, result.output
        assert sorted(p.parent.name for p in (trained_copy / "models" / "c").glob("fold*/result.json")) == ["fold0", "fold1"]
