"""The stage plan: progressive resizing, one schedule over all stages, resume inside a stage."""

import pytest

from ensemble.artifacts import identity
from ensemble.config import TrainSettings
from ensemble.errors import EnsError
from ensemble.metrics import get
from ensemble.stages import Stage, plan_stages, stage_of_epoch, stage_record
from ensemble.training.events import EpochEnd
from ensemble.training.trainer import train_fold
from tests.test_train import fold_data, kill_then_resume

PROGRESSIVE = TrainSettings(model="test_resnet", sizes="16,24", epochs="1,2", batch_size=16, device="cpu")


def test_plan_from_settings_and_normalised_spellings():
    assert plan_stages(PROGRESSIVE) == (Stage(16, 1), Stage(24, 2))
    assert PROGRESSIVE.size == 24, "the last size is the inference size"
    assert plan_stages(TrainSettings(size=40, epochs=4)) == (Stage(40, 4),)
    assert plan_stages(TrainSettings(sizes="16,24", epochs=3)) == (Stage(16, 3), Stage(24, 3))
    # One schedule, one spelling: the same experiment however it is written.
    assert TrainSettings(sizes="32", epochs="5") == TrainSettings(size=32, epochs=5)
    assert TrainSettings(sizes=[16, 24], epochs="3,3") == TrainSettings(sizes="16,24", epochs=3)
    assert [stage_of_epoch(plan_stages(PROGRESSIVE), epoch) for epoch in range(3)] == [0, 1, 1]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"sizes": "32,24"}, "sizes must grow"),
        ({"sizes": "16,24", "epochs": "1,2,3"}, "3 counts for 2 sizes"),
        ({"sizes": "4,24"}, "size must be at least 8 pixels, got 4"),
        ({"epochs": "2,x"}, "epochs: cannot read '2,x'"),
        ({"epochs": 0}, "epochs must be at least 1"),
        # A head warm-up as long as the run: the backbone would never train, without a word.
        ({"epochs": 2, "unfreeze_after": 2}, r"--unfreeze-after 2 is not below the run's 2 epochs"),
        ({"sizes": "16,24", "epochs": "1,2", "unfreeze_after": 4}, r"--unfreeze-after 4 is not below the run's 3 epochs"),
    ],
)
def test_bad_schedules_are_refused(fields, message):
    from ensemble.tasks import SINGLE_LABEL
    from ensemble.training.preflight import validate

    with pytest.raises(EnsError, match=message):
        validate(TrainSettings(**fields), SINGLE_LABEL)


def test_a_head_warm_up_as_long_as_the_run_stops_training_not_blending():
    TrainSettings(epochs=2, unfreeze_after=2)  # ens.toml still loads: blend, leaderboard, report work


def record_input_sides(monkeypatch) -> list:
    """(training?, side) of every batch the fold's net sees."""
    from ensemble.training import trainer

    seen = []
    original = trainer.create_net

    def create(*args, **kwargs):
        net = original(*args, **kwargs)
        net.register_forward_pre_hook(lambda module, inputs: seen.append((module.training, inputs[0].shape[-1])))
        return net

    monkeypatch.setattr(trainer, "create_net", create)
    return seen


def test_each_stage_trains_at_its_size_and_predicts_at_the_last(tmp_path, monkeypatch):
    seen = record_input_sides(monkeypatch)
    events = []
    output = train_fold(fold_data(size=24), PROGRESSIVE, 0, get("accuracy"), tmp_path / "a.pt", events.append)
    events = [event for event in events if isinstance(event, EpochEnd)]
    trained = [side for training, side in seen if training]
    # 40 rows in batches of 16: 3 steps an epoch; epoch 1 at 16px, epochs 2-3 at 24px.
    assert trained == [16] * 3 + [24] * 6
    assert [(event.stage, event.size) for event in events] == [(1, 16), (2, 24), (2, 24)]
    assert [event.epochs for event in events] == [3, 3, 3]
    evaluated_last = [side for training, side in seen if not training][-2:]
    assert evaluated_last == [24, 24], "OOF and test logits at the inference size"
    assert output.valid_logits.shape == (12, 3)


def test_resume_inside_a_stage_is_bit_identical(tmp_path):
    _, _, events = kill_then_resume(fold_data(size=24), PROGRESSIVE, tmp_path, kill_after_epoch=2)
    assert [(event.epoch, event.stage, event.size) for event in events] == [(3, 2, 24)]


def test_an_older_settings_json_is_one_stage_at_its_size():
    old = {"train": {"model": "resnet10t", "size": 32, "epochs": 3}}
    filled = identity.with_legacy_values(old)
    settings = TrainSettings(size=32, epochs=3)
    assert filled["train"]["sizes"] == settings.sizes
    assert filled["train"]["stages"] == stage_record(plan_stages(settings))


def test_cli_progressive_run_records_its_schedule_and_old_records_still_match(competition_dir):
    import json

    from tests.test_cli import ens

    assert ens("folds", "-w", competition_dir).exit_code == 0
    result = ens("train-folds", "-w", competition_dir, "-n", "p", "--sizes", "8,16", "--epochs", "1", "--folds", "0")
    assert result.exit_code == 0, result.output
    assert "stage 2/2 16px" in result.stderr
    settings_path = competition_dir / "models" / "p" / "settings.json"
    record = json.loads(settings_path.read_text())
    assert record["train"]["stages"] == [
        {"size": 8, "epochs": 1, "trainable": "all", "lr_scale": 1.0},
        {"size": 16, "epochs": 1, "trainable": "all", "lr_scale": 1.0},
    ]
    assert record["train"]["size"] == 16 and record["train"]["sizes"] == "8,16"
    # --size alone replaces the schedule: another experiment.
    changed = ens("train-folds", "-w", competition_dir, "-n", "p", "--size", "16", "--epochs", "1", "--folds", "0")
    assert changed.exit_code == 1 and "other settings" in changed.stderr

    result = ens("train-folds", "-w", competition_dir, "-n", "one", "--epochs", "1", "--folds", "0")
    assert result.exit_code == 0, result.output
    # A settings.json written before stages existed still names the same experiment.
    settings_path = competition_dir / "models" / "one" / "settings.json"
    record = json.loads(settings_path.read_text())
    del record["train"]["stages"], record["train"]["sizes"]
    settings_path.write_text(json.dumps(record))
    again = ens("train-folds", "-w", competition_dir, "-n", "one", "--epochs", "1", "--folds", "0")
    assert again.exit_code == 0 and "nothing trained" in again.stderr, again.output


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--sizes", "16,24", "--epochs", "1,2", "--size", "16"], ["give --size or --sizes, not both"]),
        (["--epochs", "2", "--unfreeze-after", "3"], ["--unfreeze-after 3", "2 epochs"]),
    ],
)
def test_a_schedule_that_cannot_be_what_was_asked_is_one_line(competition_dir, args, fragments):
    from tests.test_cli import ens, one_line_error

    assert ens("folds", "-w", competition_dir).exit_code == 0
    one_line_error(ens("train-folds", "-w", competition_dir, "-n", "x", *args), *fragments)
    assert not (competition_dir / "models" / "x").exists()
