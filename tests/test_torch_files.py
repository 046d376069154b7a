"""A fold's torch files: saved atomically, read back whole, and a damaged one refused in one line."""

from __future__ import annotations

import re

import pytest
import torch

from ensemble.errors import EnsError
from ensemble.nets.torch_files import load_checkpoint, load_resume, save_resume, save_torch


def document() -> dict:
    return {
        "state_dict": {"fc.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4), "fc.bias": torch.zeros(3)},
        "epoch": 2,
        "model": "test_resnet",
        "rng": torch.ByteTensor([1, 2, 3]),
    }


@pytest.mark.parametrize("load", [load_checkpoint, load_resume])
def test_round_trip(tmp_path, load):
    path = tmp_path / "fold0" / "model.pt"
    path.parent.mkdir()
    save_torch(path, document())
    loaded = load(path)
    assert loaded.keys() == document().keys() and loaded["epoch"] == 2 and loaded["model"] == "test_resnet"
    for key, tensor in document()["state_dict"].items():
        assert torch.equal(loaded["state_dict"][key], tensor)
    assert torch.equal(loaded["rng"], document()["rng"])
    assert [path.name for path in path.parent.iterdir()] == ["model.pt"]  # no temporary left


def test_saving_again_replaces_the_file_whole(tmp_path):
    path = tmp_path / "resume.pt"
    save_torch(path, {"epoch": 1})
    save_torch(path, {"epoch": 2})
    assert load_resume(path) == {"epoch": 2}


GARBAGE = {
    "not a torch file": b"this is not a checkpoint",
    "empty": b"",
    "truncated": None,  # the first half of a real file
}


@pytest.mark.parametrize("kind", list(GARBAGE))
def test_a_damaged_resume_file_is_one_error_naming_it(tmp_path, kind):
    path = tmp_path / "resume.pt"
    if GARBAGE[kind] is None:
        save_torch(path, document())
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(GARBAGE[kind])
    with pytest.raises(EnsError, match=rf"^{re.escape(str(path))}: cannot read the fold's resume state \(.+\); use --force") as caught:
        load_resume(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "checkpoint not found; train the fold first"),
        (b"garbage", "cannot read checkpoint: "),
    ],
)
def test_a_missing_or_damaged_checkpoint_is_one_error_naming_it(tmp_path, content, message):
    path = tmp_path / "model.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EnsError, match=rf"^{re.escape(str(path))}: {message}"):
        load_checkpoint(path)


class MakesAFile:
    """Unpickling it would create `path`: the code a weights-only load must never run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("load, message", [(load_resume, "cannot read the fold's resume state"), (load_checkpoint, "cannot read checkpoint")])
def test_pickled_code_is_never_run_and_is_one_error(tmp_path, load, message):
    path = tmp_path / "resume.pt"
    torch.save({"epoch": 1, "payload": MakesAFile(tmp_path / "ran")}, path)
    try:
        with pytest.raises(EnsError, match=message):
            load(path)
    finally:
        assert not (tmp_path / "ran").exists()


def damage(path, span: int = 64) -> None:
    """Flip bytes in the middle of the file: a zip that may still load, with other numbers."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + span] = bytes(byte ^ 0xFF for byte in data[middle:middle + span])
    path.write_bytes(bytes(data))


def test_resume_state_is_saved_with_its_hash_and_a_damaged_one_is_refused(tmp_path):
    path = tmp_path / "resume.pt"
    save_resume(path, document())
    assert sorted(child.name for child in tmp_path.iterdir()) == ["resume.json", "resume.pt"]
    assert load_resume(path)["epoch"] == 2
    damage(path)
    with pytest.raises(EnsError, match=rf"^{re.escape(str(path))}: damaged or replaced.*resume.json.*use --force") as caught:
        load_resume(path)
    assert "\n" not in str(caught.value)
    (tmp_path / "resume.json").write_text("{")
    with pytest.raises(EnsError, match=r"resume.json: cannot read the sha256 of resume.pt; use --force"):
        load_resume(path)


def test_a_resume_state_without_its_hash_is_read_as_before(tmp_path):
    path = tmp_path / "resume.pt"
    save_torch(path, document())  # as runs before resume.json wrote it
    assert load_resume(path)["epoch"] == 2


class Killed(BaseException):
    pass


def test_a_kill_between_the_hash_and_the_rename_leaves_a_state_it_names(tmp_path, monkeypatch):
    path = tmp_path / "resume.pt"
    save_resume(path, {"epoch": 1})

    def killed(*args):
        raise Killed

    monkeypatch.setattr("ensemble.io.os.replace", killed)
    with pytest.raises(Killed):
        save_resume(path, {"epoch": 2})  # resume.json names the new file; resume.pt is still the old one
    monkeypatch.undo()
    assert load_resume(path) == {"epoch": 1}
    save_resume(path, {"epoch": 2})
    assert load_resume(path) == {"epoch": 2}
