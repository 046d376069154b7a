"""TTA views folded into the batch (ens) against a per-view loop and against ttach, on the same checkpoints.

    .venv/bin/python benchmarks/bench_tta.py [--tta d4] [--n 360] [--batch-size 32] [--folds 5]
        [--model resnet10t] [--size 32] [--device cpu] [--repeats 5]
    .venv/bin/python benchmarks/bench_tta.py -w WORKSPACE --name EXP    # an experiment's own fold checkpoints
    .venv/bin/python benchmarks/bench_tta.py --images-per-pass 360      # one stacked pass over all images

Without -w, the fold models are `--folds` randomly initialised `--model` networks (the speed
of a forward pass does not depend on the weights). All three ways predict the same images
with the same models and views, batch_size images at a time:
- ens: tta.predict, each chunk's views stacked into one pass (rows per pass: tta.images_per_pass);
- loop: one pass per view per chunk (what ttach and most notebooks do);
- ttach: its ClassificationTTAWrapper, for the policies it has (hflip, rot90, d4).
Prints each one's best and median time over --repeats alternating rounds, the ratios
(above 1: ens is faster), and the largest difference of its logits from ens's.
ttach merges by the mean of logits; it is compared with the mean of ens's per-view logits.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ensemble.config import TrainSettings
from ensemble.inference import tta
from ensemble.inference.batches import Batches
from ensemble.nets.devices import memory_format


def fold_models(args, device) -> tuple[list, int, torch.memory_format]:
    """(networks in eval mode, image side, their memory layout)."""
    if args.workspace:
        from ensemble.artifacts import store
        from ensemble.config import Workspace
        from ensemble.inference import checkpoints
        from ensemble.nets import torch_files

        workspace = Workspace.load(args.workspace)
        experiment = store.open_experiment(workspace.models_dir, args.name)
        owner = checkpoints.checkpoint_owner(workspace.models_dir, experiment)
        saved = [torch_files.load_checkpoint(owner.checkpoint_path(fold)) for fold in owner.done_folds()]
        layout = memory_format(device, saved[0]["state_dict"])
        nets = [checkpoints.net_from_checkpoint(c, owner.checkpoint_path(0), device, layout) for c in saved]
        return nets, saved[0]["size"], layout
    from ensemble.nets.networks import create_net

    torch.manual_seed(0)
    # The memory layout training leaves a fold's network in.
    layout = memory_format(device)
    nets = [create_net(args.model, 10, args.size).to(device, memory_format=layout).eval() for _ in range(args.folds)]
    return nets, args.size, layout


def ens_views(nets, batches_of, images, policy) -> np.ndarray:
    """(n_folds, n_views, n, n_classes)"""
    return np.stack([tta.predict(net, batches_of[index], images, None, policy).views for index, net in enumerate(nets)])


def per_chunk(nets, batches_of, images, predict_chunk) -> np.ndarray:
    """predict_chunk(net, inputs) -> logits of one chunk, stacked over fold models; views on axis -3."""
    outputs = []
    pixels = torch.from_numpy(images)
    with torch.inference_mode():
        for net, batches in zip(nets, batches_of):
            outputs.append(torch.cat([predict_chunk(net, batches, batches.to_input(chunk)) for chunk in pixels.split(batches.batch_size)], dim=-2).numpy())
    return np.stack(outputs)


def loop_views(nets, batches_of, images, policy) -> np.ndarray:
    """(n_folds, n_views, n, n_classes): one pass per view per chunk."""

    def one_pass_per_view(net, batches, inputs):
        return torch.stack([net(view.apply(inputs).contiguous(memory_format=batches.memory_format)).float().cpu() for view in policy.views])

    return per_chunk(nets, batches_of, images, one_pass_per_view)


TTACH = {"hflip": "hflip_transform", "d4": "d4_transform"}


def ttach_transforms(spec: str):
    import ttach

    if spec in TTACH:
        return getattr(ttach.aliases, TTACH[spec])()
    if spec == "rot90":
        return ttach.Compose([ttach.Rotate90(angles=[0, 90, 180, 270])])
    return None


def ttach_mean(nets, batches_of, images, transforms) -> np.ndarray:
    """(n_folds, n, n_classes): ttach's mean of logits over views."""
    import ttach

    def wrapped(net, batches, inputs):
        return ttach.ClassificationTTAWrapper(net, transforms, merge_mode="mean")(inputs).float().cpu()

    return per_chunk(nets, batches_of, images, wrapped)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tta", default="d4")
    parser.add_argument("--n", type=int, default=360)
    parser.add_argument("--batch-size", type=int, default=TrainSettings().batch_size, help="images per chunk (default: ens's own training default)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--model", default="resnet10t")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("-w", "--workspace", type=Path)
    parser.add_argument("--name")
    parser.add_argument("--images-per-pass", type=int, help="override tta.images_per_pass, to see where stacking stops paying")
    args = parser.parse_args()
    if args.images_per_pass:
        tta.images_per_pass = lambda *_: args.images_per_pass
    device = torch.device(args.device)
    nets, size, layout = fold_models(args, device)
    policy = tta.parse_policy(args.tta)
    batches_of = [Batches(net, device, args.batch_size, layout) for net in nets]
    images = np.random.default_rng(0).integers(0, 256, size=(args.n, size, size, 3), dtype=np.uint8)
    transforms = ttach_transforms(policy.spec)

    ways = {"ens": lambda: ens_views(nets, batches_of, images, policy), "loop": lambda: loop_views(nets, batches_of, images, policy)}
    if transforms is not None:
        ways["ttach"] = lambda: ttach_mean(nets, batches_of, images, transforms)
    times = {name: [] for name in ways}
    results = {}
    for name, run in ways.items():  # warm-up: first passes allocate and pick kernels
        results[name] = run()
    for _ in range(args.repeats):
        for name, run in ways.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[name].append(time.perf_counter() - started)

    step = tta.images_per_pass(device.type, args.batch_size, policy.n_views, size)
    print(
        f"{len(nets)} fold models ({args.name or args.model}), {args.n} images at {size}px, TTA {policy.spec} "
        f"({policy.n_views} views), batch {args.batch_size}; ens passes {step} images x {policy.n_views} views = "
        f"{step * policy.n_views} rows; {args.device}, {torch.get_num_threads()} threads, {args.repeats} rounds"
    )
    for name in ways:
        print(f"{name:6s} best {min(times[name]):.3f}s  median {statistics.median(times[name]):.3f}s")
    for name in ways:
        if name != "ens":
            print(f"ratio {name}/ens: best {min(times[name]) / min(times['ens']):.2f}x  median {statistics.median(times[name]) / statistics.median(times['ens']):.2f}x")
    print(f"largest |logit| difference, loop vs ens (every view): {np.abs(results['loop'] - results['ens']).max():.2e}")
    if "ttach" in results:
        ens_mean = results["ens"].mean(axis=1)
        print(f"largest |logit| difference, ttach vs ens (mean of views): {np.abs(results['ttach'] - ens_mean).max():.2e}")


if __name__ == "__main__":
    main()
