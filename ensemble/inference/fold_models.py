"""Several experiments' fold models predicting one image list, a chunk of images at a time:
what `ens predict --blend` and an exported bundle run.

Each image is decoded once per chunk at each size a member predicts at (data/images.py, no
cache file: a bundle has no workspace), then every fold model of every member predicts the
chunk under its member's TTA policy (tta.predict). A chunk holds a whole number of each
member's forward passes, so the passes are the ones a single pass over every image makes and
the logits are the ones `ens train-folds` and `ens predict` cached, bit for bit on the CPU.
Networks run as `ens predict` runs them: in the layout their fold was trained in, float32 in
eval mode (batches.Batches.predict says why not autocast).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ensemble.data.images import read_images
from ensemble.errors import EnsError
from ensemble.inference import scaling, tta
from ensemble.inference.checkpoints import check_finite
from ensemble.tasks import Task

CHUNK_PIXELS = 4096 * 64 * 64  # decoded pixels per chunk at the largest size: 48 MB of uint8, whatever the size


@dataclass(frozen=True)
class FoldModel:
    """One fold's network ready to predict: net (eval mode, on the device), its Batches, the
    regression scale that decodes its outputs, and where its weights came from (for messages)."""

    net: object
    batches: object
    scale: object
    source: Path


@dataclass(frozen=True)
class MemberModels:
    """A blend member's fold models, in fold order. view: None, or the one TTA view the member
    is (`r18-d4:hflip`), taken from the policy's views before they merge."""

    name: str
    size: int
    policy: tta.Policy
    view: str | None
    folds: list[FoldModel]

    @property
    def view_index(self) -> int | None:
        if self.view is None:
            return None
        names = [view.name for view in self.policy.views]
        if self.view not in names:
            raise EnsError(f"member {self.name}: no view {self.view!r} in its TTA policy {self.policy.spec}; it has {', '.join(names)}")
        return names.index(self.view)


def fold_model(rebuild: dict, state_dict: dict, source: Path, device, batch_size: int, layout=None) -> FoldModel:
    """rebuild: model, classes, size, net_options, target_scale (what fold_job.rebuild_record
    stores beside the weights); layout: the memory format the fold was trained in (default:
    read off the state dict's strides, as nets/devices.memory_format does)."""
    from ensemble.inference.batches import Batches
    from ensemble.inference.checkpoints import net_from_checkpoint
    from ensemble.nets.devices import memory_format

    layout = layout if layout is not None else memory_format(device, state_dict)
    net = net_from_checkpoint({**rebuild, "state_dict": state_dict}, source, device, layout)
    return FoldModel(net, Batches(net, device, batch_size, layout), scaling.from_record(rebuild.get("target_scale")), source)


def chunk_images(members: Sequence[MemberModels]) -> int:
    """Images per chunk: a multiple of every fold model's images per pass, about CHUNK_PIXELS."""
    steps = []
    for member in members:
        for fold in member.folds:
            steps.append(tta.images_per_pass(fold.batches.device.type, fold.batches.batch_size, member.policy.n_views, member.size))
    step = math.lcm(*steps)
    largest = max(member.size for member in members)
    return step * max(1, CHUNK_PIXELS // (largest * largest * step))


@dataclass(frozen=True)
class ChunkPredicted:
    """Progress: `done` of `total` images predicted by every fold model, `seconds` since the start."""

    done: int
    total: int
    seconds: float


def predict_members(
    members: Sequence[MemberModels], paths: Sequence[Path], ids: Sequence[str], task: Task, progress: Callable | None = None, amp: bool = False
) -> list[list[np.ndarray]]:
    """For each member, for each of its folds: logits float32 (n_images, n_columns), a
    regression's decoded values, TTA views merged (or the member's one view).

    amp: forward passes under CUDA autocast (bf16 where the card has it, else fp16), faster and
    no longer the float32 numbers the blend was fitted on; nothing changes on the CPU."""
    from ensemble.nets.devices import autocast
    n_images = len(paths)
    sizes = sorted({member.size for member in members})
    chunk = chunk_images(members)
    outputs: list[list[np.ndarray | None]] = [[None] * len(member.folds) for member in members]
    started = time.perf_counter()
    for start in range(0, n_images, chunk):
        stop = min(start + chunk, n_images)
        decoded = {size: read_images(paths[start:stop], ids[start:stop], size) for size in sizes}
        for slot, member in enumerate(members):
            view = member.view_index
            for fold, model in enumerate(member.folds):
                with autocast(model.batches.device) if amp else contextlib.nullcontext():
                    prediction = tta.predict(model.net, model.batches, decoded[member.size], None, member.policy, task=task, scale=model.scale)
                logits = prediction.logits if view is None else prediction.views[view]
                check_finite(logits, model.source)
                if outputs[slot][fold] is None:
                    outputs[slot][fold] = np.empty((n_images, logits.shape[1]), dtype=np.float32)
                outputs[slot][fold][start:stop] = logits
        if progress:
            progress(ChunkPredicted(stop, n_images, time.perf_counter() - started))
    return outputs
