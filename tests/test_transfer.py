"""Training from pretrained weights: frozen stages and BatchNorm stay bit-identical, the head
warm-up, resume with attention and a frozen backbone, and what makes an experiment's identity."""

import json
import shutil

import pytest
import torch
from test_cli import ens, one_line_error
from test_train import Killed, fold_data, kill_then_resume

from ensemble.config import PRETRAINED_BACKBONE_LR_SCALE, PRETRAINED_WARMUP_EPOCHS, TrainSettings
from ensemble.metrics import get
from ensemble.stages import plan_stages
from ensemble.training.events import EpochEnd
from ensemble.training.trainer import train_fold


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A test_resnet state dict (1,000-class classifier) with BatchNorm statistics other than 0 and 1."""
    import timm

    torch.manual_seed(3)
    model = timm.create_model("test_resnet")
    for key, tensor in model.state_dict().items():
        if key.endswith("running_mean"):
            tensor.uniform_(-0.2, 0.2)
        elif key.endswith(("running_var", "bn2.weight", "bn3.weight")):  # timm starts the last two at 0
            tensor.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("weights") / "resnet.pt"
    torch.save(model.state_dict(), path)
    return path


def settings_for(weights_file, **changes) -> TrainSettings:
    base = dict(model="test_resnet", size=16, epochs=2, batch_size=16, device="cpu", pretrained=str(weights_file))
    return TrainSettings(**{**base, **changes})


def unchanged(before: dict, after: dict, keys) -> list[str]:
    return [key for key in keys if torch.equal(before[key], after[key])]


def backbone_keys(state: dict, prefix: str = "") -> list[str]:
    return [key for key in state if key.startswith(prefix) and not key.startswith("fc.") and ".se." not in key]


def kill_after_first_epoch(event):
    if isinstance(event, EpochEnd) and event.epoch == 1:
        raise Killed


def test_a_linear_probe_keeps_every_backbone_tensor_bit_identical(tmp_path, weights_file):
    loaded = torch.load(weights_file, weights_only=True)
    settings = settings_for(weights_file, attention="se", attention_in_blocks=True, train_blocks=0, freeze_bn=False)
    output = train_fold(fold_data(), settings, 0, get("accuracy"), tmp_path / "r.pt")
    keys = backbone_keys(output.state_dict)
    assert any(key.endswith("running_mean") for key in keys)
    assert unchanged(loaded, output.state_dict, keys) == keys  # weights, BN affine and statistics
    attention = [key for key in output.state_dict if ".se." in key and "fc2" in key]
    assert attention and not any(torch.equal(output.state_dict[k], torch.zeros_like(output.state_dict[k])) for k in attention)
    assert not torch.equal(output.state_dict["fc.weight"], output.state_dict["fc.weight"] * 0)


def test_freeze_bn_keeps_statistics_in_a_stage_that_trains(tmp_path, weights_file):
    loaded = torch.load(weights_file, weights_only=True)
    settings = settings_for(weights_file, train_blocks=1, freeze_bn=True, unfreeze_after=0)
    state = train_fold(fold_data(), settings, 0, get("accuracy"), tmp_path / "r.pt").state_dict
    last_stage = backbone_keys(state, "layer4.")
    batchnorm = [key for key in last_stage if ".bn" in key or "downsample.2" in key]
    convolutions = [key for key in last_stage if key not in batchnorm]
    assert batchnorm and unchanged(loaded, state, batchnorm) == batchnorm
    assert convolutions and unchanged(loaded, state, convolutions) == []
    earlier = [key for key in backbone_keys(state) if not key.startswith("layer4.")]
    assert unchanged(loaded, state, earlier) == earlier


def test_the_head_warms_up_alone_then_the_backbone_trains(tmp_path, weights_file):
    loaded = torch.load(weights_file, weights_only=True)
    settings = settings_for(weights_file, unfreeze_after=1, freeze_bn=False)
    with pytest.raises(Killed):
        train_fold(fold_data(), settings, 0, get("accuracy"), tmp_path / "r.pt", kill_after_first_epoch)
    warmed = torch.load(tmp_path / "r.pt", weights_only=True)["model"]
    keys = backbone_keys(warmed)
    assert unchanged(loaded, warmed, keys) == keys
    final = train_fold(fold_data(), settings, 0, get("accuracy"), tmp_path / "r.pt").state_dict
    assert unchanged(loaded, final, [key for key in keys if not key.endswith("num_batches_tracked")]) == []


def test_resume_is_bit_identical_with_attention_and_a_frozen_backbone(tmp_path, weights_file):
    """Killed after the head's warm-up: the resumed run unfreezes two stages at half the lr, as the straight one."""
    settings = settings_for(
        weights_file, epochs=2, attention="cbam", attention_in_blocks=True,
        train_blocks=2, unfreeze_after=1, backbone_lr_scale=0.5, freeze_bn=False,
    )
    assert [stage.trainable for stage in plan_stages(settings)] == ["head", "blocks"]
    _, resumed, events = kill_then_resume(fold_data(), settings, tmp_path, kill_after_epoch=1)
    assert [(event.epoch, event.stage) for event in events] == [(2, 2)]


def test_the_warm_up_is_a_stage_of_the_plan_and_auto_is_resolved():
    def plan(**fields):
        return [(stage.size, stage.epochs, stage.trainable) for stage in plan_stages(TrainSettings(size=32, **fields))]

    assert plan(epochs=3) == [(32, 3, "all")]  # from scratch: as before
    warm = PRETRAINED_WARMUP_EPOCHS  # the measured default
    assert plan(epochs=3, pretrained="w.pt") == [(32, warm, "head")] * bool(warm) + [(32, 3 - warm, "all")]
    assert plan(epochs=3, pretrained="w.pt", unfreeze_after=1) == [(32, 1, "head"), (32, 2, "all")]
    assert plan(epochs=1, pretrained="w.pt") == [(32, 1, "all")]  # no room for a warm-up
    assert plan(sizes="16,24", epochs="1,2", pretrained="w.pt", train_blocks=1, unfreeze_after=1) == [(16, 1, "head"), (24, 2, "blocks")]
    assert plan(sizes="16,24", epochs=2, unfreeze_after=3, freeze_bn=True) == [(16, 2, "head"), (24, 1, "head"), (24, 1, "blocks")]
    resolved = TrainSettings(pretrained="w.pt").resolved()
    assert (resolved.unfreeze_after, resolved.freeze_bn, resolved.backbone_lr_scale) == (
        PRETRAINED_WARMUP_EPOCHS, False, PRETRAINED_BACKBONE_LR_SCALE,
    )
    assert resolved.resolved() == resolved


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--attention", "nope"], ["unknown attention block 'nope'; expected one of: cbam, eca, none, residual, se"]),
        (["--attention-in-blocks"], ["--attention-in-blocks needs an attention block"]),
        (["--model", "test_efficientnet", "--attention", "se", "--attention-in-blocks"], ["families that do: ResNet"]),
        (["--pretrained", "no_such_file.pt"], ["no_such_file.pt: file not found"]),
        (["--model", "test_vit", "--size", "32", "--attention", "se"], ["--attention needs (batch, channels, h, w) features"]),
        (["--train-blocks", "-2"], ["train_blocks must be -1 (all), 0 (linear probe) or more"]),
    ],
)
def test_model_option_refusals_are_one_line(trained_copy, args, fragments):
    one_line_error(ens("train-folds", "-w", trained_copy, "--name", "n", *args), *fragments)
    assert not (trained_copy / "models" / "n").exists()


def test_attention_is_part_of_the_identity_and_old_experiments_still_resume(trained_copy):
    one_line_error(ens("train-folds", "-w", trained_copy, "-n", "a", "--attention", "se"), "other settings", "train.attention: none -> se")
    settings_path = trained_copy / "models" / "a" / "settings.json"
    record = json.loads(settings_path.read_text())
    new_keys = ("attention", "attention_in_blocks", "pretrained", "weights", "train_blocks", "freeze_bn", "unfreeze_after", "backbone_lr_scale")
    assert {key: record["train"][key] for key in new_keys} == {
        "attention": "none", "attention_in_blocks": False, "pretrained": "", "weights": "random",
        "train_blocks": -1, "freeze_bn": False, "unfreeze_after": 0, "backbone_lr_scale": 1.0,
    }
    for key in new_keys:  # as an experiment trained before these settings existed wrote it
        del record["train"][key]
    settings_path.write_text(json.dumps(record))
    same = ens("train-folds", "-w", trained_copy, "-n", "a")  # the same experiment: nothing to train
    assert same.exit_code == 0 and "nothing trained" in same.stderr, same.output
    assert ens("blend", "-w", trained_copy, "-n", "s").exit_code == 0


def test_the_weights_file_content_not_its_path_is_part_of_the_identity(trained_copy, weights_file, tmp_path):
    copy = shutil.copy(weights_file, tmp_path / "w.pt")
    result = ens("train-folds", "-w", trained_copy, "-n", "p", "--folds", "0", "--pretrained", copy)
    assert result.exit_code == 0, result.output
    assert f"pretrained: 90 tensors from {copy} matched by name; dropped the original classifier fc.weight, fc.bias" in result.stderr
    record = json.loads((trained_copy / "models" / "p" / "settings.json").read_text())
    assert record["train"]["weights"].startswith("sha256:") and record["train"]["pretrained"] == str(copy)
    assert record["train"]["unfreeze_after"] == 0  # auto, resolved: one epoch leaves no room for a warm-up

    moved = shutil.move(copy, tmp_path / "moved.pt")
    same = ens("train-folds", "-w", trained_copy, "-n", "p", "--folds", "0", "--pretrained", moved)
    assert same.exit_code == 0 and "nothing trained" in same.stderr, same.output  # a moved file is the same experiment
    state = torch.load(moved, weights_only=True)
    state["conv1.0.weight"] += 1
    torch.save(state, moved)
    one_line_error(ens("train-folds", "-w", trained_copy, "-n", "p", "--folds", "0", "--pretrained", moved), "other settings", "train.weights: sha256:")
