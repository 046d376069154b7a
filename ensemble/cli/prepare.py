"""Commands that set a competition up: `ens init` (ens.toml from a folder) and `ens folds`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ensemble.cli.app import ForceOption, WorkspaceOption, app, default_help, err, handles_errors, out
from ensemble.config import FoldSettings, Workspace, override
from ensemble.data.folds import STRATEGIES
from ensemble.tasks import TASKS


@app.command()
@handles_errors
def init(
    directory: Annotated[Path, typer.Argument(help="The competition folder, as downloaded and unzipped.")] = Path("."),
    train_csv: Annotated[Optional[str], typer.Option(help="The CSV of training ids and labels.")] = None,
    test_csv: Annotated[Optional[str], typer.Option(help="The CSV of test ids (default: the sample's ids).")] = None,
    sample_submission: Annotated[Optional[str], typer.Option(help="The sample submission CSV.")] = None,
    train_images: Annotated[Optional[str], typer.Option(help="The folder of training images, or of one folder per class.")] = None,
    test_images: Annotated[Optional[str], typer.Option(help="The folder of test images.")] = None,
    id_column: Annotated[Optional[str], typer.Option(help="The id column.")] = None,
    label_column: Annotated[Optional[str], typer.Option(help="The label column of the train CSV.")] = None,
    image_suffix: Annotated[Optional[str], typer.Option(help="Image file = <folder>/<id><suffix>, e.g. .jpg.")] = None,
    group_column: Annotated[Optional[str], typer.Option(help="A column of the train CSV for --strategy group.")] = None,
    task: Annotated[
        Optional[str], typer.Option(help=f"One of: {', '.join(TASKS.names())} (default: read off the label column).")
    ] = None,
    label_separator: Annotated[
        Optional[str], typer.Option(help='Between the tags of a multi-label cell (default: " ", any whitespace).')
    ] = None,
    metric: Annotated[
        Optional[str], typer.Option(help="accuracy, logloss, f1_samples, rmse... (default: a guess from the task and the submission kind)")
    ] = None,
    submission: Annotated[Optional[str], typer.Option(help="Submission kind (default: auto, read off the sample).")] = None,
    positive_class: Annotated[Optional[str], typer.Option(help="The class a single probability column is about.")] = None,
    layout: Annotated[
        str, typer.Option(help="folders (train/<class>/<image>), csv (a train CSV), or auto: folders when no train CSV is found.")
    ] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing ens.toml (and lists/).")] = False,
    workspace: Annotated[
        Optional[Path], typer.Option("--workspace", "-w", help="Where to write ens.toml (default: DIRECTORY).", file_okay=False)
    ] = None,
) -> None:
    """Write a commented ens.toml inferred from a competition folder; flags settle what it cannot.

    Finds the train/test CSVs, the sample submission, the image folders and suffix, the id and label columns, the task (one label, several tags or a number per image); or, with one folder per class (train/cat/001.jpg) beside a test folder, writes lists/train.csv, test.csv and sample_submission.csv. Prints each choice and how sure it is.

    Example: ens init ./dogs-vs-cats && ens folds -w ./dogs-vs-cats
    """
    from ensemble.init import Given, init_workspace

    given = Given(
        train_csv=train_csv, test_csv=test_csv, sample_submission=sample_submission, train_images=train_images,
        test_images=test_images, id_column=id_column, label_column=label_column, image_suffix=image_suffix,
        group_column=group_column, task=task, label_separator=label_separator, metric=metric, submission=submission,
        positive_class=positive_class,
    )
    print_init(init_workspace(directory, given, workspace, force, layout))


def print_init(result) -> None:
    width = max(len(str(finding.value)) for finding in result.findings) + 2
    for finding in result.findings:
        value = repr(finding.value) if isinstance(finding.value, str) else str(finding.value)
        out.print(f"{finding.key:<18} {value:<{width}} {'sure' if finding.sure else 'guess':<5}  {finding.why}")
    out.print(
        f"{result.layout} layout: {result.n_train} train and {result.n_test} test images, {result.task}: {result.targets}, "
        f"{result.submission_kind} submission"
    )
    for note in result.notes:
        err.print(f"note: {note}")
    out.print(f"wrote {', '.join(str(path) for path in result.written)}")
    out.print(f"next: ens folds -w {result.config_path.parent} && ens train-folds -w {result.config_path.parent} -n first")


@app.command()
@handles_errors
def folds(
    k: Annotated[Optional[int], typer.Option("--k", help=f"Number of folds. {default_help(FoldSettings, 'k')}")] = None,
    strategy: Annotated[
        Optional[str],
        typer.Option(help=f"One of: {', '.join(STRATEGIES.names())}. {default_help(FoldSettings, 'strategy')}"),
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help=f"Shuffle seed. {default_help(FoldSettings, 'seed')}")] = None,
    dedupe: Annotated[
        Optional[bool],
        typer.Option(
            "--dedupe/--no-dedupe",
            help=f"Keep each near-duplicate group of audit/duplicates.csv (from `ens audit`) in one fold. {default_help(FoldSettings, 'dedupe')}",
        ),
    ] = None,
    force: ForceOption = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Split train.csv into k folds; writes folds/folds.csv (id, fold) and folds/folds.json.

    Example: ens folds --k 5 --strategy stratified; after `ens audit`: ens folds --dedupe --force
    """
    from ensemble.data.competition import load_competition
    from ensemble.data.folds import write_folds

    ws = Workspace.load(workspace)
    settings = override(ws.folds, k=k, strategy=strategy, seed=seed, dedupe=dedupe)
    result = write_folds(ws, load_competition(ws), settings, force)
    kept = f", {result.dedupe_groups} near-duplicate groups each in one fold" if settings.dedupe else ""
    out.print(f"wrote {result.path} ({settings.strategy}, k={settings.k}{kept}): fold sizes {result.fold_sizes}")
    if result.rarest is not None and result.rarest[2] < settings.k:
        what, name, count = result.rarest
        err.print(f"note: {what} {name!r} has {count} rows, fewer than {settings.k} folds; some folds lack it")
