"""Learning-rate schedules: every one works for every number of steps, and onecycle stays torch's."""

import math

import pytest
import torch

from ensemble.config import TrainSettings
from ensemble.training.optim import SCHEDULES

WARMUPS = (0.0, 0.2, 0.5, 0.99)


def rates(schedule, optimizer, settings: TrainSettings, total_steps: int) -> list[float]:
    """Every step's lr, as the trainer steps it: the lr, then optimizer.step, then scheduler.step."""
    scheduler = schedule(optimizer, settings, total_steps)
    seen = []
    for _ in range(total_steps):
        seen.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return seen


def adamw() -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=1e-3)


@pytest.mark.parametrize("name", SCHEDULES.names())
@pytest.mark.parametrize("warmup", WARMUPS)
def test_every_schedule_steps_through_any_number_of_steps(name, warmup):
    """Issue 16, 13b: 5 steps at warm-up 0.2 (one warm-up step) was a ZeroDivisionError in OneCycleLR."""
    settings = TrainSettings(schedule=name, warmup=warmup, lr=1e-3)
    for total_steps in range(1, 21):
        seen = rates(SCHEDULES.get(name), adamw(), settings, total_steps)
        assert len(seen) == total_steps and all(math.isfinite(lr) and 0 <= lr <= 1e-3 * (1 + 1e-12) for lr in seen), (total_steps, seen)


@pytest.mark.parametrize("warmup", (0.0, 0.1, 0.2, 0.25, 0.3, 0.5, 0.99))
def test_onecycle_gives_torchs_rates_wherever_torch_worked(warmup):
    """Runs that trained before the fix keep bit-identical rates (and momenta)."""
    settings = TrainSettings(schedule="onecycle", warmup=warmup, lr=1e-3)
    for total_steps in range(1, 41):
        reference = adamw()
        try:
            torch_rates = rates(
                lambda optimizer, settings, total: torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, total_steps=total, pct_start=settings.warmup),
                reference, settings, total_steps,
            )
        except ZeroDivisionError:  # the one case torch fails: a warm-up of exactly one step
            assert float(warmup * total_steps) == 1.0
            continue
        ours = adamw()
        assert rates(SCHEDULES.get("onecycle"), ours, settings, total_steps) == torch_rates
        assert ours.param_groups[0]["betas"] == reference.param_groups[0]["betas"]


def test_a_one_step_onecycle_warm_up_starts_low_and_peaks_after():
    settings = TrainSettings(schedule="onecycle", warmup=0.2, lr=1.0)
    first, *rest = rates(SCHEDULES.get("onecycle"), torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, momentum=0.9), settings, 5)
    assert first == pytest.approx(1 / 25)  # OneCycleLR's initial lr: max_lr / div_factor
    assert rest == sorted(rest, reverse=True) and rest[0] > 0.8 and rest[-1] < 0.2
