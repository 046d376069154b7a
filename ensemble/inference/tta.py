"""Test-time augmentation: views of each image, evaluated in stacked forward passes, then merged.

A policy is a comma list of view families (`hflip,scale:1.1`); the identity view is always
included. Views act on the normalised float batch (n, 3, h, w) on the device, so they cost
no decoding. Views are folded into the batch dimension: a chunk of m images becomes one
pass of m x n_views rows, not n_views passes of m rows (ttach's loop, qubvel/ttach#11).
How many rows a pass holds is chosen per device (`images_per_pass`): stacking helps until a
pass outgrows the CPU's caches, which is what made one stacked pass over a whole test set
slower than the loop on a CPU.

Merges work on log-probabilities, so no merge takes the log of a negative logit (the NaN of
ttach's gmean, qubvel/ttach#4). A merged policy's cached logits are the log of the merged,
renormalised probabilities: softmax of them gives the merged probabilities back. With the
identity view alone nothing is merged and the network's logits are kept unchanged, so an
experiment without TTA is bit for bit what it was before TTA existed.

This module imports torch only inside functions: the CLI lists the registries' names at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ensemble.errors import EnsError
from ensemble.inference.scaling import UNSCALED
from ensemble.registry import Registry
from ensemble.tasks import SINGLE_LABEL, Task


@dataclass(frozen=True)
class View:
    """One view of a batch. apply: float (n, 3, h, w) -> float (n, 3, h, w).

    undo: the exact inverse for flips and rotations; None for views that lose pixels (scale, shift).
    """

    name: str
    apply: Callable
    undo: Callable | None = None


@dataclass(frozen=True)
class Family:
    """A registered group of views. make() -> views, or make(number) when `parameter_help`
    describes the number after ':' (help text; empty for a family without one)."""

    make: Callable[..., list[View]]
    parameter_help: str = ""


VIEWS: Registry[Family] = Registry("TTA view")


def family(name: str, parameter_help: str = "") -> Callable:
    def add(make: Callable[..., list[View]]) -> Callable[..., list[View]]:
        VIEWS.register(name)(Family(make, parameter_help))
        return make

    return add


def _rot(turns: int) -> Callable:
    return lambda x: x.rot90(turns, (-2, -1))


IDENTITY = View("identity", lambda x: x, lambda x: x)
HFLIP = View("hflip", lambda x: x.flip(-1), lambda x: x.flip(-1))
VFLIP = View("vflip", lambda x: x.flip(-2), lambda x: x.flip(-2))
ROTATIONS = [View(f"rot{90 * turns}", _rot(turns), _rot(-turns)) for turns in (1, 2, 3)]
# The two diagonal mirrors complete the eight symmetries of a square (the dihedral group D4).
TRANSPOSE = View("transpose", lambda x: x.transpose(-2, -1), lambda x: x.transpose(-2, -1))
ANTITRANSPOSE = View(
    "antitranspose", lambda x: x.rot90(2, (-2, -1)).transpose(-2, -1), lambda x: x.transpose(-2, -1).rot90(2, (-2, -1))
)


@family("none")
def no_views() -> list[View]:
    return []


@family("hflip")
def hflip() -> list[View]:
    return [HFLIP]


@family("vflip")
def vflip() -> list[View]:
    return [VFLIP]


@family("rot90")
def rotations() -> list[View]:
    return list(ROTATIONS)


@family("d4")
def d4() -> list[View]:
    return [*ROTATIONS, HFLIP, VFLIP, TRANSPOSE, ANTITRANSPOSE]


@family("scale", parameter_help="F: resize by F (0.5..2, not 1), then centre crop or pad back with the mean colour")
def scale(factor: float) -> list[View]:
    if not (0.5 <= factor <= 2.0 and factor != 1.0):
        raise EnsError(f"TTA view scale:{factor:g}: F must be between 0.5 and 2 and not 1")

    def apply(x):
        import torch.nn.functional as F

        side = x.shape[-1]
        new_side = max(1, round(side * factor))
        resized = F.interpolate(x, size=(new_side, new_side), mode="bilinear", align_corners=False)
        if new_side >= side:
            start = (new_side - side) // 2
            return resized[..., start : start + side, start : start + side]
        before = (side - new_side) // 2
        after = side - new_side - before
        return F.pad(resized, (before, after, before, after))  # 0: the mean colour (networks.normalization)

    return [View(f"scale:{factor:g}", apply)]


@family("shift", parameter_help="F: translate by F of the image side (0..0.5) right, left, down and up; the mean colour fills in")
def shift(fraction: float) -> list[View]:
    # Same unit as the train-time shift of the recipe: a fraction of the image side.
    if not 0.0 < fraction < 0.5:
        raise EnsError(f"TTA view shift:{fraction:g}: F must be between 0 and 0.5")

    def shifted(direction: str, pad: Callable) -> View:
        def apply(x):
            import torch.nn.functional as F

            side = x.shape[-1]
            pixels = max(1, round(side * fraction))
            return pad(F.pad, x, pixels, side)

        return View(f"shift:{fraction:g}:{direction}", apply)

    return [
        shifted("right", lambda pad, x, d, s: pad(x, (d, 0, 0, 0))[..., :, :s]),
        shifted("left", lambda pad, x, d, s: pad(x, (0, d, 0, 0))[..., :, d:]),
        shifted("down", lambda pad, x, d, s: pad(x, (0, 0, d, 0))[..., :s, :]),
        shifted("up", lambda pad, x, d, s: pad(x, (0, 0, 0, d))[..., d:, :]),
    ]


# merge(log_probs: float64 (n_views, n, n_classes)) -> unnormalised log-probabilities (n, n_classes)
@dataclass(frozen=True)
class Policy:
    """Views to evaluate (identity first) and how to merge them. spec: the canonical policy text."""

    spec: str
    merge: str
    views: tuple[View, ...]

    @property
    def n_views(self) -> int:
        return len(self.views)

    def merged(self, view_logits: np.ndarray, task: Task = SINGLE_LABEL) -> np.ndarray:
        """view_logits: float32 (n_views, n, n_classes) -> float32 (n, n_classes).

        One view: its logits unchanged. Several: merged as the task kind says (tasks.py):
        single-label, log of the merged, renormalised probabilities; multi-label, each tag's
        logit of its merged probability; regression, the merged value.
        """
        if self.n_views == 1:
            return view_logits[0]
        return task.merge_views(view_logits, self.merge)


def parse_policy(spec: str, merge: str = "mean", task: Task = SINGLE_LABEL) -> Policy:
    """'hflip, scale:1.1' -> a Policy; unknown names and bad values are one EnsError.

    Views are deduplicated by name ('hflip,d4' evaluates eight views, not nine). With the
    identity alone there is nothing to merge and the merge is recorded as 'mean'.
    """
    task.merges.get(merge)  # each task kind its own merges (tasks.py)
    views: dict[str, View] = {IDENTITY.name: IDENTITY}
    parts = []
    for part in (text.strip() for text in spec.split(",")):
        if not part:
            continue
        name, has_value, value_text = part.partition(":")
        member = VIEWS.get(name.strip())
        if bool(member.parameter_help) != bool(has_value):
            expected = f"{name}:F ({member.parameter_help})" if member.parameter_help else f"{name} without ':'"
            raise EnsError(f"TTA view {part!r}: expected {expected}")
        if member.parameter_help:
            try:
                value = float(value_text)
            except ValueError:
                raise EnsError(f"TTA view {part!r}: {value_text!r} is not a number") from None
            new_views, canonical = member.make(value), f"{name.strip()}:{value:g}"
        else:
            new_views, canonical = member.make(), name.strip()
        if new_views and canonical not in parts:
            parts.append(canonical)
        for view in new_views:
            views.setdefault(view.name, view)
    return Policy(spec=",".join(parts) or "none", merge=merge if len(views) > 1 else "mean", views=tuple(views.values()))


NO_TTA = parse_policy("none")

# Rows per pass past which a CPU forward pass stops getting faster per row, counted in
# pixels so that it holds for any image size: on 2 cores, resnet10t at 32 px ran 3,100 rows/s
# in passes of 32 rows and 3,750 in passes of 64, and no faster in stacked passes of 128 to 512
# rows (benchmarks/bench_tta.py --images-per-pass N). So views are stacked only until a pass
# holds this many pixels, and never into a pass smaller than the loop's own.
CPU_PIXELS_PER_PASS = 64 * 32 * 32


def images_per_pass(device_type: str, batch_size: int, n_views: int, side: int) -> int:
    """Images per stacked forward pass.

    One view: batch_size, as in training (the same chunks give the same logits bit for bit).
    On a GPU: batch_size images, so each pass has n_views x the rows of the loop's: a GPU
    is never slower on fewer, larger passes. On the CPU: as many images as fill a pass of
    CPU_PIXELS_PER_PASS, or of batch_size rows when that is more (the loop's own pass), at
    least one image and at most batch_size.
    """
    if n_views == 1 or device_type != "cpu":
        return batch_size
    rows = max(CPU_PIXELS_PER_PASS // (side * side), batch_size)
    return max(1, min(batch_size, rows // n_views))


@dataclass(frozen=True)
class Prediction:
    """logits: float32 (n, n_classes), merged; views: float32 (n_views, n, n_classes)."""

    logits: np.ndarray
    views: np.ndarray


def predict(
    net, batches, images: np.ndarray, rows: np.ndarray | None, policy: Policy, size: int | None = None, task: Task = SINGLE_LABEL, scale=UNSCALED
) -> Prediction:
    """Every view of uint8 images (n_images, h, w, 3), or of their `rows`, at `size` (default:
    the images' own), in stacked passes; each view decoded by `scale` (a regression's values,
    scaling.py), then the views merged as `task` merges them.

    batches: a batches.Batches (to_input, batch_size, device, memory_format). Eval mode and
    float32 even on CUDA (see batches.Batches.predict).
    """
    net.eval()
    views = scale.decode(view_outputs(net, batches, images, rows, policy, size))  # per view, before merging: a median of values, not of their codes
    return Prediction(policy.merged(views, task), views)


def view_outputs(forward: Callable, batches, images: np.ndarray, rows: np.ndarray | None, policy: Policy, size: int | None = None) -> np.ndarray:
    """float32 (n_views, n, n_outputs): `forward` (a network in eval mode, or its pooled features)
    on every view of the images or their `rows`, in stacked passes."""
    import torch

    rows = np.arange(len(images)) if rows is None else np.asarray(rows)
    n_views = policy.n_views
    step = images_per_pass(batches.device.type, batches.batch_size, n_views, images.shape[1])
    # One array for every pass's outputs, made at the first pass: a small tensor kept per pass
    # would pin the heap above each pass's large temporaries, and glibc could then not give
    # their memory back (measured: peak RSS 2.2 GB instead of 1.1 over 40,000 test images).
    views = None
    with torch.inference_mode():
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]  # images may be a memory-mapped cache: read a chunk at a time
            inputs = batches.to_input(torch.from_numpy(images[chunk]), size)
            if n_views > 1:
                inputs = torch.cat([view.apply(inputs) for view in policy.views])
                inputs = inputs.contiguous(memory_format=batches.memory_format)
            outputs = forward(inputs).float().cpu().view(n_views, len(chunk), -1)
            if views is None:
                views = np.empty((n_views, len(rows), outputs.shape[-1]), dtype=np.float32)
            views[:, start : start + len(chunk)] = outputs.numpy()
    if views is None:  # no rows: the outputs' width from one pass over nothing is not known
        raise ValueError("tta.predict: no rows to predict")
    return views
