"""`ens auto`: a competition to a blended submission within a time budget, and its progress lines.

Every choice is printed with its reason as it is made (what was seen, each probe, the plan and
what it left out, each experiment before it starts with the plan's state and the time left,
which views keep labels, each blend's out-of-fold score); the live fold bars are the ones
train-folds draws (cli/progress.py). Torch is imported inside the command only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ensemble.cli.app import WorkspaceOption, app, default_help, err, handles_errors, out
from ensemble.cli.progress import clock
from ensemble.cli.tables import build, score_text
from ensemble.config import AutoSettings, Workspace, override


def print_auto_event(event: object) -> None:
    from ensemble.cli.training import print_predict_event
    from ensemble.workflows.auto.events import BlendScored, ExperimentDone, Looked, Planned, Skipped, Status
    from ensemble.workflows.auto.probe import Probed
    from ensemble.workflows.auto.views import Views

    if isinstance(event, Looked):
        for line in event.look.lines():
            err.print(line)
        folds = f"made {event.k} folds ({event.folds.path})" if event.folds else f"using the {event.k} folds in folds/folds.csv" if event.have_folds else f"{event.k} folds would be made ([folds] of ens.toml)"
        err.print(f"folds: {folds}" + ("; continuing the plan of an earlier run (auto/ record)" if event.resumed else ""))
    elif isinstance(event, Probed):
        if event.speed is None:
            err.print(f"probe {event.key}: left out: {event.error}")
        else:
            speed = event.speed
            pace = (
                f"features of {speed.predict_images_per_second:.0f} img/s once, {'its top stages train' if speed.trained_stages else 'its head trains'} {speed.train_images_per_second:.0f} rows/s"
                if speed.features_once else f"trains {speed.train_images_per_second:.0f} img/s, predicts {speed.predict_images_per_second:.0f} img/s"
            )
            err.print(f"probe {event.key}: {pace}, {speed.setup_seconds:.1f}s a fold to set up " + (f"({event.error}, the faster kept)" if event.error else f"(measured in {event.seconds:.1f}s)"))
    elif isinstance(event, Planned):
        print_plan(event)
    elif isinstance(event, Status):
        err.print(f"[{event.done} done, {event.left} left, {clock(event.seconds_left)} left] {event.running}: {event.what}")
    elif isinstance(event, ExperimentDone):
        score = f"OOF {event.metric} {score_text(event.oof_score)}"
        err.print(f"{event.name}: {score} in {event.seconds:.0f}s (estimated {event.estimated:.0f}s), {event.epochs} epochs, augment {event.augment}")
    elif isinstance(event, Views):
        for verdict in event.verdicts:
            err.print(verdict.line())
        if not event.safe:
            used = f"no view keeps labels: none of {', '.join(verdict.family for verdict in event.verdicts)} in training or TTA"
        else:
            used = f"later experiments augment with {event.augment}; TTA uses {event.tta}" + (" (shifts and zooms lose pixels)" if event.tta != event.spec else "")
        err.print(f"views (measured on {event.experiment}'s OOF in {event.seconds:.1f}s): {used}")
    elif isinstance(event, Skipped):
        err.print(f"skip {event.name}: {event.reason}")
    elif isinstance(event, BlendScored):
        err.print(f"blend {event.method}: " + (f"out-of-fold {score_text(event.oof_score)}" if event.oof_score is not None else f"refused: {event.reason}"))
    else:
        print_predict_event(event)


def print_plan(event) -> None:
    plan = event.plan
    err.print(f"plan for {clock(event.seconds_left)} left ({plan.reserve_seconds:.0f}s kept for the finish): "
              f"{len(plan.experiments)} experiment{'s' if len(plan.experiments) != 1 else ''}, about {plan.estimated_seconds / 60:.1f} min")
    for planned in plan.experiments:
        candidate = planned.candidate
        err.print(f"  {event.prefix}-{candidate.name}: {candidate.model} at {candidate.size}px, {planned.epochs} epochs{(' of its top stages' if candidate.top_blocks > 0 else ' of its head') if candidate.frozen else ''}, "
                  f"about {planned.seconds / 60:.1f} min; {planned.reason}")
    for name, reason in plan.dropped:
        err.print(f"  left out {event.prefix}-{name}: {reason}")
    for note in plan.notes:
        err.print(f"  note: {note}")


def print_summary(result) -> None:
    rows = result.experiments
    # Named without the common prefix (models/auto-resnet10t-64 is "resnet10t-64"), which the title
    # gives: the longest built-in name then fits 80 columns beside an "abandoned" status.
    prefix = rows[0]["experiment"][: -len(rows[0]["candidate"]["name"])] if rows else ""
    columns = [
        ("experiment", [row["experiment"][len(prefix):] if row["experiment"].startswith(prefix) else row["experiment"] for row in rows], True),
        ("epochs", [str(row["epochs"]) for row in rows], False),
        ("augment", [row["augment"] for row in rows], True),
        ("time", [clock(row["seconds"]) for row in rows], False),  # m:ss: narrower than seconds, so names fit 80 columns
        ("OOF", [score_text(row["oof_score"]) for row in rows], False),
        ("status", [row["status"] for row in rows], True),
    ]
    out.print(build(columns, out.width, title=f"ens auto: experiments {prefix}<experiment>" if prefix else "ens auto"))
    finished = result.finished
    if finished:
        chosen = finished.chosen
        blends = ", ".join(f"{method} {score_text(blend.get('oof_score'))}" for method, blend in finished.blends.items() if "oof_score" in blend)
        out.print(f"blends, out of fold: {blends}; chosen: {chosen.method} ({chosen.metric} {score_text(chosen.oof_score)} out of fold) over {len(chosen.names)} member{'s' if len(chosen.names) != 1 else ''}")
        out.print(f"wrote {chosen.csv_path}, {chosen.json_path.name} and {chosen.oof_path.name}; report {finished.report}")
    out.print(f"time: {clock(result.seconds)} used of {clock(result.budget)}")


@app.command()
@handles_errors
def auto(
    time_limit: Annotated[Optional[str], typer.Option("--time-limit", help=f"Wall time of the whole command: 90s, 10m, 1h. {default_help(AutoSettings, 'time_limit')}")] = None,
    name: Annotated[Optional[str], typer.Option("--name", "-n", help=f"The submission (submissions/NAME.csv) and its experiments' prefix (models/NAME-*). {default_help(AutoSettings, 'name')}")] = None,
    pretrained_dir: Annotated[Optional[Path], typer.Option("--pretrained-dir", help="A folder of weights files named after timm models (efficientnet_lite0.pth): pretrained candidates join.", file_okay=False)] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N. (default: ens.toml [train], else 'auto')")] = None,
    jobs: Annotated[int, typer.Option("--jobs", help="Folds trained at once, in separate processes.")] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Measure and print the plan (candidates, sizes, epochs, minutes); train nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Start NAME over: a new plan, every NAME-* experiment trained again, the submission replaced.")] = False,
    workspace: WorkspaceOption = Path("."),
) -> None:
    """Train a portfolio of models within a time budget, keep the views that keep labels, blend, and write the submission.

    Run the same command again after a stop: it continues the plan (auto/NAME.json) with a budget of its own.

    Example: ens auto --time-limit 10m
    """
    started = time.perf_counter()  # the budget counts from here: loading torch is part of it
    from ensemble.cli.progress import TrainProgress
    from ensemble.config import parse_duration
    from ensemble.workflows.auto.events import Clock
    from ensemble.workflows.auto.run import run_auto
    from ensemble.workflows.auto.state import AutoOptions

    ws = Workspace.load(workspace)
    settings = override(ws.auto, time_limit=time_limit, name=name, pretrained_dir=str(pretrained_dir.resolve()) if pretrained_dir else None)
    options = AutoOptions(settings, device, jobs, dry_run, force)
    with TrainProgress(err, print_auto_event) as progress:
        result = run_auto(ws, options, progress, Clock(parse_duration(settings.time_limit), started))
    if dry_run:
        out.print(f"dry run: nothing trained; the plan above would take about {result.plan.estimated_seconds / 60:.1f} min of {clock(result.budget)}")
        return
    print_summary(result)
