"""`ens audit`: near-duplicates, train/test near-copies and conflicting labels, written into audit/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ensemble.cli.app import WorkspaceOption, app, err, handles_errors, out
from ensemble.config import Workspace


@app.command()
@handles_errors
def audit(
    threshold: Annotated[
        Optional[float], typer.Option("--threshold", help="A pair is a near-copy at or above this correlation, in (0, 1] (default: 0.97).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing audit/ folder.")] = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Find near-duplicate training images, test images with a near-copy in train, and groups whose labels differ.

    Writes audit/duplicates.csv, train_test.csv, conflicts.csv, test_like.csv and audit.json
    (image sizes, modes and formats train against test, class balance per fold, train/test
    shift). Near-copies are found by the correlation of 28 px grey thumbnails over shifts of
    up to 2 px; shift by a classifier telling train from test on cheap features (its
    cross-validated AUC is about 0.5 when there is none).

    Example: ens audit --threshold 0.98
    """
    from ensemble.results.audit import DEFAULT_THRESHOLD, run_audit

    result = run_audit(Workspace.load(workspace), DEFAULT_THRESHOLD if threshold is None else threshold, force, err.print)
    out.print(f"{plural(result.n_groups, 'near-duplicate group')} covering {result.n_grouped} of {result.n_train} training images")
    out.print(f"{result.n_test_with_copy} of {result.n_test} test images have a near-copy in train")
    out.print(f"{plural(result.n_conflicts, 'group')} with conflicting labels")
    auc = "not measured" if result.shift_auc is None else f"{result.shift_auc:.2f}"
    out.print(f"train/test shift: adversarial AUC {auc} ({result.shift_verdict})")
    out.print(f"method: {result.method}; threshold {result.threshold:g}; {result.seconds:.1f}s")
    out.print(f"wrote {', '.join(str(path) for path in result.files)}")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
