"""Training one fold: deterministic, and resumable bit for bit after a kill."""

import numpy as np
import pytest
import torch

from ensemble.config import TrainSettings
from ensemble.errors import EnsError
from ensemble.metrics import get
from ensemble.training.draws import batch_indices
from ensemble.training.events import EpochEnd
from ensemble.training.trainer import FoldData, train_fold


def fold_data(n_train=40, n_valid=12, n_test=6, size=16):
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 3, n_train + n_valid)
    images = (rng.random((n_train + n_valid, size, size, 3)) * 60 + targets[:, None, None, None] * 60).astype(np.uint8)
    return FoldData(
        images=images, targets=targets,
        train_rows=np.arange(n_train), valid_rows=np.arange(n_train, n_train + n_valid),
        test_images=images[:n_test], n_classes=3,
    )


SETTINGS = TrainSettings(model="test_resnet", size=16, epochs=3, batch_size=16, device="cpu")


class Killed(Exception):
    pass


def kill_then_resume(data, settings, tmp_path, kill_after_epoch: int, metric=get("accuracy")):
    """Train straight through, and again killed after an epoch then resumed.

    Returns (straight, resumed, epoch events of the resumed run); asserts the two match bit for bit.
    """
    straight = train_fold(data, settings, 0, metric, tmp_path / "straight.pt")

    def kill(event):
        if isinstance(event, EpochEnd) and event.epoch == kill_after_epoch:
            raise Killed

    with pytest.raises(Killed):
        train_fold(data, settings, 0, metric, tmp_path / "killed.pt", kill)
    assert (tmp_path / "killed.pt").is_file() and (tmp_path / "killed.json").is_file()  # resume.pt and its sha256
    events = []
    resumed = train_fold(data, settings, 0, metric, tmp_path / "killed.pt", events.append)
    np.testing.assert_array_equal(straight.valid_logits, resumed.valid_logits)
    np.testing.assert_array_equal(straight.test_logits, resumed.test_logits)
    for name, tensor in straight.state_dict.items():
        assert torch.equal(tensor, resumed.state_dict[name]), name
    return straight, resumed, [event for event in events if isinstance(event, EpochEnd)]


def test_resume_after_a_kill_gives_identical_weights(tmp_path):
    _, resumed, events = kill_then_resume(fold_data(), SETTINGS, tmp_path, kill_after_epoch=1)
    assert [event.epoch for event in events] == [2, 3]
    assert [event.epoch for event in resumed.history] == [1, 2, 3]


def test_folds_differ_and_shapes_hold(tmp_path):
    data = fold_data()
    a = train_fold(data, SETTINGS, 0, get("accuracy"), tmp_path / "a.pt")
    b = train_fold(data, SETTINGS, 1, get("accuracy"), tmp_path / "b.pt")
    assert a.valid_logits.shape == (12, 3) and a.valid_logits.dtype == np.float32
    assert a.test_logits.shape == (6, 3)
    assert not np.array_equal(a.valid_logits, b.valid_logits)  # each fold seeds its own draws
    assert len(a.history) == 3 and all(0 <= event.valid_score <= 1 for event in a.history)


def test_learns_an_easy_task(tmp_path):
    data = fold_data(n_train=96, n_valid=30)
    settings = TrainSettings(model="test_resnet", size=16, epochs=6, batch_size=16, lr=3e-3, device="cpu")
    output = train_fold(data, settings, 0, get("accuracy"), tmp_path / "a.pt")
    assert output.history[-1].valid_score > 0.6  # chance is 1/3


def test_a_last_batch_of_one_is_dropped():
    sizes = [len(rows) for rows in batch_indices(33, 16, torch.Generator().manual_seed(0))]
    assert sizes == [16, 16]
    assert sorted(torch.cat(batch_indices(32, 16, torch.Generator())).tolist()) == list(range(32))


def test_a_diverging_fold_stops_without_saving(tmp_path):
    settings = TrainSettings(model="test_resnet", size=16, epochs=2, batch_size=16, lr=1e6, device="cpu")
    with pytest.raises(EnsError, match=r"fold 0 diverged in epoch 1 \((train loss nan|validation logits nan in \d+ of \d+ held-out rows; the train loss was still \S+)\); lower --lr \(now 1e\+06\)"):
        train_fold(fold_data(), settings, 0, get("accuracy"), tmp_path / "a.pt")
    assert not (tmp_path / "a.pt").exists()


@pytest.mark.parametrize(
    "train_loss, logits, said",
    [
        (float("nan"), np.zeros((4, 3)), "train loss nan"),
        (1.25, np.array([[0, 0, 0], [np.inf, 0, 0], [np.nan, 1, 1], [0, 0, 0]]), "validation logits inf in 2 of 4 held-out rows; the train loss was still 1.25"),
    ],
)
def test_divergence_quotes_the_number_that_is_not_finite(train_loss, logits, said):
    from ensemble.training.trainer import divergence

    assert divergence(train_loss, logits) == said


def test_a_fold_saved_in_the_contiguous_layout_resumes_in_it(tmp_path, monkeypatch):
    """ens once trained contiguous on the CPU: a fold it saved resumes bit for bit after the upgrade to channels_last."""
    from ensemble.nets import devices

    new_layout = devices.memory_format
    monkeypatch.setattr(devices, "memory_format", lambda device, saved=None: torch.contiguous_format)  # the old ens
    straight = train_fold(fold_data(), SETTINGS, 0, get("accuracy"), tmp_path / "straight.pt")

    def kill(event):
        if isinstance(event, EpochEnd) and event.epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        train_fold(fold_data(), SETTINGS, 0, get("accuracy"), tmp_path / "killed.pt", kill)
    saved = torch.load(tmp_path / "killed.pt", weights_only=True)["model"]
    monkeypatch.setattr(devices, "memory_format", new_layout)  # the upgrade
    assert devices.memory_format(torch.device("cpu"), saved) == torch.contiguous_format
    assert devices.memory_format(torch.device("cpu"), straight.state_dict) == torch.contiguous_format
    assert devices.memory_format(torch.device("cpu")) == torch.channels_last  # a new fold
    resumed = train_fold(fold_data(), SETTINGS, 0, get("accuracy"), tmp_path / "killed.pt")
    np.testing.assert_array_equal(straight.valid_logits, resumed.valid_logits)
    np.testing.assert_array_equal(straight.test_logits, resumed.test_logits)
