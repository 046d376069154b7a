"""Every random draw of a fold's training, from (seed, fold, epoch): what makes a fold
reproducible, and a resumed one end with the weights (bit for bit on the CPU) of one never
stopped. Each consumer draws from its own stream, so turning one on leaves the others' draws alone.
"""

from __future__ import annotations

import random

import numpy as np
import torch

# Stream numbers for seed_for(seed, fold, epoch, stream): each random consumer its own.
AUGMENT_STREAM, MIX_STREAM = 1, 2


def seed_for(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def batch_indices(n_rows: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A shuffled epoch in batches; a last batch of one row is dropped (BatchNorm cannot train on it)."""
    batches = list(torch.randperm(n_rows, generator=generator).split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


def seed_everything(seed: int) -> None:
    """Every global random source (torch: dropout, drop-path; numpy; Python) from one seed."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
