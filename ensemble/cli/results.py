"""Commands on cached logits, without torch: `ens leaderboard` and `ens blend`."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ensemble.blend import METHODS
from ensemble.cli.app import ForceOption, WorkspaceOption, app, err, handles_errors, out, parse_list
from ensemble.cli.tables import score_text
from ensemble.config import Workspace
from ensemble.metrics import METRICS


class Format(str, Enum):
    table = "table"
    json = "json"


@app.command()
@handles_errors
def leaderboard(
    format: Annotated[Format, typer.Option("--format", help="table, or json for scripts.")] = Format.table,
    metric: Annotated[Optional[str], typer.Option(help="Score with this metric instead of ens.toml's: " + ", ".join(METRICS.names()) + ".")] = None,
    wide: Annotated[bool, typer.Option("--wide", help="Add per-fold scores, epochs, lr, batch size and training time.")] = False,
    correlation: Annotated[bool, typer.Option("--correlation", help="Also show the pairwise correlation of experiments' OOF predictions.")] = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """List experiments, best OOF score first, with their per-fold scores.

    Example: ens leaderboard --format json
    """
    from ensemble.results.leaderboard import duplicates_note
    from ensemble.results.leaderboard import leaderboard as rows_of

    ws = Workspace.load(workspace)
    rows = rows_of(ws, metric, correlation)
    if format is Format.json:
        print(json.dumps(rows, indent=2))
    else:
        print_leaderboard(rows, wide, correlation)
    note = duplicates_note(ws)
    if note:  # on stderr: --format json keeps stdout clean JSON
        err.print(f"note: {note}")


def print_leaderboard(rows: list[dict], wide: bool = False, correlation: bool = False) -> None:
    from ensemble.cli.tables import correlation_table, leaderboard_table
    from ensemble.results.leaderboard import DISTILLED_NOTE

    if not rows:
        out.print("no experiments yet; run `ens train-folds`")
        return
    out.print(leaderboard_table(rows, out.width, wide))
    if correlation and any("correlation" in row for row in rows):
        out.print(correlation_table(rows, out.width))
    for row in rows:
        if row["note"]:
            err.print(f"note: {row['name']}: {row['note']}")
        if row.get("distilled"):
            err.print(f"note: {row['name']}: {DISTILLED_NOTE}")


@app.command()
@handles_errors
def blend(
    name: Annotated[str, typer.Option("--name", "-n", help="Submission name: submissions/NAME.csv, NAME.json and NAME.oof.npz.")],
    method: Annotated[str, typer.Option(help=f"One of: {', '.join(METHODS.names())}.")] = "mean",
    experiments: Annotated[
        Optional[str], typer.Option(help="Experiments to blend, e.g. a,b; EXP:VIEW is one TTA view kept by `ens predict --keep-views`, EXP:* each (default: all with every fold trained)")
    ] = None,
    metric: Annotated[Optional[str], typer.Option(help="Score and fit with this metric instead of ens.toml's: " + ", ".join(METRICS.names()) + ".")] = None,
    power: Annotated[Optional[float], typer.Option(help="power: the exponent of the probabilities (default 2).")] = None,
    meta: Annotated[Optional[str], typer.Option(help="stack: the meta-learner, logreg (default; ridge for a regression) or lgbm.")] = None,
    stack_test: Annotated[Optional[str], typer.Option(help="stack: per-fold (default: the meta-learner on each fold model's test logits, averaged) or mean-logits.")] = None,
    hill_steps: Annotated[Optional[int], typer.Option(help="hill: selection steps (default 50).")] = None,
    hill_init: Annotated[Optional[int], typer.Option(help="hill: start from the best N members (default 1).")] = None,
    hill_bags: Annotated[Optional[int], typer.Option(help="hill: bags of half the members, weights averaged (default 1: no bagging).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="hill: seeds the bags (default 0).")] = None,
    tune_thresholds: Annotated[
        bool,
        typer.Option(
            "--tune-thresholds",
            help="Single-label f1_macro and qwk: tune per-class biases on OOF; multi-label F1: one threshold per tag instead of one for every tag (scored out of fold).",
        ),
    ] = False,
    force: ForceOption = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Blend cached experiments, score the blend on OOF (in sample and out of fold), write a submission shaped like the sample.

    Example: ens blend --name first --method hill --experiments r18,effnet
    """
    from ensemble.blend.run import blend_experiments

    given = dict(power=power, meta=meta, stack_test=stack_test, hill_steps=hill_steps, hill_init=hill_init, hill_bags=hill_bags, seed=seed)
    options = {option: value for option, value in given.items() if value is not None}
    result = blend_experiments(
        Workspace.load(workspace), name, method, parse_list(experiments, "--experiments"), force, metric, options, tune_thresholds
    )
    print_blend(result)


def print_blend(result) -> None:
    from ensemble.cli.tables import blend_table

    for member, reason in result.left_out.items():
        err.print(f"note: left out {member}: {reason}")
    out.print(blend_table(result, out.width))
    if result.optimised:
        out.print(f"note: {result.method} is fit by minimising {result.optimised}, not {result.metric} (hill optimises {result.metric} directly)")
    if result.thresholds is not None:
        out.print(thresholds_text(result.thresholds))
    out.print(
        f"{result.metric}: in sample {score_text(result.oof_score_in_sample)}, out of fold {score_text(result.oof_score)}"
    )
    out.print(f"wrote {result.csv_path}, {result.json_path.name} and {result.oof_path.name} (submission kind: {result.kind})")
    for note in result.notes:
        err.print(f"note: {note}")


def thresholds_text(thresholds: float | dict[str, float]) -> str:
    """A multi-label blend's tuned threshold(s), as NAME.json records them."""
    if isinstance(thresholds, dict):
        return "thresholds per tag, tuned on OOF: " + ", ".join(f"{tag} {value:.2f}" for tag, value in thresholds.items())
    return f"threshold, tuned on OOF: {thresholds:.2f} for every tag"
