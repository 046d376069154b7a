"""Commands around the pipeline: `ens cache`, `ens demo` (the whole pipeline on digits) and `ens report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ensemble.cli.app import ForceOption, WorkspaceOption, app, err, handles_errors, out
from ensemble.cli.results import print_blend, print_leaderboard
from ensemble.cli.training import print_event
from ensemble.config import Workspace


@app.command()
@handles_errors
def cache(
    clear: Annotated[bool, typer.Option("--clear", help="Delete every cached image file.")] = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """List the decoded-image cache (cache/ in the workspace), or delete it with --clear.

    Images are decoded once per (image list, size) into cache/; later runs read that file.
    --clear is refused while a running train-folds or predict reads the cache.

    Example: ens cache --clear
    """
    from ensemble.data.cache import clear_cache, list_cache

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
        if entry.damaged:
            out.print(f"  damaged: {entry.damaged}")
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
    from ensemble.cli.progress import TrainProgress
    from ensemble.results.leaderboard import leaderboard as rows_of
    from ensemble.workflows.demo import run_demo

    try:
        with TrainProgress(err, print_event) as progress:
            result = run_demo(directory, force, progress)
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


@app.command()
@handles_errors
def report(
    out_path: Annotated[Optional[Path], typer.Option("--out", help="The HTML file to write (default: report.html in the workspace).", dir_okay=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a file at --out that is not an earlier report.")] = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Write one self-contained HTML page of the results: curves, fold scores, confusion matrices, correlations, blends, calibration, settings.

    Reads cached files only; an earlier report is replaced.

    Example: ens report --out results.html
    """
    from ensemble.results.report import write_report

    result = write_report(Workspace.load(workspace), out_path, force)
    best = f"; best experiment {result.best}" if result.best else ""
    out.print(f"wrote {result.path} ({result.n_experiments} experiments, {result.n_blends} blends{best})")
