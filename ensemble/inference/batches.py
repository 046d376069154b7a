"""Image batches on their way to the network: uint8 pixels from the image cache to normalised
float input on the device, in the layout the network was trained in (pinned memory and
non-blocking copies on CUDA). Training and prediction both go through here.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ensemble.inference import tta
from ensemble.inference.scaling import UNSCALED
from ensemble.nets.networks import normalization
from ensemble.tasks import SINGLE_LABEL, Task


class Batches:
    """Moves uint8 image batches to the device and turns them into normalised float input."""

    def __init__(self, net: nn.Module, device: torch.device, batch_size: int, memory_format: torch.memory_format = torch.channels_last):
        mean, std = normalization(net)
        self.device = device
        self.batch_size = batch_size
        self.scale = (1.0 / (255.0 * std)).to(device)
        self.shift = (mean / std).to(device)
        self.memory_format = memory_format
        self.pin = device.type == "cuda"

    def to_device(self, images: torch.Tensor) -> torch.Tensor:
        """images: uint8 (n, h, w, 3) on the CPU -> uint8 (n, 3, h, w) on the device."""
        if self.pin:
            images = images.pin_memory()
        return images.to(self.device, non_blocking=True).permute(0, 3, 1, 2)

    def normalise(self, images: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """uint8 (n, 3, h, w) on the device -> float input (n, 3, size, size).

        Images are decoded once at the largest stage size; smaller stages shrink each batch
        here, antialiased so that a 2x smaller image is an average, not a subsample.
        """
        inputs = images.float() * self.scale - self.shift
        if size is not None and size != inputs.shape[-1]:
            inputs = F.interpolate(inputs, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return inputs.contiguous(memory_format=self.memory_format)

    def to_input(self, images: torch.Tensor, size: int | None = None) -> torch.Tensor:
        """images: uint8 (n, h, w, 3) on the CPU -> float (n, 3, size, size) on the device."""
        return self.normalise(self.to_device(images), size)

    def predict(
        self,
        net: nn.Module,
        images: np.ndarray,
        rows: np.ndarray | None = None,
        size: int | None = None,
        policy: tta.Policy = tta.NO_TTA,
        task: Task = SINGLE_LABEL,
        scale=UNSCALED,
    ) -> np.ndarray:
        """Logits float32 (n, n_classes) for uint8 images (n_images, h, w, 3), or their `rows`,
        at `size`, decoded by `scale` and merged over the TTA policy's views as `task` merges
        them (see tta.predict): a regression's values in the target's units.

        In eval mode and float32 even on CUDA: bf16 keeps about 3 significant digits, which
        would tie OOF probabilities that rank metrics and blending need to tell apart.
        """
        return tta.predict(net, self, images, rows, policy, size, task, scale).logits
