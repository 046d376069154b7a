"""A trained experiment's fold checkpoints: whose they are, loaded and checked, the network
rebuilt from each, and its logits under a TTA policy. `ens predict` (an experiment again, or
a new test set) reads fold models only through here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ensemble.artifacts.identity import with_legacy_values
from ensemble.artifacts.store import ExperimentDir, open_experiment
from ensemble.errors import EnsError
from ensemble.inference import scaling, tta
from ensemble.io import read_json, sha256_file
from ensemble.tasks import Task


def settings_of(experiment: ExperimentDir) -> dict:
    """settings.json with the values of keys older versions did not write filled in."""
    return with_legacy_values(read_json(experiment.settings_path))


def checkpoint_owner(models_dir: Path, experiment: ExperimentDir) -> ExperimentDir:
    """The experiment whose fold<k>/model.pt hold the weights: itself, or the source of a predicted one."""
    source = read_json(experiment.settings_path).get("source")
    return open_experiment(models_dir, source["experiment"]) if source else experiment


def check_fits(path: Path, checkpoint: dict, settings: dict, classes: tuple[str, ...]) -> None:
    """Refuse a checkpoint built for another model, size or classes than the experiment says."""
    expected = (settings["train"]["model"], settings["train"]["size"], tuple(classes))
    found = (checkpoint.get("model"), checkpoint.get("size"), tuple(checkpoint.get("classes", ())))
    if found != expected:
        raise EnsError(
            f"{path}: checkpoint is a {found[0]} at {found[1]}px for classes {list(found[2])[:5]}; "
            f"expected a {expected[0]} at {expected[1]}px for classes {list(expected[2])[:5]}"
        )


def net_from_checkpoint(checkpoint: dict, path: Path, device, memory_format):
    """The fold's network, rebuilt from what fold_job.rebuild_record stored, with its weights, in eval mode."""
    from ensemble.nets.networks import create_net

    net = create_net(checkpoint["model"], len(checkpoint["classes"]), checkpoint["size"], **checkpoint.get("net_options", {}))
    try:
        net.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise EnsError(f"{path}: weights do not fit a {checkpoint['model']}: {str(error).splitlines()[0]}") from None
    return net.to(device, memory_format=memory_format).eval()


def fold_checkpoints(owner: ExperimentDir, folds: list[int], settings: dict, classes) -> tuple[dict, int]:
    """Every fold's checkpoint, checked before anything is written; and the size they predict at."""
    from ensemble.nets.torch_files import load_checkpoint

    checkpoints = {}
    for fold in folds:
        path = owner.checkpoint_path(fold)
        check_unchanged(owner, fold)
        checkpoints[fold] = load_checkpoint(path)
        check_fits(path, checkpoints[fold], settings, classes)
    sizes = {checkpoint["size"] for checkpoint in checkpoints.values()}
    if len(sizes) > 1:
        raise EnsError(f"{owner.root}: fold checkpoints predict at different sizes {sorted(sizes)}")
    return checkpoints, sizes.pop()


def check_unchanged(owner: ExperimentDir, fold: int) -> None:
    """Refuse a model.pt whose bytes are not the ones its fold's result.json recorded: a
    damaged checkpoint can still load and would predict garbage. Folds trained before the
    hash was recorded are read unchecked."""
    path, result_path = owner.checkpoint_path(fold), owner.fold_result_path(fold)
    recorded = read_json(result_path).get("checkpoint_sha256") if result_path.is_file() else None
    if recorded and path.is_file() and sha256_file(path) != recorded:
        raise EnsError(
            f"{path}: damaged or replaced: its sha256 is not the one {result_path.name} records; "
            f"train the fold again: ens train-folds --name {owner.name} --folds {fold} --force"
        )


def fold_logits(checkpoint: dict, path: Path, device, train: dict, images: np.ndarray, rows, policy: tta.Policy, task: Task) -> tta.Prediction:
    """train: the source experiment's settings.json train table (its batch size). A
    regression's outputs are decoded with the fold's own stored scale, as training decoded them."""
    from ensemble.inference.batches import Batches
    from ensemble.nets.devices import memory_format

    layout = memory_format(device, checkpoint["state_dict"])  # the layout the fold was trained in
    net = net_from_checkpoint(checkpoint, path, device, layout)
    scale = scaling.from_record(checkpoint.get("target_scale"))
    prediction = tta.predict(net, Batches(net, device, train["batch_size"], layout), images, rows, policy, task=task, scale=scale)
    check_finite(prediction.views, path)
    return prediction


def check_finite(logits: np.ndarray, source) -> None:
    """Refuse a fold's logits holding NaN or infinity, naming the checkpoint they came from."""
    if not np.isfinite(logits).all():
        raise EnsError(f"{source}: the model's logits hold NaN or infinity")


def choose_policy(settings: dict, views: str | None, merge: str | None, task: Task) -> tta.Policy:
    """The policy asked for; what is not asked for defaults to the experiment's own."""
    return tta.parse_policy(views if views is not None else settings["train"]["tta"], merge or settings["train"]["tta_merge"], task)
