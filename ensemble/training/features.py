"""Frozen features (--frozen-features): a pretrained backbone's pooled features computed once per
image, then a linear head trained per fold on them.

A linear probe trained the ordinary way (--train-blocks 0) runs the frozen backbone over every
image in every epoch of every fold, though its features never change. Here they are computed
once for the experiment (features.npz in its folder, reused when a stopped run resumes), so
ImageNet features at a size where they work (224 px) cost one pass over the images: measured
on the emoji competition of benchmarks/emoji_competition.py (benchmarks/RESULTS.md).

The head trains as a network would (the task's loss and target scaling, label smoothing,
class weights, the optimiser and schedule, epochs and batches, seeded per fold and epoch) on
the features standardised by the fold's training rows. The fold's checkpoint is the whole
network, the pretrained backbone with the head (standardisation folded in) as its classifier,
so `ens predict`, TTA, export and embeddings read it like any other fold's; in eval mode its
logits are the head's on the cached features.

With --top-blocks N (N > 0), what is computed once is the frozen stages' output maps
(nets/split.py), and each fold trains the top N stages and the classifier on them (head.py).

What a frozen backbone cannot have is refused in one line (`check`): train-time augmentation
or mixing (the features are of the plain images), stages, attention blocks (they would train),
EMA, TTA at training time (add it afterwards with `ens predict --tta`), a teacher's lessons, a Dask cluster (the features are computed here).
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ensemble.config import TrainSettings
from ensemble.errors import EnsError


def check(settings: TrainSettings) -> None:
    """Refuse settings a frozen-features run cannot honour, and top stages without one."""
    if not settings.frozen_features:
        if settings.top_blocks > 0:
            raise EnsError(
                f"train top_blocks {settings.top_blocks} trains the top stages on frozen features' maps: it needs frozen_features "
                "(to fine-tune the last stages on the images, use train_blocks)"
            )
        return
    refused = {
        "pretrained": (not settings.pretrained, "needs pretrained weights (--pretrained FILE or timm): random features teach nothing"),
        "augment": (settings.augment not in ("none", ""), "computes the features of the plain images once; train-time augment cannot apply"),
        "mixup": (settings.mixup > 0, "trains on the plain images' features; mixup cannot apply"),
        "cutmix": (settings.cutmix > 0, "trains on the plain images' features; cutmix cannot apply"),
        "sizes": (bool(settings.sizes), "computes the features at one size (--size), not in stages"),
        "attention": (settings.attention != "none", "trains only the classifier; an attention block would stay random"),
        "ema": (settings.ema > 0, "trains a linear head; EMA of its weights is not supported"),
        "tta": (settings.tta not in ("none", ""), "caches the identity view's features; add TTA afterwards with `ens predict --tta`"),
        "unfreeze_after": (settings.top_blocks > 0 and settings.unfreeze_after not in ("auto", 0), "trains its top stages from the first epoch; a head-only warm-up is not supported"),
    }
    for name, (bad, why) in refused.items():
        if bad:
            raise EnsError(f"train frozen_features {why} (train {name} is {getattr(settings, name)!r})")


@dataclass(frozen=True)
class Features:
    """train: float32 (n_train, n_features); test: float32 (n_test, n_features); with
    --top-blocks N, the frozen stages' maps: (n, channels, height, width)."""

    train: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class FeaturesReady:
    """Progress event: the experiment's features, computed now or read back."""

    n_images: int
    shape: tuple[int, ...]  # each image's: (n_features,), or the frozen stages' (channels, height, width)
    size: int
    seconds: float
    computed: bool


def check_run(settings: TrainSettings, cluster: str | None, teaching: bool) -> None:
    """Refuse, before a run writes anything, what a frozen-features run cannot do: compute its
    features where a cluster's workers run, or learn a teacher's lessons."""
    if not settings.frozen_features:
        return
    if cluster:
        raise EnsError("train frozen_features computes its features in this process, not on the cluster's workers; train it without --cluster (its folds take seconds)")
    if teaching:
        raise EnsError("train frozen_features: a student learns from its teacher through the ordinary trainer; train it without --frozen-features")


def experiment_features(
    experiment, settings: TrainSettings, n_classes: int, train_images, test_images, progress: Callable | None = None, force: bool = False, copies: int = 1
) -> Features:
    """The experiment's features (an ExperimentDir's features_path), read back when an earlier run
    made them (the experiment's identity pins the weights, size and images), else computed and
    saved with the seconds they took (scores.json counts them in the experiment's time); with
    `force`, computed again. One process computes them at a time (a lock); others wait and read.
    copies: how many processes will hold them (this one and each --jobs worker)."""
    from ensemble.artifacts import locks
    from ensemble.io import write_npz

    path = experiment.features_path
    busy = f"{experiment.root}: its frozen features are being computed by another process"
    with locks.hold(experiment.lock_path("features"), busy, wait=FEATURES_WAIT):
        started = time.perf_counter()
        features = None if force else read_features(path, len(train_images), len(test_images))
        if features is not None and (features.train.ndim == 4) != trains_stages(settings):
            raise EnsError(
                f"{path}: holds {'maps' if features.train.ndim == 4 else 'pooled features'}, but top_blocks {settings.top_blocks} trains "
                f"{'the top stages on maps' if trains_stages(settings) else 'a linear head on pooled features'}; train it again with --force"
            )
        computed = features is None
        if computed:
            features = compute(settings, n_classes, train_images, test_images, copies)
        seconds = time.perf_counter() - started  # computing them (or reading them back): what is printed and recorded
        if computed:
            write_npz(path, train=features.train, test=features.test, seconds=np.float64(seconds))
    if progress:
        progress(FeaturesReady(len(train_images) + len(test_images), tuple(features.train.shape[1:]), settings.size, seconds, computed))
    return features


# Seconds a run waits for another process computing the same experiment's features.
FEATURES_WAIT = 3600.0


def read_features(path: Path, n_train: int, n_test: int) -> Features | None:
    """The saved features, or None when there are none for these images (or the file is damaged:
    they are computed again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as saved:
            if saved["train"].shape[0] != n_train or saved["test"].shape[0] != n_test:
                return None
            return Features(saved["train"], saved["test"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def pretrained_net(settings: TrainSettings, n_classes: int):
    """The network the folds save: the model with the pretrained weights, its classifier to be replaced."""
    import torch

    from ensemble.nets.networks import create_net, load_weights
    from ensemble.training.draws import seed_for

    torch.manual_seed(seed_for(settings.seed, 0))
    net = create_net(settings.model, n_classes, settings.size)
    load_weights(net, settings.model, settings.size, settings.pretrained)
    return net.eval()


def trains_stages(settings: TrainSettings) -> bool:
    """Whether the folds train the top --top-blocks stages on cached maps (else, top_blocks 0, a
    linear head on pooled features)."""
    return settings.frozen_features and settings.top_blocks > 0


def compute(settings: TrainSettings, n_classes: int, train_images, test_images, copies: int = 1) -> Features:
    from ensemble.inference.batches import Batches
    from ensemble.inference.embeddings import embed
    from ensemble.nets import devices

    device = devices.resolve_device(settings.device)
    layout = devices.memory_format(device, None)
    net = pretrained_net(settings, n_classes).to(device, memory_format=layout)
    # The training batch size, as the probe measures it: on 2 CPU cores, efficientnet-lite0 at
    # 224 px embedded 69 images a second in batches of 32 and 58 in batches of 256.
    batches = Batches(net, device, settings.batch_size, layout)
    with devices.out_of_memory_as_error(settings.batch_size, "the frozen features"):
        if not trains_stages(settings):
            return Features(embed(net, batches, train_images), embed(net, batches, test_images))
        inputs = batches.to_input(torch_pixels(train_images[:2]), None)
        split, shape = checked_split(net, settings, inputs, len(train_images) + len(test_images), copies)
        return Features(frozen_maps(split, batches, train_images, shape), frozen_maps(split, batches, test_images, shape))


def torch_pixels(images):
    import torch

    return torch.from_numpy(np.asarray(images))


def checked_split(net, settings: TrainSettings, inputs, n_images: int, copies: int = 1):
    """(the net split below its top --top-blocks stages, one image's maps' shape (channels, height,
    width)), refused in one line when the split is not the whole network on `inputs` (a few of the
    competition's images) or the maps of `n_images` would not fit the memory."""
    import torch

    from ensemble.nets.split import Split

    net.eval()
    split = Split(net, settings.top_blocks, settings.model)
    split.check(inputs, settings.model)
    with torch.inference_mode():
        shape = tuple(split.lower(inputs[:1]).shape[1:])
    check_maps_memory(n_images, shape, settings, copies)
    return split, shape


# The share of the memory available that an experiment's maps may take, in every copy: they are held
# once in the run and once more while features.npz is written.
MAPS_MEMORY_SHARE = 0.25


def check_maps_memory(n_images: int, shape: tuple[int, ...], settings: TrainSettings, copies: int = 1) -> None:
    """Refuse, in one line, maps that would not fit comfortably in this machine's memory, held by
    `copies` processes (each --jobs worker receives its own)."""
    needed = n_images * int(np.prod(shape)) * 4 * copies
    available = available_memory()
    if available and needed > MAPS_MEMORY_SHARE * available:
        raise EnsError(
            f"train top_blocks {settings.top_blocks}: the frozen stages' maps ({'x'.join(map(str, shape))} an image at {settings.size}px) of {n_images} images "
            f"take {needed / 2**30:.1f} GiB{f' in {copies} processes (--jobs)' if copies > 1 else ''}, more than {MAPS_MEMORY_SHARE:.0%} of the {available / 2**30:.1f} GiB available; train fewer top stages, at a smaller --size, or a linear head (--top-blocks 0)"
        )


def available_memory() -> int:
    """Bytes of memory available now, page cache that can be reclaimed included (Linux's
    MemAvailable), or 0 where the system does not say (the check is then skipped)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def frozen_maps(split, batches, images, shape: tuple[int, ...]) -> np.ndarray:
    """float32 (n_images, channels, height, width): the frozen stages' output for each image,
    written into one array (no second copy)."""
    import torch

    maps = np.empty((len(images), *shape), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(images), batches.batch_size):
            inputs = batches.to_input(torch_pixels(images[start : start + batches.batch_size]), None)
            maps[start : start + len(inputs)] = split.lower(inputs).float().cpu().numpy()
    return maps
