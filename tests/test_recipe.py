"""The loop's recipe: EMA, mixup/cutmix, losses, schedules; resume stays exact with all of it on."""

import numpy as np
import pytest
import torch

from ensemble.config import TrainSettings
from ensemble.inference.batches import Batches
from ensemble.metrics import get
from ensemble.training.events import EpochEnd
from ensemble.training.optim import SCHEDULES
from ensemble.training.recipe import WeightsEma, balanced_weights, mix_batch
from ensemble.training.trainer import train_fold
from tests.test_train import fold_data, kill_then_resume

EVERYTHING = TrainSettings(
    model="test_resnet", sizes="8,16", epochs="1,2", batch_size=12, device="cpu", seed=3,
    augment="hflip,rot90,shift:0.1,scale:0.7-1,rotate:10,color:0.2,erase:0.5", ema=0.9, mixup=0.4, cutmix=1.0,
    label_smoothing=0.1, class_weights="balanced", optimizer="sgd", lr=0.05, schedule="cosine", warmup=0.1, clip_grad=1.0,
)


def test_resume_with_every_option_on_is_bit_identical(tmp_path):
    # 40 rows in batches of 12: a last batch of 4; kill inside the second stage.
    _, resumed, events = kill_then_resume(fold_data(), EVERYTHING, tmp_path, kill_after_epoch=2)
    assert [event.epoch for event in events] == [3]
    assert np.isfinite(resumed.valid_logits).all()


def test_ema_weights_differ_from_raw_and_are_the_ones_cached(tmp_path, monkeypatch):
    from ensemble.training import trainer

    nets = []
    original = trainer.WeightsEma

    def keep(net, decay):
        ema = original(net, decay)
        nets.append((net, ema))
        return ema

    monkeypatch.setattr(trainer, "WeightsEma", keep)
    settings = TrainSettings(model="test_resnet", size=16, epochs=2, batch_size=16, device="cpu", ema=0.9)
    data = fold_data()
    output = train_fold(data, settings, 0, get("accuracy"), tmp_path / "a.pt")
    (raw, ema), = nets
    raw_state, ema_state = raw.state_dict(), ema.net.state_dict()
    assert any(not torch.equal(raw_state[name], ema_state[name]) for name in raw_state if raw_state[name].is_floating_point())
    for name, tensor in output.state_dict.items():
        assert torch.equal(tensor, ema_state[name]), f"saved weights are not the EMA's: {name}"
    batches = Batches(ema.net, torch.device("cpu"), 16)
    np.testing.assert_array_equal(output.valid_logits, batches.predict(ema.net, data.images, data.valid_rows))
    assert not np.array_equal(output.valid_logits, batches.predict(raw, data.images, data.valid_rows))


def test_ema_decay_warms_up():
    ema = WeightsEma(torch.nn.Linear(2, 2), decay=0.999)
    decays = []
    for _ in range(3):
        decays.append(ema.current_decay())
        ema.update(torch.nn.Linear(2, 2))
    assert decays == pytest.approx([0.1, 2 / 11, 3 / 12])
    ema.updates = 10**6
    assert ema.current_decay() == 0.999


@pytest.mark.parametrize("n", [1, 2, 5, 7])
@pytest.mark.parametrize("mixup, cutmix", [(0.4, 0), (0, 1.0), (0.4, 1.0)])
def test_mixed_targets_sum_to_one_for_any_batch_size(n, mixup, cutmix):
    rng = np.random.default_rng(n)
    inputs = torch.randn(n, 3, 8, 8)
    targets = torch.from_numpy(rng.integers(0, 4, n))
    for _ in range(5):
        mixed, soft = mix_batch(inputs, targets, 4, mixup, cutmix, rng)
        assert mixed.shape == inputs.shape and soft.shape == (n, 4)
        torch.testing.assert_close(soft.sum(1), torch.ones(n))
        assert (soft >= 0).all()


def test_cutmix_targets_follow_the_pasted_area():
    inputs = torch.stack([torch.zeros(1, 10, 10), torch.ones(1, 10, 10)])
    targets = torch.tensor([0, 1])
    for seed in range(5):
        mixed, soft = mix_batch(inputs, targets, 2, 0, 1.0, np.random.default_rng(seed))
        # Row 0 started all zeros: its ones are exactly what was pasted from row 1.
        pasted = float(mixed[0].mean()) if soft[0, 1] > 0 else 0.0
        assert soft[0, 1].item() == pytest.approx(pasted)


def test_balanced_class_weights():
    weights = balanced_weights(np.array([0, 0, 0, 1]), 3)
    np.testing.assert_allclose(weights, [4 / 6, 2.0, 1.0])  # class 2 absent: weight 1


def test_cosine_schedule_warms_up_then_decays_to_zero():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    settings = TrainSettings(schedule="cosine", warmup=0.2, lr=1.0)
    scheduler = SCHEDULES.get("cosine")(optimizer, settings, 10)
    rates = []
    for _ in range(10):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[:4] == pytest.approx([0.5, 1.0, 1.0, (1 + np.cos(np.pi / 8)) / 2])
    assert rates == sorted(rates[:2]) + sorted(rates[2:], reverse=True)
    assert rates[-1] < 0.05


def test_recipe_learns_an_easy_task(tmp_path):
    settings = TrainSettings(
        model="test_resnet", size=16, epochs=6, batch_size=16, lr=3e-3, device="cpu",
        augment="shift:0.1,erase:0.25", ema=0.9, label_smoothing=0.1,
    )
    events = []
    train_fold(fold_data(n_train=96, n_valid=30), settings, 0, get("accuracy"), tmp_path / "a.pt", events.append)
    assert [event for event in events if isinstance(event, EpochEnd)][-1].valid_score > 0.6  # chance is 1/3


def test_a_settings_json_from_before_the_recipe_names_the_recipe_that_reproduces_it():
    import dataclasses

    from ensemble.artifacts import identity

    # The train table main wrote, before stages and the recipe existed.
    old = {"model": "resnet10t", "size": 32, "epochs": 3, "batch_size": 64, "lr": 0.001, "weight_decay": 0.01, "seed": 42}
    filled = identity.with_legacy_values({"train": old})["train"]
    legacy = TrainSettings(**{key: value for key, value in filled.items() if key not in ("stages", "weights")})
    assert filled == {key: value for key, value in dataclasses.asdict(legacy).items() if key != "device"} | {
        "stages": [{"size": 32, "epochs": 3, "trainable": "all", "lr_scale": 1.0}], "weights": "random",
    }
    assert (legacy.augment, legacy.ema, legacy.mixup, legacy.cutmix, legacy.label_smoothing) == ("none", 0, 0, 0, 0)
    assert (legacy.schedule, legacy.optimizer, legacy.warmup, legacy.clip_grad, legacy.class_weights) == ("onecycle", "adamw", 0.2, 0, "none")
