"""--frozen-features: a pretrained backbone's features computed once, a linear head per fold; the
fold's checkpoint is the whole network and predicts what the head cached; resume and refusals."""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import make_competition, make_regression_competition
from test_cli import ens, one_line_error

from ensemble.artifacts.identity import LEGACY
from ensemble.artifacts.store import load_logits

COMMON = ("--model", "test_resnet", "--size", "32", "--epochs", "3", "--batch-size", "8", "--device", "cpu", "--threads", "1")


@pytest.fixture(scope="module")
def frozen_dir(tmp_path_factory, weights_file):
    """A competition with a finished frozen-features experiment `ff`."""
    root = make_competition(tmp_path_factory.mktemp("frozen") / "comp", n_train=40, n_test=12)
    assert ens("folds", "--k", "4", "-w", root).exit_code == 0
    result = ens("train-folds", "--name", "ff", "--pretrained", weights_file, "--frozen-features", *COMMON, "-w", root)
    assert result.exit_code == 0, result.output
    assert "frozen features: " in result.output and "computed in" in result.output
    (root / "features_seconds.txt").write_text(result.output.split("computed in ")[1].split("s")[0])
    return root


def test_the_head_trains_on_features_computed_once(frozen_dir):
    experiment = frozen_dir / "models" / "ff"
    with np.load(experiment / "features.npz") as features:
        assert features["train"].shape[0] == 40 and features["test"].shape[0] == 12
    oof = load_logits(experiment / "oof.npz")
    assert oof.values.shape == (40, 3) and np.isfinite(oof.values).all()
    assert len(set(np.round(oof.values[:, 0], 5))) > 10  # a trained head, not one constant row
    # The features' time is in the experiment's time (scores.json, the leaderboard's), once.
    scores = json.loads((experiment / "scores.json").read_text())
    assert f"{scores['features_seconds']:.1f}" == (frozen_dir / "features_seconds.txt").read_text()  # the seconds printed


def test_the_saved_network_predicts_what_the_head_cached(frozen_dir, monkeypatch):
    """The checkpoint holds the backbone and the head with the standardisation folded in:
    `ens predict` through the whole network gives the cached logits."""
    from ensemble.inference import predict
    from ensemble.nets.devices import memory_format
    from ensemble.nets.torch_files import load_checkpoint

    monkeypatch.setattr(predict, "shared_backbone_logits", lambda *args: None)  # each fold's whole network
    # Saved in the features' layout, which predict reads off the weights (contiguous ran half as fast).
    assert memory_format(torch.device("cpu"), load_checkpoint(frozen_dir / "models" / "ff" / "fold0" / "model.pt")["state_dict"]) == torch.channels_last
    result = ens("predict", "-n", "ff", "--as", "ff-again", "--device", "cpu", "-w", frozen_dir)
    assert result.exit_code == 0, result.output
    for part in ("oof.npz", "test.npz"):
        cached = load_logits(frozen_dir / "models" / "ff" / part)
        again = load_logits(frozen_dir / "models" / "ff-again" / part)
        assert list(cached.ids) == list(again.ids)
        np.testing.assert_allclose(again.values, cached.values, atol=1e-4)


def test_a_stopped_run_reads_its_features_back_and_ends_bit_identical(frozen_dir, weights_file, tmp_path):
    root = tmp_path / "comp"
    shutil.copytree(frozen_dir, root)
    shutil.rmtree(root / "models")
    first = ens("train-folds", "--name", "ff", "--pretrained", weights_file, "--frozen-features", "--folds", "0,1", *COMMON, "-w", root)
    assert first.exit_code == 0, first.output
    rest = ens("train-folds", "--name", "ff", "--pretrained", weights_file, "--frozen-features", *COMMON, "-w", root)
    assert rest.exit_code == 0, rest.output
    assert "read back (an earlier run" in rest.output
    for part in ("oof.npz", "test.npz"):
        np.testing.assert_array_equal(load_logits(root / "models" / "ff" / part).values, load_logits(frozen_dir / "models" / "ff" / part).values)


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ((), "needs pretrained weights"),
        (("--augment", "hflip"), "train-time augment cannot apply"),
        (("--sizes", "16,32"), "not in stages"),
        (("--tta", "hflip"), "ens predict --tta"),
    ],
)
def test_what_frozen_features_cannot_honour_is_refused_before_anything_is_written(frozen_dir, weights_file, extra, fragment):
    weights = () if fragment == "needs pretrained weights" else ("--pretrained", weights_file)
    common = [arg for arg in COMMON if arg not in ("--size", "32")] if "--sizes" in extra else COMMON
    result = ens("train-folds", "--name", "refused", "--frozen-features", *weights, *extra, *common, "-w", frozen_dir)
    one_line_error(result, "frozen_features", fragment)
    assert not (frozen_dir / "models" / "refused").exists()


def tta_through_both_paths(root, source: str, monkeypatch) -> tuple[list[int], list[int]]:
    """`ens predict --tta hflip,vflip` of a frozen experiment through the shared backbone
    (SOURCE-tta), then through each fold's whole network (SOURCE-tta-folds), then resumed on the
    shared path after two of its folds are removed; the rows each backbone pass predicted in the
    first run and in the resumed one."""
    from ensemble.inference import frozen_views, predict

    passes = []
    outputs = frozen_views.tta.view_outputs
    monkeypatch.setattr(frozen_views.tta, "view_outputs", lambda *args: passes.append(len(args[2] if args[3] is None else args[3])) or outputs(*args))
    tta = ("predict", "-n", source, "--tta", "hflip,vflip", "--keep-views", "--device", "cpu", "-w", root)
    assert ens(*tta, "--as", f"{source}-tta").exit_code == 0
    first, passes[:] = list(passes), []
    before = load_logits(root / "models" / f"{source}-tta" / "oof.npz").values
    for fold in (0, 2):
        (root / "models" / f"{source}-tta" / f"fold{fold}" / "result.json").unlink()
    assert ens(*tta, "--as", f"{source}-tta").exit_code == 0  # resumes the two folds
    resumed = list(passes)
    np.testing.assert_allclose(load_logits(root / "models" / f"{source}-tta" / "oof.npz").values, before, atol=1e-5)
    with monkeypatch.context() as patched:
        patched.setattr(predict, "shared_backbone_logits", lambda *args: None)  # each fold's whole network instead
        assert ens(*tta, "--as", f"{source}-tta-folds").exit_code == 0
    for part in ("oof.npz", "test.npz", "fold1/views.npz"):
        shared, folds = (root / "models" / name / part for name in (f"{source}-tta", f"{source}-tta-folds"))
        with np.load(shared) as one, np.load(folds) as other:
            for key in ("oof", "test") if part.endswith("views.npz") else ("logits",):
                np.testing.assert_allclose(one[key], other[key], atol=1e-4)
    return first, resumed


def test_tta_runs_the_shared_backbone_once_and_gives_every_folds_network_logits(frozen_dir, monkeypatch):
    """The folds share the frozen backbone: it runs once over each view of the held-out rows and
    the test images, every fold's classifier with it, giving what the folds' whole networks give."""
    first, resumed = tta_through_both_paths(frozen_dir, "ff", monkeypatch)
    assert first == [40, 12]  # every training image and every test image once, not 4 test sets
    assert resumed == [20, 12]  # a resumed run: the held-out rows of its two folds (4 folds of 10)
    merged = load_logits(frozen_dir / "models" / "ff-tta" / "oof.npz").values
    assert not np.allclose(merged, load_logits(frozen_dir / "models" / "ff" / "oof.npz").values, atol=1e-3)  # the views count


def test_a_regression_head_gives_values_in_the_targets_range(tmp_path, weights_file, monkeypatch):
    root = make_regression_competition(tmp_path / "reg", n_train=36, n_test=10)
    assert ens("folds", "--k", "3", "-w", root).exit_code == 0
    result = ens("train-folds", "--name", "ffr", "--pretrained", weights_file, "--frozen-features", *COMMON, "-w", root)
    assert result.exit_code == 0, result.output
    values = load_logits(root / "models" / "ffr" / "oof.npz").values
    assert values.shape == (36, 1) and 0 <= values.min() and values.max() <= 9
    assert tta_through_both_paths(root, "ffr", monkeypatch)[0] == [36, 10]  # decoded per view, then merged, as each network's


def test_an_older_record_means_the_ordinary_trainer():
    assert LEGACY["train.frozen_features"] is False


def test_a_frozen_experiment_from_before_top_blocks_resumes_as_a_linear_head(frozen_dir, weights_file, tmp_path):
    """A settings.json without top_blocks means what main did before: a linear head per fold."""
    root = tmp_path / "comp"
    shutil.copytree(frozen_dir, root)
    experiment = root / "models" / "ff"
    record = json.loads((experiment / "settings.json").read_text())
    del record["train"]["top_blocks"]
    (experiment / "settings.json").write_text(json.dumps(record))
    shutil.rmtree(experiment / "fold3")
    result = ens("train-folds", "--name", "ff", "--pretrained", weights_file, "--frozen-features", *COMMON, "-w", root)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(load_logits(experiment / "oof.npz").values, load_logits(frozen_dir / "models" / "ff" / "oof.npz").values)


def test_a_cluster_run_is_refused_before_anything_is_written(frozen_dir, weights_file):
    result = ens("train-folds", "--name", "ffc", "--pretrained", weights_file, "--frozen-features", "--cluster", "tcp://127.0.0.1:9", *COMMON, "-w", frozen_dir)
    one_line_error(result, "frozen_features", "--cluster")
    assert not (frozen_dir / "models" / "ffc").exists()


def test_a_feature_constant_on_the_training_rows_is_centred_not_blown_up():
    from ensemble.config import TrainSettings
    from ensemble.metrics import get
    from ensemble.training.features import Features
    from ensemble.training.head import train_head_fold
    from ensemble.training.trainer import FoldData

    rng = np.random.default_rng(0)
    train = rng.normal(size=(40, 4)).astype(np.float32)
    targets = (train[:, 1] > 0).astype(np.int64)
    train[:30, 0] = 0.5  # constant on the training rows, not on the held-out ones
    train[30:, 0] = 50.0
    data = FoldData(train, targets, np.arange(30), np.arange(30, 40), train[:2], 2)
    settings = TrainSettings(model="test_resnet", size=32, epochs=3, batch_size=8, pretrained="unused")
    with pytest.MonkeyPatch.context() as patch:  # the network saved is not what this test is about
        patch.setattr("ensemble.training.head.network_state", lambda *args: {})
        output = train_head_fold(data, Features(train, train[:2]), settings, 0, get("accuracy"))
    assert np.abs(output.valid_logits).max() < 100


def test_a_frozen_run_refuses_a_teachers_lessons():
    from ensemble.config import TrainSettings
    from ensemble.errors import EnsError
    from ensemble.training.features import check_run

    settings = TrainSettings(pretrained="w.pth", frozen_features=True)
    with pytest.raises(EnsError, match="student learns from its teacher"):
        check_run(settings, None, teaching=True)
    check_run(settings, None, teaching=False)
    check_run(TrainSettings(), "tcp://host:8786", teaching=True)  # an ordinary run: nothing to refuse
