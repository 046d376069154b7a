import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ensemble.artifacts import store
from ensemble.artifacts.store import Logits, load_logits, save_logits
from ensemble.errors import EnsError
from ensemble.io import FILE_MODE, atomic_path, read_json, write_json, write_text


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "a.json"
    write_json(path, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(path) as temporary:
            temporary.write_text("half")
            raise RuntimeError("killed")
    assert read_json(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary left behind


def test_logits_round_trip(tmp_path):
    logits = Logits(np.array(["007", "x y"]), ("b", "a"), np.arange(4, dtype=np.float32).reshape(2, 2))
    save_logits(tmp_path / "l.npz", logits)
    loaded = load_logits(tmp_path / "l.npz")
    assert loaded.ids.tolist() == ["007", "x y"] and loaded.classes == ("b", "a")
    np.testing.assert_array_equal(loaded.values, logits.values)


@pytest.mark.parametrize(
    "ids, values, message",
    [
        (["a", "b"], [[0.0, np.nan], [1.0, 2.0]], r"row 0 \(id 'a'\) has a NaN or infinite logit"),
        (["a", "b"], [[0.0, 1.0], [np.inf, 2.0]], r"row 1 \(id 'b'\) has a NaN"),
        (["a", "a"], [[0.0, 1.0], [1.0, 2.0]], "id 'a' appears more than once"),
        (["a"], [[0.0, 1.0], [1.0, 2.0]], r"shape \(2, 2\), expected \(1, 2\)"),
    ],
)
def test_damaged_logits_are_refused(tmp_path, ids, values, message):
    save_logits(tmp_path / "l.npz", Logits(np.array(ids), ("x", "y"), np.array(values, dtype=np.float32)))
    with pytest.raises(EnsError, match=message):
        load_logits(tmp_path / "l.npz")


def test_not_a_logits_file(tmp_path):
    (tmp_path / "l.npz").write_bytes(b"nope")
    with pytest.raises(EnsError, match="l.npz: cannot read logits"):
        load_logits(tmp_path / "l.npz")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
def test_a_truncated_logits_file_is_one_error(tmp_path, keep):
    """A cut zip raises BadZipFile or EOFError, neither an OSError nor a ValueError (issue 16, 8)."""
    path = tmp_path / "l.npz"
    save_logits(path, Logits(np.array(["a", "b"]), ("x", "y"), np.zeros((2, 2), dtype=np.float32)))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(EnsError, match="l.npz: cannot read logits"):
        load_logits(path)


@pytest.mark.parametrize("name", ["", "../up", "a/b", ".hidden", "sp ace"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(EnsError, match="must start with a letter or digit"):
        store.check_name(name, "experiment")


def test_artifacts_are_readable_by_the_group(tmp_path):
    write_text(tmp_path / "x.txt", "x")
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == FILE_MODE
    assert FILE_MODE & 0o044  # not the owner-only mode of temporary files


def test_a_failed_write_names_the_file_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "a.json"
    write_json(path, {"v": 1})
    with pytest.raises(EnsError, match=r"a\.json: cannot write: No space left on device"):
        with atomic_path(path) as temporary:
            temporary.write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert read_json(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    with pytest.raises(FileNotFoundError):  # a file the block reads is not the write's failure
        with atomic_path(path) as temporary:
            (tmp_path / "missing.txt").read_text()


SAVE_WITH_FILE_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
import torch
from ensemble.nets import torch_files
from ensemble.errors import EnsError
try:
    torch_files.save_torch(Path(sys.argv[1]), {"weights": torch.zeros(10000)})
except EnsError as error:
    print(error)
"""


def test_torch_save_on_a_full_disk_names_the_file(tmp_path):
    # Real failing writes (a file-size limit fails them as a full disk does), through torch.save,
    # which reports them as RuntimeError("unexpected pos ...") unless the store finds the OSError.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    path = tmp_path / "resume.pt"
    result = subprocess.run(
        [sys.executable, "-c", SAVE_WITH_FILE_SIZE_LIMIT, str(path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.stdout.strip() == f"{path}: cannot write: File too large", result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name, message",
    [("r10\n", "must start with a letter or digit"), ("x" * 201, "has 201 characters; at most 200")],
)
def test_names_with_a_final_newline_or_too_long_are_refused(name, message):
    with pytest.raises(EnsError, match=message):
        store.check_name(name, "experiment")
    store.check_name("x" * 200, "experiment")
