"""`ens audit`: near-duplicates, train/test near-copies and conflicting labels, written into audit/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ensemble.cli.app import WorkspaceOption, app, err, handles_errors, out


@app.command()
@handles_errors
def audit(
    threshold: Annotated[
        Optional[float], typer.Option("--threshold", help="A pair is a near-copy at or above this correlation, in (0, 1] (default: 0.97).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing audit/ folder.")] = False,
    experiment: Annotated[
        Optional[str],
        typer.Option("--experiment", "-n", help="Also compare CNN embeddings: fold 0's model of this finished experiment."),
    ] = None,
    pretrained: Annotated[
        Optional[Path],
        typer.Option("--pretrained", help="Also compare CNN embeddings: a weights file (safetensors or torch state dict), as train-folds loads it."),
    ] = None,
    model: Annotated[
        Optional[str], typer.Option("--model", help="The timm architecture of --pretrained (default: the workspace's train model).")
    ] = None,
    embedding_threshold: Annotated[
        Optional[float],
        typer.Option("--embedding-threshold", help="With embeddings: a near-copy at or below this relative embedding distance, in (0, 1) (default: 0.2)."),
    ] = None,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Find near-duplicate training images, test images with a near-copy in train, and groups whose labels differ.

    Writes audit/duplicates.csv, train_test.csv, conflicts.csv, test_like.csv and audit.json
    (image sizes, modes and formats train against test, class balance per fold, train/test
    shift). Near-copies are found by the correlation of 28 px grey thumbnails over shifts of
    up to 2 px; with --experiment or --pretrained, CNN embeddings also find pairs and judge
    every pair, rejecting look-alike items of a class. Shift: a classifier telling train from
    test on cheap features (its cross-validated AUC is about 0.5 when there is none).

    Example: ens audit --experiment r18
    """
    from ensemble.config import Workspace
    from ensemble.workflows.audit import audit as run  # imports torch only when embeddings are asked for

    result = run(Workspace.load(workspace), threshold, force, experiment, pretrained, model, embedding_threshold, err.print)
    out.print(f"{plural(result.n_groups, 'near-duplicate group')} covering {result.n_grouped} of {result.n_train} training images")
    out.print(f"{result.n_test_with_copy} of {result.n_test} test images have a near-copy in train")
    out.print(f"{plural(result.n_conflicts, 'group')} with conflicting labels")
    auc = "not measured" if result.shift_auc is None else f"{result.shift_auc:.2f}"
    out.print(f"train/test shift: adversarial AUC {auc} ({result.shift_verdict})")
    out.print(f"methods: {' + '.join(result.methods)}; {found_by(result)}threshold {result.threshold:g}; {result.seconds:.1f}s")
    out.print(f"wrote {', '.join(str(path) for path in result.files)}")


def found_by(result) -> str:
    """Which method found the pairs, when embeddings were used: 'found by thumbnails: ..., by embeddings alone: ...'."""
    if len(result.methods) == 1:
        return ""
    rows, pairs = result.pairs_by_method["train_rows"], result.pairs_by_method["train_test_pairs"]
    return (
        f"grouped rows found by thumbnails {rows['thumbnails']}, by embeddings alone {rows['embeddings']}; "
        f"train/test pairs by thumbnails {pairs['thumbnails']}, by embeddings alone {pairs['embeddings']}; "
        f"{result.n_rejected} thumbnail pairs rejected as look-alikes; "
    )


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
