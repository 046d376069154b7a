"""The first thing to run on a machine with a GPU: ens end to end on CUDA, checked, in minutes.

    .venv/bin/python benchmarks/gpu_check.py [--device cuda] [--epochs 5] [--out DIR]

On the demo's digits competition (1,437 training images, k=3) it checks, and exits 1 at the
first failure (2 when no CUDA device is present):
1. the device path: autocast in bf16 where the GPU supports it (else fp16 with a grad scaler),
   channels_last weights, pinned host memory;
2. train-folds on the GPU, and its OOF accuracy within noise (0.03) of the same run on the CPU;
3. resume after a kill: a run SIGKILLed mid-fold in a subprocess, then the same command
   finishes it, and its OOF is within noise of the unbroken run;
4. --jobs 2 with one GPU per worker, when two GPUs are visible;
5. predict from the GPU fold checkpoints gives back the cached OOF probabilities (within 1e-3),
   and `ens predict --tta hflip --as` and a blend of the two run;
6. throughput: training images per second against the in-memory ceiling (the same net and
   batch on random tensors already on the GPU), printed as a ratio.
`--device cpu` runs the same checks on the CPU (slowly), to test this script without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOISE = 0.03  # OOF accuracy two runs of other numerics may differ by on 1,437 digits
SETTINGS = {"model": "resnet10t", "size": 32, "batch_size": 64}


class CheckFailed(Exception):
    pass


def check(ok: bool, message: str) -> None:
    print(("ok    " if ok else "FAIL  ") + message, flush=True)
    if not ok:
        raise CheckFailed(message)


def ens(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ensemble", *args, "-w", str(workspace)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise CheckFailed(f"{' '.join(command[2:])} exited {result.returncode}: {result.stderr.strip().splitlines()[-1:]}")
    return result


def oof_score(workspace: Path, name: str) -> float:
    return json.loads((workspace / "models" / name / "scores.json").read_text())["oof_score"]


def largest_probability_gap(workspace: Path, first: str, second: str) -> float:
    from ensemble.artifacts.store import load_logits
    from ensemble.metrics import softmax

    a, b = (softmax(load_logits(workspace / "models" / name / "oof.npz").values) for name in (first, second))
    return float(abs(a - b).max())


def train_args(name: str, device: str, epochs: int) -> list[str]:
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in SETTINGS.items()]
    return ["train-folds", "-n", name, "--device", device, "--epochs", str(epochs), *flags]


def check_device_path(device: str) -> None:
    import torch

    from ensemble.inference.batches import Batches
    from ensemble.nets import devices
    from ensemble.nets.networks import create_net

    target = devices.resolve_device(device)
    dtype = devices.amp_dtype(target)
    net = create_net(SETTINGS["model"], 10, SETTINGS["size"]).to(target, memory_format=devices.memory_format(target))
    batches = Batches(net, target, SETTINGS["batch_size"], devices.memory_format(target))
    inputs = batches.to_input(torch.zeros(4, 32, 32, 3, dtype=torch.uint8))
    if target.type == "cuda":
        expected = torch.bfloat16 if torch.cuda.get_device_capability(target) >= (8, 0) else torch.float16
        check(dtype == expected, f"autocast dtype {dtype} on {torch.cuda.get_device_name(target)}")
        check(devices.grad_scaler(target).is_enabled() == (dtype == torch.float16), "grad scaler on for fp16 only")
        check(batches.pin, "pinned host memory for batches")
    check(inputs.is_contiguous(memory_format=torch.channels_last), "inputs in channels_last")
    weight = next(p for p in net.parameters() if p.dim() == 4)
    check(weight.is_contiguous(memory_format=torch.channels_last), "conv weights in channels_last")
    with devices.autocast(target):
        out = net(inputs)
    check(bool(torch.isfinite(out.float()).all()), f"a forward pass under autocast is finite ({out.dtype})")


def ceiling(device: str, seconds: float = 5.0) -> float:
    """Training images per second of the same net and batch on random tensors already on the device."""
    import torch

    from ensemble.nets import devices
    from ensemble.nets.networks import create_net

    target = devices.resolve_device(device)
    layout = devices.memory_format(target)
    net = create_net(SETTINGS["model"], 10, SETTINGS["size"]).to(target, memory_format=layout).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    scaler = devices.grad_scaler(target)
    batch = SETTINGS["batch_size"]
    inputs = torch.randn(batch, 3, SETTINGS["size"], SETTINGS["size"], device=target).contiguous(memory_format=layout)
    targets = torch.randint(0, 10, (batch,), device=target)
    def step() -> None:
        with devices.autocast(target):
            loss = torch.nn.functional.cross_entropy(net(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(5):  # warm-up: kernels chosen, memory allocated
        step()
    if target.type == "cuda":
        torch.cuda.synchronize(target)
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        steps += 1
    if target.type == "cuda":
        torch.cuda.synchronize(target)
    return steps * batch / (time.perf_counter() - started)


def trained_images_per_second(workspace: Path, name: str) -> float:
    """From the folds' own epoch timings: training rows seen per second, validation included."""
    rows, seconds = 0, 0.0
    folds = json.loads((workspace / "folds" / "folds.json").read_text())
    n_rows = folds["n_rows"]
    for result_path in sorted((workspace / "models" / name).glob("fold*/result.json")):
        result = json.loads(result_path.read_text())
        rows += len(result["history"]) * (n_rows - n_rows // folds["k"])
        seconds += sum(event["seconds"] for event in result["history"])
    return rows / seconds


def kill_mid_fold_then_resume(workspace: Path, device: str, epochs: int) -> None:
    command = [sys.executable, "-m", "ensemble", *train_args("killed", device, epochs), "-w", str(workspace)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume = workspace / "models" / "killed" / "fold0" / "resume.pt"
    deadline = time.time() + 240
    while not resume.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    check(resume.exists() and process.poll() is None, "a run is killed mid-fold (after its first epoch)")
    process.send_signal(signal.SIGKILL)
    process.wait()
    ens(workspace, *train_args("killed", device, epochs))
    check(abs(oof_score(workspace, "killed") - oof_score(workspace, "gpu")) <= NOISE, f"the resumed run's OOF {oof_score(workspace, 'killed'):.4f} within {NOISE} of the unbroken run's")


def run_checks(workspace: Path, device: str, epochs: int) -> None:
    import torch

    from ensemble.data.digits import write_digits_competition

    check_device_path(device)
    write_digits_competition(workspace)
    ens(workspace, "folds", "--k", "3")
    started = time.perf_counter()
    ens(workspace, *train_args("gpu", device, epochs))
    print(f"      train-folds on {device}: {time.perf_counter() - started:.1f} s wall, OOF accuracy {oof_score(workspace, 'gpu'):.4f}")
    ens(workspace, *train_args("cpu", "cpu", epochs))
    gap = abs(oof_score(workspace, "gpu") - oof_score(workspace, "cpu"))
    check(gap <= NOISE, f"OOF on {device} {oof_score(workspace, 'gpu'):.4f} vs CPU {oof_score(workspace, 'cpu'):.4f}: within {NOISE}")
    kill_mid_fold_then_resume(workspace, device, epochs)
    if device.startswith("cuda") and torch.cuda.device_count() >= 2:
        ens(workspace, *train_args("jobs", device, epochs), "--jobs", "2")
        check(abs(oof_score(workspace, "jobs") - oof_score(workspace, "gpu")) <= NOISE, "--jobs 2, one GPU per worker, within noise")
    else:
        print("skip  --jobs 2 with one GPU per worker: fewer than two GPUs visible")
    ens(workspace, "predict", "-n", "gpu", "--as", "gpu-again", "--device", device)
    gap = largest_probability_gap(workspace, "gpu", "gpu-again")
    check(gap <= 1e-3, f"predict from the fold checkpoints gives back the cached OOF probabilities (largest gap {gap:.1e})")
    # hflip changes what a digit means: the check is that TTA runs, not that it helps here.
    ens(workspace, "predict", "-n", "gpu", "--tta", "hflip", "--as", "gpu-hflip", "--device", device)
    tta = oof_score(workspace, "gpu-hflip")
    check(tta == tta, f"predict with hflip TTA runs: OOF {tta:.4f} (without TTA {oof_score(workspace, 'gpu'):.4f})")
    ens(workspace, "blend", "-n", "check", "--experiments", "gpu,gpu-hflip")
    check((workspace / "submissions" / "check.csv").is_file(), "a blend of the GPU experiments writes its submission")
    ours, best = trained_images_per_second(workspace, "gpu"), ceiling(device)
    print(f"      throughput: ens {ours:.0f} img/s (validation included), in-memory ceiling {best:.0f} img/s: {ours / best:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu to test this script without a GPU")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, help="keep the workspace here (default: a temporary folder)")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the resume check kills a run between two epochs of a fold")
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device is visible to torch; nothing checked (use --device cpu to test this script)")
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        workspace = args.out or Path(scratch) / "digits"
        started = time.perf_counter()
        try:
            run_checks(workspace, args.device, args.epochs)
        except CheckFailed as failure:
            print(f"gpu_check failed: {failure}")
            return 1
        print(f"gpu_check passed in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
