"""The `ens` command line: parses options, calls the library, renders results.

Results go to standard output; progress and errors to standard error, so
`ens leaderboard --format json | jq` stays clean. Every EnsError becomes one line
`error: ...` and exit code 1. Torch is only imported by the commands that train.
"""

from __future__ import annotations

import errno
import functools
import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from ensemble import __version__
from ensemble.blend import METHODS
from ensemble.config import FoldSettings, TrainSettings, Workspace, override
from ensemble.errors import EnsError
from ensemble.folds import STRATEGIES

app = typer.Typer(
    name="ens",
    help=(
        "Kaggle-style image classification, from raw files to a blended submission.\n\n"
        "ens folds -> ens train-folds -> ens blend. Start with `ens demo` to see it run.\n\n"
        "Example: ens folds --k 5 && ens train-folds -n r18 --model resnet18 && ens blend -n first"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# No markup and no highlighting: messages carry paths, ids and TOML section names such as
# "[competition]", which rich would otherwise read as style tags and drop.
out = Console(soft_wrap=True, markup=False)
err = Console(stderr=True, soft_wrap=True, markup=False)

WorkspaceOption = Annotated[
    Path,
    typer.Option("--workspace", "-w", help="Workspace folder holding ens.toml.", file_okay=False),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Replace existing outputs.")]


def default(cls, field: str) -> str:
    """Help text for a flag whose default lives in a settings dataclass (or ens.toml)."""
    return f"(default: ens.toml, else {getattr(cls(), field)!r})"


WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def handles_errors(command: Callable) -> Callable:
    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EnsError as error:
            err.print(Text("error:", style="red"), str(error))
            raise typer.Exit(1) from None
        except OSError as error:
            # Writes through the store name their file already; this catches the others
            # (a folder made, an image of the demo written) when the disk fills up.
            if error.errno not in WRITE_ERRORS:
                raise
            where = f"{error.filename}: " if error.filename else ""
            err.print(Text("error:", style="red"), f"{where}cannot write: {error.strerror}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("interrupted; run the same command again to resume")
            raise typer.Exit(130) from None

    return run


def parse_list(value: str | None, option: str, convert=str) -> list | None:
    if value is None or value.strip() == "":
        return None
    try:
        values = [convert(part.strip()) for part in value.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        raise EnsError(f"{option}: cannot read {value!r}; expected a comma-separated list")
    return values


def version_callback(value: bool) -> None:
    if value:
        out.print(f"ens {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    pass


@app.command()
@handles_errors
def folds(
    k: Annotated[Optional[int], typer.Option("--k", help=f"Number of folds. {default(FoldSettings, 'k')}")] = None,
    strategy: Annotated[
        Optional[str],
        typer.Option(help=f"One of: {', '.join(STRATEGIES.names())}. {default(FoldSettings, 'strategy')}"),
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help=f"Shuffle seed. {default(FoldSettings, 'seed')}")] = None,
    force: ForceOption = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Split train.csv into k folds; writes folds/folds.csv (id, fold) and folds/folds.json.

    Example: ens folds --k 5 --strategy stratified
    """
    from ensemble.competition import load_competition
    from ensemble.folds import write_folds

    ws = Workspace.load(workspace)
    settings = override(ws.folds, k=k, strategy=strategy, seed=seed)
    result = write_folds(ws, load_competition(ws), settings, force)
    out.print(f"wrote {result.path} ({settings.strategy}, k={settings.k}): fold sizes {result.fold_sizes}")
    label, count = result.smallest_class
    if count < settings.k:
        err.print(f"note: class {label!r} has {count} rows, fewer than {settings.k} folds; some folds lack it")


def print_event(event: object) -> None:
    from ensemble.runs import FoldEnd, FoldsSent, FoldStart, ImagesRead
    from ensemble.train import EpochEnd

    formats = {
        ImagesRead: lambda e: (
            f"read {e.n_train} train and {e.n_test} test images at {e.size}px in {e.seconds:.1f}s"
            + (" (from the image cache)" if e.from_cache else "")
        ),
        FoldsSent: lambda e: f"training folds {','.join(map(str, e.folds))} on {e.where}",
        FoldStart: lambda e: f"fold {e.fold}: training on {e.n_train}, holding out {e.n_valid}" + (" (resuming)" if e.resuming else ""),
        EpochEnd: lambda e: (
            f"  fold {e.fold} epoch {e.epoch}/{e.epochs}  train loss {e.train_loss:.4f}  "
            f"valid loss {e.valid_loss:.4f}  {e.metric} {e.valid_score:.4f}  {e.seconds:.1f}s"
        ),
        FoldEnd: lambda e: f"fold {e.fold}: {e.metric} {e.score:.4f} in {e.seconds:.1f}s",
    }
    err.print(formats[type(event)](event))


@app.command("train-folds")
@handles_errors
def train_folds(
    name: Annotated[str, typer.Option("--name", "-n", help="Experiment name: the folder models/NAME.")],
    model: Annotated[Optional[str], typer.Option(help=f"timm model name, e.g. resnet18. {default(TrainSettings, 'model')}")] = None,
    size: Annotated[Optional[int], typer.Option(help=f"Image side in pixels. {default(TrainSettings, 'size')}")] = None,
    epochs: Annotated[Optional[int], typer.Option(help=f"Passes over the fold's training rows. {default(TrainSettings, 'epochs')}")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help=f"Images per step, at least 2. {default(TrainSettings, 'batch_size')}")] = None,
    lr: Annotated[Optional[float], typer.Option(help=f"Peak learning rate (one-cycle). {default(TrainSettings, 'lr')}")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help=f"AdamW weight decay. {default(TrainSettings, 'weight_decay')}")] = None,
    folds: Annotated[Optional[str], typer.Option("--folds", help="Folds to train, e.g. 0,1 (default: all)")] = None,
    device: Annotated[Optional[str], typer.Option(help=f"auto, cpu, cuda or cuda:N. {default(TrainSettings, 'device')}")] = None,
    seed: Annotated[Optional[int], typer.Option(help=f"Seeds weights, shuffling and dropout. {default(TrainSettings, 'seed')}")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Train the asked folds again from scratch; with changed settings, delete the whole experiment first.",
        ),
    ] = False,
    jobs: Annotated[
        int, typer.Option("--jobs", help="Folds trained at once, in separate processes (CPU cores or GPUs shared out).")
    ] = 1,
    cluster: Annotated[
        Optional[str],
        typer.Option("--cluster", help="Send the folds to a Dask scheduler, e.g. tcp://HOST:8786 (workspace on a shared filesystem)."),
    ] = None,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Train one model per fold; cache OOF and test logits under models/NAME/.

    Run the same command again after a stop to resume: finished folds are kept, a running fold restarts from its last finished epoch.

    Example: ens train-folds --name r18 --model resnet18 --size 64 --epochs 5
    """
    from ensemble.parallel import Executor
    from ensemble.runs import train_experiment

    ws = Workspace.load(workspace)
    settings = override(
        ws.train, model=model, size=size, epochs=epochs, batch_size=batch_size, lr=lr,
        weight_decay=weight_decay, device=device, seed=seed,
    )
    executor = Executor(jobs, cluster)
    result = train_experiment(ws, name, settings, parse_list(None if folds == "all" else folds, "--folds", int), force, print_event, executor)
    if not result.trained:
        scores = " ".join(score_text(score) for score in result.fold_scores)
        err.print(f"nothing trained: the asked folds are already trained with these settings (fold scores {scores}); --force trains them again")
    elif result.kept:
        err.print(f"kept finished folds {result.kept}")
    oof = f"{result.oof_score:.4f}" if result.oof_score is not None else "- (not every fold is trained)"
    out.print(f"{result.name}: OOF {result.metric} {oof}; logits in {result.path}")


class Format(str, Enum):
    table = "table"
    json = "json"


def score_text(score: float | None) -> str:
    return "-" if score is None else f"{score:.4f}"


@app.command()
@handles_errors
def leaderboard(
    format: Annotated[Format, typer.Option("--format", help="table, or json for scripts.")] = Format.table,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """List experiments, best OOF score first, with their per-fold scores.

    Example: ens leaderboard --format json
    """
    from ensemble.leaderboard import leaderboard as rows_of

    rows = rows_of(Workspace.load(workspace))
    if format is Format.json:
        print(json.dumps(rows, indent=2))
        return
    print_leaderboard(rows)


def print_leaderboard(rows: list[dict]) -> None:
    if not rows:
        out.print("no experiments yet; run `ens train-folds`")
        return
    table = Table(Column("experiment", no_wrap=True), Column("model", no_wrap=True), "metric", "OOF", "folds", "train time")
    for row in rows:
        folds_text = " ".join(score_text(score) for score in row["fold_scores"])
        table.add_row(row["name"], row["model"], row["metric"], score_text(row["oof_score"]), folds_text, f"{row['seconds']:.0f}s")
    out.print(table)
    for row in rows:
        if row["note"]:
            err.print(f"note: {row['name']}: {row['note']}")


@app.command()
@handles_errors
def blend(
    name: Annotated[str, typer.Option("--name", "-n", help="Submission name: submissions/NAME.csv and NAME.json.")],
    method: Annotated[str, typer.Option(help=f"One of: {', '.join(METHODS.names())}.")] = "mean",
    experiments: Annotated[
        Optional[str], typer.Option(help="Experiments to blend, e.g. a,b (default: all with every fold trained)")
    ] = None,
    force: ForceOption = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Blend cached experiments, score the blend on OOF, write a submission shaped like the sample.

    Example: ens blend --name first --method mean --experiments r18,effnet
    """
    from ensemble.blend.run import blend_experiments

    result = blend_experiments(Workspace.load(workspace), name, method, parse_list(experiments, "--experiments"), force)
    print_blend(result)


def print_blend(result) -> None:
    if result.left_out:
        err.print(f"note: left out, not every fold trained: {', '.join(result.left_out)}")
    table = Table(Column("member", no_wrap=True), "weight", f"OOF {result.metric}")
    for member, weight, score in zip(result.names, result.weights, result.member_scores):
        table.add_row(member, f"{weight:.3f}", score_text(score))
    table.add_row(Text(f"blend ({result.method})", style="bold"), "", Text(score_text(result.oof_score), style="bold"))
    out.print(table)
    out.print(f"wrote {result.csv_path} and {result.json_path.name} (submission kind: {result.kind})")


@app.command()
@handles_errors
def cache(
    clear: Annotated[bool, typer.Option("--clear", help="Delete every cached image file.")] = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """List the decoded-image cache (cache/ in the workspace), or delete it with --clear.

    Images are decoded once per (image list, size) into cache/; later runs read that file.

    Example: ens cache --clear
    """
    from ensemble.cache import clear_cache, list_cache

    root = Workspace.load(workspace).root
    if clear:
        files, freed = clear_cache(root)
        out.print(f"removed {files} cached image files ({freed / 1e6:.1f} MB)")
        return
    entries = list_cache(root)
    if not entries:
        out.print("the image cache is empty")
        return
    for entry in entries:  # plain lines: a table would squeeze the paths at 80 columns
        out.print(f"{entry.path.name}  {entry.n_images} images at {entry.size}px  {entry.bytes / 1e6:.1f} MB  {entry.created}  from {entry.source}")
    out.print(f"total {sum(entry.bytes for entry in entries) / 1e6:.1f} MB in {entries[0].path.parent}")


@app.command()
@handles_errors
def demo(
    directory: Annotated[Path, typer.Argument(help="Where to write the demo workspace.")] = Path("ens-demo"),
    force: ForceOption = False,
) -> None:
    """Make a small real competition from scikit-learn's digits and run it end to end.

    Writes the competition (PNG files, train.csv, test.csv, sample submission, ens.toml) into
    DIRECTORY, then runs folds, two experiments, a mean blend and the submission.

    Example: ens demo ./ens-demo
    """
    from ensemble.demo import run_demo
    from ensemble.leaderboard import leaderboard as rows_of

    try:
        result = run_demo(directory, force, print_event)
    except KeyboardInterrupt:  # the same command with --force would start over, not resume
        err.print(f"interrupted; run `ens demo {directory}` again to resume")
        raise typer.Exit(130) from None
    print_leaderboard(rows_of(result.workspace))
    print_blend(result.blend)
    out.print(
        f"held-out test accuracy of the submission: {result.test_accuracy:.4f} "
        f"on {result.test_rows} images (answers in data/test_labels.csv)",
    )
    out.print(f"demo finished in {result.seconds:.0f}s; workspace {result.workspace.root}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
