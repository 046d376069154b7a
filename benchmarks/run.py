"""ens's speed as ratios against what one would write by hand, measured side by side in one run.

    python benchmarks/run.py [--quick] [--threads N] [--parts 1,2,3,4,5] [--baseline-src /path/to/older/ens]

1. training throughput: `ens train-folds` (decodes each image once, into the cache) against a
   hand-written timm loop whose torch DataLoader decodes the JPEG files every epoch; same
   model, size, batch, epochs, optimizer, schedule, and the same per-epoch validation and
   final test prediction. Target: ens >= 1.3x.
2. ens (cache already built) against the same loop on random tensors already in memory, the
   ceiling on this machine. Target: ens >= 0.9x.
3. time to the first step of a second `train-folds` on the same images: with the cache
   against without it (the cache cleared first).
4. benchmarks/bench_tta.py and bench_blend.py, when they exist, run from here.
5. peak RSS of `ens train-folds` reading a cache several times larger than that RSS
   (and, with --baseline-src, of the same command with an older ens that decodes into memory).

The images are JPEGs of 512 px (quick: 256 px; --source-px), smooth colour fields whose hue depends on
the class, resized to 64 px. Prints a table and appends it, with the machine and date, to
benchmarks/RESULTS.md. Timings on a busy machine move by tens of percent: see --repeats.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ensemble.config import CompetitionSettings, FoldSettings, TrainSettings, Workspace, to_toml  # noqa: E402

LABELS = ("a", "b", "c", "d")


def make_competition(root: Path, n_train: int, n_test: int, source_px: int, suffix: str, train: dict, seed: int = 0) -> Path:
    """JPEG (or PNG) files of source_px, as a competition ships them, and an ens.toml."""
    rng = np.random.default_rng(seed)
    settings = CompetitionSettings(image_suffix=suffix)
    for folder, ids in (("train", [f"tr{i:05d}" for i in range(n_train)]), ("test", [f"te{i:05d}" for i in range(n_test)])):
        (root / "data" / folder).mkdir(parents=True, exist_ok=True)
        for index, image_id in enumerate(ids):
            label = index % len(LABELS)
            coarse = rng.integers(0, 120, (6, 6, 3)).astype(np.uint8)
            coarse[..., label % 3] += 100  # the class shows in one channel
            image = Image.fromarray(coarse).resize((source_px, source_px), Image.Resampling.BICUBIC)
            image.save(root / "data" / folder / f"{image_id}{suffix}", quality=90)
        if folder == "train":
            rows = ["id,label"] + [f"{i},{LABELS[n % len(LABELS)]}" for n, i in enumerate(ids)]
            (root / "data" / "train.csv").write_text("\n".join(rows) + "\n")
        else:
            (root / "data" / "test.csv").write_text("\n".join(["id"] + ids) + "\n")
            (root / "data" / "sample_submission.csv").write_text("\n".join(["id,label"] + [f"{i},a" for i in ids]) + "\n")
    (root / "ens.toml").write_text(to_toml({"competition": settings, "folds": {"k": 4}, "train": train}))
    return root


def ens_fold(workspace: Workspace, name: str) -> dict:
    """Train fold 0 in this process; wall seconds, and seconds until the fold started training."""
    from ensemble.training.experiment import train_experiment
    from ensemble.training.fold_job import FoldStart

    marks = {}
    started = time.perf_counter()

    def progress(event):
        if isinstance(event, FoldStart):
            marks["first_step"] = time.perf_counter() - started

    train_experiment(workspace, name, workspace.train, [0], progress=progress)
    return {"seconds": time.perf_counter() - started, **marks}


def hand_fold(workspace: Workspace, settings: TrainSettings, workers: int, in_memory: bool) -> float:
    """The loop one writes by hand: timm model, torch DataLoader over the files (or random
    tensors already in memory), AdamW + one-cycle, validation each epoch, test at the end."""
    import timm
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, Dataset, TensorDataset

    from ensemble.data.competition import load_competition
    from ensemble.data.folds import read_folds

    started = time.perf_counter()
    competition = load_competition(workspace)
    fold_of = read_folds(workspace, competition).fold_of
    torch.manual_seed(settings.seed)
    net = timm.create_model(settings.model, pretrained=False, num_classes=len(competition.classes))
    mean, std = net.pretrained_cfg["mean"], net.pretrained_cfg["std"]

    class Files(Dataset):
        def __init__(self, paths, targets):
            self.paths, self.targets = paths, targets

        def __len__(self):
            return len(self.paths)

        def __getitem__(self, index):
            image = Image.open(self.paths[index]).convert("RGB").resize((settings.size, settings.size), Image.Resampling.BILINEAR)
            pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
            return (pixels - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1), self.targets[index]

    train_paths, test_paths = competition.train_image_paths(), competition.test_image_paths()
    targets = torch.from_numpy(competition.targets)

    def loader(rows, paths, shuffle):
        if in_memory:
            tensors = torch.randn(len(rows), 3, settings.size, settings.size)
            return DataLoader(TensorDataset(tensors, targets[rows] if paths is train_paths else torch.zeros(len(rows), dtype=torch.long)), batch_size=settings.batch_size, shuffle=shuffle)
        files = Files([paths[row] for row in rows], targets[rows] if paths is train_paths else torch.zeros(len(rows), dtype=torch.long))
        return DataLoader(files, batch_size=settings.batch_size, shuffle=shuffle, num_workers=workers, persistent_workers=workers > 0)

    train_rows, valid_rows = np.flatnonzero(fold_of != 0), np.flatnonzero(fold_of == 0)
    train_loader, valid_loader = loader(train_rows, train_paths, True), loader(valid_rows, train_paths, False)
    test_loader = loader(np.arange(len(test_paths)), test_paths, False)
    net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.lr, total_steps=settings.epochs * len(train_loader), pct_start=0.2)

    def predict(data):
        net.eval()
        with torch.inference_mode():
            return torch.cat([net(x.contiguous(memory_format=torch.channels_last)) for x, _ in data])

    for _ in range(settings.epochs):
        net.train()
        for x, y in train_loader:
            loss = F.cross_entropy(net(x.contiguous(memory_format=torch.channels_last)), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        predict(valid_loader)
    predict(test_loader)
    return time.perf_counter() - started


def peak_rss(command: list[str], env: dict) -> tuple[float, int]:
    """(peak resident MB, exit code) of a child process, from the kernel's accounting."""
    # cwd elsewhere: `python -m` puts the working folder first on sys.path, before PYTHONPATH.
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tempfile.gettempdir())
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        print(process.stderr.read().decode()[-2000:], file=sys.stderr)
    return usage.ru_maxrss / 1024, process.returncode


def memory_rows(args, folder: Path) -> list[tuple[str, str, str]]:
    """Peak RSS of train-folds on a cache several times larger than that RSS."""
    train = {"model": args.rss_model, "size": args.rss_size, "epochs": 1, "batch_size": 32}
    root = make_competition(folder / "big", args.rss_train, args.rss_test, 8, ".png", train)
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "OMP_NUM_THREADS": str(args.threads)}
    subprocess.run([sys.executable, "-m", "ensemble", "folds", "-w", str(root)], env=env, check=True, capture_output=True)
    command = [sys.executable, "-m", "ensemble", "train-folds", "-n", "m", "--folds", "0", "-w", str(root)]
    rss, code = peak_rss(command, env)
    cache_mb = sum(path.stat().st_size for path in (root / "cache").glob("*.npy")) / 1e6
    rows = [("5. peak RSS of train-folds, cache read a batch at a time", f"{rss:.0f} MB", f"cache {cache_mb:.0f} MB = {cache_mb / rss:.1f}x the RSS" + ("" if code == 0 else f" (exit {code})"))]
    if args.baseline_src:
        env = {**env, "PYTHONPATH": str(Path(args.baseline_src).resolve())}
        shutil.rmtree(root / "models", ignore_errors=True)
        base_rss, code = peak_rss(command, env)
        rows.append(("   the same with the ens at --baseline-src (images in memory)", f"{base_rss:.0f} MB", f"{base_rss / rss:.2f}x ens's" + ("" if code == 0 else f" (exit {code})")))
    return rows


def other_benchmarks(quick: bool) -> list[tuple[str, str, str]]:
    rows = []
    for name in ("bench_tta.py", "bench_blend.py"):
        script = HERE / name
        if not script.is_file():
            rows.append((f"4. {name}", "-", "not present"))
            continue
        flags = ["--quick"] if quick and "--quick" in subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True).stdout else []
        if name == "bench_blend.py":
            flags.append("--memory-rows=0")  # speed only: its peak-memory run takes 20 minutes; run it alone
        result = subprocess.run([sys.executable, str(script), *flags], capture_output=True, text=True, timeout=900)
        lines = [line for line in (result.stdout + result.stderr).strip().splitlines() if line.strip()]
        rows.append((f"4. {name} {' '.join(flags)}".strip(), "exit " + str(result.returncode), lines[-1] if lines else ""))
        rows += [("", "", line) for line in lines[:-1][-12:]]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller images: a few minutes on 2 busy cores")
    parser.add_argument("--model", default="resnet10t")
    parser.add_argument("--threads", type=int, help="torch threads, the same on every side (default: torch's own, one per core)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes of the hand-written loop")
    parser.add_argument("--source-px", type=int, help="side of the JPEG files of parts 1-3 (default 512; quick 256)")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs per side")
    parser.add_argument("--rss-model", default="test_vit")
    parser.add_argument("--rss-size", type=int, default=224)
    parser.add_argument("--rss-train", type=int, default=400)
    parser.add_argument("--rss-test", type=int, default=8000, help="test images of the RSS run: they make the cache large")
    parser.add_argument("--baseline-src", help="source folder of another ens (e.g. a main checkout) for the RSS comparison")
    parser.add_argument("--parts", default="1,2,3,4,5", help="which of the numbered parts to run (1-3 run together)")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    # Full: ens's default number of epochs, over which the hand loop decodes every file again.
    n_train, n_test, source_px, epochs = (240, 60, 256, 2) if args.quick else (800, 200, 512, TrainSettings().epochs)
    source_px = args.source_px or source_px
    if args.quick:
        args.rss_test, args.rss_size = min(args.rss_test, 2000), min(args.rss_size, 160)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()
    train = {"model": args.model, "size": 64, "epochs": epochs, "batch_size": 32, "device": "cpu"}
    settings = TrainSettings(**train)
    parts = {part.strip() for part in args.parts.split(",")}
    rows, setup = [], []
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        if parts & {"1", "2", "3"}:
            rows += training_rows(args, folder, settings, n_train, n_test, source_px, epochs, train)
            setup.append(
                f"{args.model} at 64 px from {n_train} train / {n_test} test JPEGs of {source_px} px, fold 0 of 4 "
                f"({epochs * int(n_train * 3 / 4)} training images over {epochs} epochs), batch 32, torch threads {args.threads}"
                + (f", DataLoader workers {args.workers}" if args.workers else "")
            )
        if "4" in parts:
            rows += other_benchmarks(args.quick)
        if "5" in parts:
            rows += memory_rows(args, folder)
            setup.append(f"peak RSS: {args.rss_model} at {args.rss_size} px, {args.rss_train} train / {args.rss_test} test PNGs of 8 px, fold 0 of 4, 1 epoch")
    report("; ".join(setup) + (", --quick" if args.quick else ""), rows, args)


def training_rows(args, folder: Path, settings: TrainSettings, n_train: int, n_test: int, source_px: int, epochs: int, train: dict) -> list:
    """Parts 1-3: ens against the hand loop, against the ceiling, and the cache's time to the first step."""
    root = make_competition(folder / "comp", n_train, n_test, source_px, ".jpg", train)
    workspace = Workspace.load(root)
    from ensemble.data.cache import clear_cache
    from ensemble.data.competition import load_competition
    from ensemble.data.folds import write_folds

    write_folds(workspace, load_competition(workspace), FoldSettings(k=4), force=False)
    trained = epochs * int(n_train * 3 / 4)
    times: dict[str, list] = {"hand": [], "ceiling": [], "cold": [], "warm": []}
    for repeat in range(args.repeats):
        times["hand"].append(hand_fold(workspace, settings, args.workers, in_memory=False))
        clear_cache(root)
        times["cold"].append(ens_fold(workspace, f"cold{repeat}"))
        times["warm"].append(ens_fold(workspace, f"warm{repeat}"))
        times["ceiling"].append(hand_fold(workspace, settings, 0, in_memory=True))
    hand, ceiling = min(times["hand"]), min(times["ceiling"])
    cold = min(times["cold"], key=lambda run: run["seconds"])
    warm = min(times["warm"], key=lambda run: run["seconds"])
    first_cold = min(run["first_step"] for run in times["cold"])
    first_warm = min(run["first_step"] for run in times["warm"])
    rate = lambda seconds: f"{trained / seconds:.0f} img/s"  # noqa: E731
    return [
        ("1. ens (decodes once, into the cache)", rate(cold["seconds"]), f"{hand / cold['seconds']:.2f}x the hand loop (target >= 1.3x)"),
        (f"   hand loop, DataLoader({args.workers} workers) decoding JPEGs each epoch", rate(hand), ""),
        ("2. ens, cache built", rate(warm["seconds"]), f"{ceiling / warm['seconds']:.2f}x the ceiling (target >= 0.9x)"),
        ("   same model on random tensors in memory (ceiling)", rate(ceiling), ""),
        ("3. time to first step, second train-folds, with cache", f"{first_warm:.2f}s", f"{first_cold / first_warm:.1f}x sooner than without"),
        ("   without the cache (cleared first)", f"{first_cold:.2f}s", ""),
    ]


def report(setup: str, rows, args) -> None:
    table = render(rows)
    print(setup)
    print(table)
    if not args.no_record:
        record(setup, table, args)


def render(rows) -> str:
    lines = ["| what | measured | ratio |", "|---|---|---|"]
    lines += [f"| {what} | {measured} | {ratio} |" for what, measured, ratio in rows]
    return "\n".join(lines)


def record(setup: str, table: str, args) -> None:
    import torch

    machine = f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    text = (
        f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC\n\n"
        f"Machine: {machine}. Load average at the end (1, 5, 15 min): {load}; on a busy machine "
        f"timings move by tens of percent between runs.\n"
        f"Command: `python benchmarks/run.py {' '.join(sys.argv[1:])}`. Setup: {setup}.\n\n{table}\n"
    )
    results = HERE / "RESULTS.md"
    if not results.exists():
        results.write_text("# Benchmark results\n\nAppended by `python benchmarks/run.py`, newest last.\n")
    with open(results, "a") as stream:
        stream.write(text)


if __name__ == "__main__":
    main()
