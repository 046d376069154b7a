"""--frozen-features --top-blocks N: the frozen stages' maps computed once, the top N stages and
the classifier trained per fold on them; the split checked against the whole network, the saved
fold predicting what it cached, a resumed run bit-identical, and backbones that do not split refused."""

import shutil

import numpy as np
import pytest
import torch
from conftest import make_competition
from test_cli import ens

from ensemble.artifacts.store import load_logits
from ensemble.errors import EnsError
from ensemble.nets.networks import create_net
from ensemble.nets.split import Split

COMMON = ("--model", "test_resnet", "--size", "32", "--epochs", "2", "--batch-size", "8", "--device", "cpu", "--threads", "1")
TOP = ("--frozen-features", "--top-blocks", "1")


@pytest.fixture(scope="module")
def top_dir(tmp_path_factory, weights_file):
    """A competition with a finished experiment `top`: test_resnet's last stage trained on maps."""
    root = make_competition(tmp_path_factory.mktemp("top") / "comp", n_train=40, n_test=12)
    assert ens("folds", "--k", "4", "-w", root).exit_code == 0
    result = ens("train-folds", "--name", "top", "--pretrained", weights_file, *TOP, *COMMON, "-w", root)
    assert result.exit_code == 0, result.output
    assert "maps of the frozen stages for each of 52 images at 32px" in result.output
    return root


@pytest.mark.parametrize("model, top_blocks", [("test_resnet", 1), ("test_resnet", 3), ("test_efficientnet", 2), ("test_convnext", 1)])
def test_the_top_on_the_lower_stages_maps_is_the_whole_network(model, top_blocks):
    torch.manual_seed(0)
    net = create_net(model, 4, 32).eval()
    split = Split(net, top_blocks, model)
    inputs = torch.randn(3, 3, 32, 32)
    split.check(inputs, model)  # refuses when they differ
    with torch.inference_mode():
        maps = split.lower(inputs)
        np.testing.assert_allclose(split.top(maps).numpy(), net(inputs).numpy(), atol=1e-5)
        assert maps.shape[0] == 3 and maps.ndim == 4
        np.testing.assert_allclose(net(inputs).numpy(), split.top(maps).numpy(), atol=1e-5)  # the net is whole again afterwards


def test_the_top_never_runs_the_frozen_stages():
    net = create_net("test_resnet", 4, 32).eval()
    split = Split(net, 1, "test_resnet")
    ran = []
    inside = [inner for module in split.frozen for inner in module.modules() if inner is not module]
    for module in inside:  # the frozen modules' own layers: their convolutions, norms, blocks
        module.register_forward_hook(lambda *args: ran.append(1))
    with torch.inference_mode():
        maps = split.lower(torch.randn(2, 3, 32, 32))
        assert ran  # the lower pass runs them
        ran.clear()
        split.top(maps)
    assert len(inside) > 4 and ran == []


@pytest.mark.parametrize("top_blocks", [0, 99])
def test_a_count_of_stages_out_of_range_is_refused(top_blocks):
    with pytest.raises(EnsError, match="train 1 to 4 of them"):
        Split(create_net("test_resnet", 4, 32), top_blocks, "test_resnet")


def test_a_backbone_that_does_not_run_stage_after_stage_is_refused():
    net = create_net("test_vit", 4, 32).eval()
    with pytest.raises(EnsError, match="test_vit's backbone cannot be split at its stages"):
        Split(net, 1, "test_vit").check(torch.randn(2, 3, 32, 32), "test_vit")


def test_the_folds_train_the_top_stage_and_keep_the_frozen_ones(top_dir, weights_file):
    from ensemble.nets.torch_files import load_checkpoint

    original = torch.load(weights_file, weights_only=True)
    folds = [load_checkpoint(top_dir / "models" / "top" / f"fold{fold}" / "model.pt")["state_dict"] for fold in range(4)]
    for state in folds:
        assert torch.equal(state["conv1.0.weight"], original["conv1.0.weight"])  # frozen below the cut
        assert not torch.equal(state["layer4.0.conv1.weight"], original["layer4.0.conv1.weight"])  # the last stage trained
    assert not torch.equal(folds[0]["layer4.0.conv1.weight"], folds[1]["layer4.0.conv1.weight"])
    oof = load_logits(top_dir / "models" / "top" / "oof.npz")
    assert oof.values.shape == (40, 3) and np.isfinite(oof.values).all()


def test_the_saved_network_predicts_what_the_fold_cached_and_tta_runs_each_fold(top_dir):
    """Each fold's whole network gives its cached logits; TTA cannot share one backbone (the folds'
    top stages differ), so it runs each fold's network."""
    result = ens("predict", "-n", "top", "--as", "top-again", "--device", "cpu", "-w", top_dir)
    assert result.exit_code == 0, result.output
    for part in ("oof.npz", "test.npz"):
        cached, again = load_logits(top_dir / "models" / "top" / part), load_logits(top_dir / "models" / "top-again" / part)
        assert list(cached.ids) == list(again.ids)
        np.testing.assert_allclose(again.values, cached.values, atol=1e-4)
    tta = ens("predict", "-n", "top", "--tta", "hflip", "--as", "top-tta", "--device", "cpu", "-w", top_dir)
    assert tta.exit_code == 0, tta.output
    assert not np.allclose(load_logits(top_dir / "models" / "top-tta" / "oof.npz").values, load_logits(top_dir / "models" / "top" / "oof.npz").values, atol=1e-3)


def test_a_stopped_run_reads_its_maps_back_and_ends_bit_identical(top_dir, weights_file, tmp_path):
    root = tmp_path / "comp"
    shutil.copytree(top_dir, root)
    shutil.rmtree(root / "models")
    first = ens("train-folds", "--name", "top", "--pretrained", weights_file, *TOP, "--folds", "0,1", *COMMON, "-w", root)
    assert first.exit_code == 0, first.output
    rest = ens("train-folds", "--name", "top", "--pretrained", weights_file, *TOP, *COMMON, "-w", root)
    assert rest.exit_code == 0, rest.output
    assert "read back (an earlier run" in rest.output
    for part in ("oof.npz", "test.npz"):
        np.testing.assert_array_equal(load_logits(root / "models" / "top" / part).values, load_logits(top_dir / "models" / "top" / part).values)


def test_a_backbone_that_cannot_split_is_refused_in_one_line_before_a_fold_is_written(tmp_path):
    import timm

    root = make_competition(tmp_path / "comp", n_train=16, n_test=4)
    assert ens("folds", "--k", "2", "-w", root).exit_code == 0
    weights = tmp_path / "test_vit.pt"
    torch.save(timm.create_model("test_vit", img_size=32).state_dict(), weights)
    result = ens("train-folds", "--name", "vit", "--pretrained", weights, *TOP, "--model", "test_vit", "--size", "32", "--epochs", "1", "--batch-size", "8", "--device", "cpu", "-w", root)
    assert result.exit_code == 1 and "Traceback" not in result.output
    error = result.stderr.strip().splitlines()[-1]  # after the weights' check line
    assert error.startswith("error: ") and "test_vit's backbone cannot be split at its stages" in error
    assert not (root / "models" / "vit").exists()


def test_features_of_the_other_kind_are_refused_not_mixed(top_dir, weights_file, tmp_path):
    """Saved features of the other kind (pooled ones, where the folds train top stages on maps)
    are refused, not mixed into one experiment."""
    root = tmp_path / "comp"
    shutil.copytree(top_dir, root)
    experiment = root / "models" / "top"
    with np.load(experiment / "features.npz") as saved:
        pooled = {"train": saved["train"].mean(axis=(2, 3)), "test": saved["test"].mean(axis=(2, 3)), "seconds": saved["seconds"]}
    np.savez(experiment / "features.npz", **pooled)
    shutil.rmtree(experiment / "fold3")
    result = ens("train-folds", "--name", "top", "--pretrained", weights_file, *TOP, *COMMON, "-w", root)
    assert result.exit_code == 1 and "holds pooled features, but top_blocks 1 trains the top stages on maps" in result.stderr


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (("--top-blocks", "1"), "it needs frozen_features"),  # without --frozen-features
        (("--frozen-features", "--top-blocks", "-1"), "top_blocks must be 0"),
        (("--frozen-features", "--top-blocks", "1", "--unfreeze-after", "1"), "a head-only warm-up is not supported"),
    ],
)
def test_top_blocks_it_cannot_honour_are_refused_in_one_line(top_dir, weights_file, extra, fragment):
    result = ens("train-folds", "--name", "refused", "--pretrained", weights_file, *extra, *COMMON, "-w", top_dir)
    assert result.exit_code == 1 and fragment in result.stderr.strip().splitlines()[-1]
    assert not (top_dir / "models" / "refused" / "fold0").exists()


def test_maps_too_large_for_the_memory_are_refused_in_one_line(top_dir, weights_file, monkeypatch):
    from ensemble.training import features

    monkeypatch.setattr(features, "available_memory", lambda: 1 << 16)  # 64 KiB: the maps of 52 images take more than a quarter
    result = ens("train-folds", "--name", "big", "--pretrained", weights_file, *TOP, *COMMON, "-w", top_dir)
    assert result.exit_code == 1
    assert "the frozen stages' maps" in result.stderr and "of the 0.0 GiB available" in result.stderr
    assert not list((top_dir / "models" / "big").glob("fold*/result.json"))


def test_top_blocks_in_ens_toml_without_frozen_features_does_not_stop_other_commands():
    """Refused where a run trains, not where settings are read: `ens blend` reads them too."""
    from ensemble.config import TrainSettings
    from ensemble.training.features import check

    settings = TrainSettings(top_blocks=2)
    with pytest.raises(EnsError, match="it needs frozen_features"):
        check(settings)


def test_the_memory_check_counts_a_copy_for_each_jobs_worker(top_dir, weights_file, monkeypatch):
    from ensemble.training import features

    with torch.inference_mode():
        shape = Split(create_net("test_resnet", 3, 32).eval(), 1, "test_resnet").lower(torch.zeros(1, 3, 32, 32)).shape[1:]
    one_copy = 52 * int(np.prod(shape)) * 4
    monkeypatch.setattr(features, "available_memory", lambda: 5 * one_copy)  # one copy is a fifth, three are more than a quarter
    alone = ens("train-folds", "--name", "alone", "--pretrained", weights_file, *TOP, *COMMON, "--folds", "0", "-w", top_dir)
    assert alone.exit_code == 0, alone.output
    jobs = ens("train-folds", "--name", "jobs", "--pretrained", weights_file, *TOP, *COMMON, "--jobs", "2", "-w", top_dir)
    assert jobs.exit_code == 1 and "in 3 processes (--jobs)" in jobs.stderr
