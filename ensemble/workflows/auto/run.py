"""`ens auto`: from a competition to a blended submission within a time budget.

Look at the data, make folds if there are none, measure each candidate's speed, plan a
portfolio that fits, train it in order while re-planning after every fold from the measured
times, find the views that keep labels after the first experiment, then finish (finish.py):
TTA members, blends picked by their out-of-fold score, the submission and the report.

Every experiment is an ordinary one, models/NAME-<candidate>, trained by train_experiment, so
a killed run resumes fold by fold: the same command again continues the plan from auto/NAME.json
(record.py) with a budget of its own. A fold is never half-counted: an experiment is blended
only when every fold finished; one that cannot finish in the time left is not started.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from ensemble import metrics
from ensemble.artifacts.store import ExperimentDir, check_name
from ensemble.config import Workspace, override, parse_duration
from ensemble.data.competition import Competition
from ensemble.data.content import competition_keys
from ensemble.data.folds import read_folds
from ensemble.errors import EnsError
from ensemble.training.events import Progress
from ensemble.training.experiment import train_experiment
from ensemble.workflows.auto import record as records
from ensemble.workflows.auto.events import Clock, ExperimentDone, Looked, Planned, Skipped, Status
from ensemble.workflows.auto.finish import Finished, finish
from ensemble.workflows.auto.look import Look, ensure_folds, look_at
from ensemble.workflows.auto.plan import Plan, Shape, experiment_seconds, fold_seconds
from ensemble.workflows.auto.portfolio import Candidate, portfolio
from ensemble.workflows.auto.probe import CHOSEN, candidate_settings, probe_all
from ensemble.workflows.auto.state import AutoOptions, Run
from ensemble.workflows.auto.views import Views, families_of, find_views, recorded_augment

# The share of the budget the probes may use; candidates not probed by then are left out.
PROBE_SHARE = 0.1


@dataclass(frozen=True)
class AutoResult:
    plan: Plan
    look: Look
    budget: float
    seconds: float
    experiments: list[dict]  # the record's entries, each with its experiment's name
    views: dict | None
    finished: Finished | None  # None for a dry run


def run_auto(workspace: Workspace, options: AutoOptions, progress: Progress | None = None, clock: Clock | None = None) -> AutoResult:
    """Run (or continue) `ens auto` NAME within options.settings.time_limit of wall time from now."""
    settings = options.settings
    clock = clock or Clock(parse_duration(settings.time_limit))
    name = check_name(settings.name, "auto")
    submission = workspace.submissions_dir / f"{name}.json"
    if submission.exists() and not options.force and not options.dry_run:
        raise EnsError(f"{submission}: ens auto {name} has finished; --force starts it over (every {name}-* experiment trained again), or give another --name")
    families = families_of(settings.views)  # a bad view fails now, not after the first experiment
    run = Run(workspace, options, clock, progress)
    if options.force and not options.dry_run:
        records.remove(workspace, name)
    run.record = records.load(workspace, name) or records.fresh(name, dataclasses.asdict(settings))
    resumed = bool(run.record["runs"])
    reopen(workspace, run.record)
    started = time.perf_counter()
    competition, look = look_at(workspace)
    competition_keys(competition)  # every fold's run reads the images' keys: part of the measured overhead
    overhead = time.perf_counter() - started
    folds_made = None if options.dry_run else ensure_folds(workspace, competition)
    have_folds = (workspace.folds_dir / "folds.csv").exists()
    k = read_folds(workspace, competition).k if have_folds else workspace.folds.k
    run.tell(Looked(look, folds_made, k, resumed, have_folds))
    candidates = records.candidates_of(run.record) if run.record["candidates"] else portfolio(
        look.size, [model.strip() for model in settings.models.split(",") if model.strip()], workspace.path(settings.pretrained_dir) if settings.pretrained_dir else None
    )
    base = override(workspace.train, device=options.device)
    speeds = records.speeds_of(run.record)
    missing = [candidate for candidate in candidates if candidate.speed_key not in speeds]
    if missing:
        speeds |= probe_all(workspace, competition, missing, base, overhead, progress, PROBE_SHARE * clock.budget)
    run.record.update(look=dataclasses.asdict(look), candidates=[dataclasses.asdict(c) for c in candidates], speeds={key: dataclasses.asdict(speed) for key, speed in speeds.items()})
    shape = Shape(look.n_train, look.n_test, k)
    plan = run.plan(candidates, speeds, shape, views_cost(run, candidates, speeds, shape, families))
    run.tell(Planned(plan, name, clock.left()))
    run.record["plan"] = records.plan_document(plan, name)
    if options.dry_run:
        return AutoResult(plan, look, clock.budget, clock.used(), [], run.record["views"], None)
    run.record["runs"].append({"time_limit": settings.time_limit, "budget_seconds": clock.budget})
    records.save(workspace, run.record)
    train_plan(run, competition, candidates, speeds, shape, families, base)
    finished = finish(run, competition, candidates, speeds, shape)
    entries = [entry for entry in run.record["experiments"].values()]
    return AutoResult(plan, look, clock.budget, clock.used(), entries, run.record["views"], finished)


def reopen(workspace: Workspace, record: dict) -> None:
    """A new invocation has a budget of its own: experiments an earlier one stopped are eligible again."""
    for candidate, entry in list(record["experiments"].items()):
        if entry["status"] in ("skipped", "running"):
            if ExperimentDir(workspace.models_dir, entry["experiment"]).exists():
                entry["status"] = "running"
            else:
                del record["experiments"][candidate]


def views_cost(run: Run, candidates: list[Candidate], speeds, shape: Shape, families: list[str]) -> float:
    """Seconds the views check will take (every training image under each view of the base), 0 once found."""
    if run.record["views"] is not None or not families or candidates[0].speed_key not in speeds:
        return 0.0
    from ensemble.inference.tta import parse_policy

    n_views = parse_policy(",".join(families)).n_views
    return shape.n_train * n_views / speeds[candidates[0].speed_key].predict_images_per_second * run.scale


def train_plan(run: Run, competition: Competition, candidates: list[Candidate], speeds, shape: Shape, families: list[str], base) -> None:
    """Train the plan, one experiment at a time, re-planning before each from the time measured so far."""
    entries = run.record["experiments"]
    planned_before: set[str] = set()
    while True:
        plan = run.plan(candidates, speeds, shape, views_cost(run, candidates, speeds, shape, families))
        for name, reason in plan.dropped:
            if entries.get(name, {}).get("status") == "running":  # begun, and its folds left no longer fit
                entries[name]["status"] = "skipped"
                run.tell(Skipped(f"{run.name}-{name}", f"not finished: {reason}; the same command again continues it"))
            elif name in planned_before:  # planned, not begun: the time measured since says it no longer fits
                run.tell(Skipped(f"{run.name}-{name}", f"no longer fits: {reason}"))
        planned_before = {planned.candidate.name for planned in plan.experiments}
        todo = [planned for planned in plan.experiments if entries.get(planned.candidate.name, {}).get("status") != "done"]
        if not todo:
            return
        planned, done = todo[0], sum(entry["status"] == "done" for entry in entries.values())
        run.tell(Status(done, f"{run.name}-{planned.candidate.name}", len(todo) - 1, run.clock.left(), f"{planned.epochs} epochs, about {planned.seconds:.0f}s: {planned.reason}"))
        train_candidate(run, competition, planned.candidate, planned.epochs, speeds, shape, base)
        if run.record["views"] is None and entries[planned.candidate.name]["status"] == "done" and families:
            check_views(run, competition, planned.candidate, families)


# The share of the reserve an experiment may not touch while no experiment has finished.
LAST_RESORT_SHARE = 0.3
# A candidate whose first folds keep less than this share of the first finished experiment's skill
# above chance is abandoned. Measured on the digit competition of benchmarks/task_competitions.py
# (10m): convnext_atto from scratch scored 0.15 on every fold (chance 0.10, the base 0.85) and took
# 3 of the 10 minutes; one fold now tells.
ABANDON_SHARE = 0.25


def train_candidate(run: Run, competition: Competition, candidate: Candidate, epochs: int, speeds, shape: Shape, base) -> None:
    """Every fold of a candidate's experiment, `jobs` at a time, while the next ones fit in the time left."""
    entries, experiment = run.record["experiments"], run.experiment(candidate)
    views = run.record["views"]
    entry = entries.setdefault(candidate.name, {
        "experiment": experiment.name, "candidate": dataclasses.asdict(candidate), "epochs": epochs,
        "augment": "none" if candidate.frozen else recorded_augment(views), "seconds": 0.0, "estimated_seconds": 0.0, "oof_score": None, "status": "running",
    })
    entry["status"] = "running"
    records.save(run.workspace, run.record)  # its epochs and augmentation are fixed before the first fold starts
    settings = candidate_settings(base, candidate, entry["epochs"], entry["augment"])
    given = run.workspace.train_keys | CHOSEN | ({"device"} if run.options.device else set())
    reserve = run.reserve
    if not any(other["status"] == "done" for other in entries.values()):
        # Nothing finished yet: the first experiment may use most of the reserve to finish, since a
        # blend of one member and the report take seconds, and an unfinished one leaves no submission.
        reserve *= LAST_RESORT_SHARE
    starting_over = run.options.force and experiment.name not in run.forced  # --force trains finished folds again too
    left = [fold for fold in range(shape.k) if starting_over or fold not in experiment.done_folds()]
    result = None
    while left:
        speed = speeds[candidate.speed_key]
        if speed.features_once:
            # Linear heads take seconds: every fold in one run. Top stages take a fold's time: a fold at
            # a time, checked against the clock like any experiment's, the features in the first one's estimate.
            # (Started over with --force, all in one run: forced once, the features once.)
            chunk, left = (left, []) if not speed.trained_stages or starting_over else (left[:1], left[1:])
            made = experiment.features_path.is_file() and (not starting_over or experiment.name in run.forced)  # read back: not in the estimate, nor in run.scale
            estimate = experiment_seconds(speed, shape, entry["epochs"], len(chunk), features_made=made)
        else:
            chunk, left = left[: run.executor.jobs], left[run.executor.jobs:]
            estimate = fold_seconds(speed, shape, entry["epochs"])  # the folds of a chunk run side by side
        if estimate * run.scale > run.clock.left() - reserve:
            entry["status"] = "skipped"
            run.tell(Skipped(experiment.name, f"stopped before fold {chunk[0]}: it needs about {estimate * run.scale:.0f}s, "
                                              f"{max(run.clock.left() - reserve, 0):.0f}s are left before the reserve; not blended"))
            break
        force = starting_over  # every chunk: an unforced one keeps the folds an earlier run finished
        started = time.perf_counter()
        try:
            result = train_experiment(run.workspace, experiment.name, settings, chunk, force, run.progress, run.executor, given)
        except EnsError as error:
            entry["status"] = "skipped"
            run.tell(Skipped(experiment.name, str(error)))
            break
        finally:
            seconds = time.perf_counter() - started
            entry["seconds"] = round(entry["seconds"] + seconds, 2)
            records.save(run.workspace, run.record)
        run.forced.add(experiment.name)
        run.measured.append((seconds, estimate))
        entry["estimated_seconds"] = round(entry["estimated_seconds"] + estimate, 2)
        why = learns_too_little(run, candidate, result)
        if left and why:
            entry["status"] = "abandoned"
            run.tell(Skipped(experiment.name, f"abandoned after fold {chunk[-1]}: {why}; its time goes to the others"))
            break
    if experiment.is_complete():
        if result is None:  # finished by an earlier run
            result = train_experiment(run.workspace, experiment.name, settings, None, False, None, run.executor, given)
        entry.update(status="done", oof_score=result.oof_score)
        run.tell(ExperimentDone(experiment.name, entry["epochs"], entry["augment"], entry["seconds"], entry["estimated_seconds"], result.oof_score, result.metric))
    records.save(run.workspace, run.record)


def learns_too_little(run: Run, candidate: Candidate, result) -> str | None:
    """Why `candidate`'s folds so far are not worth finishing, or None: they keep less than
    ABANDON_SHARE of the first finished experiment's skill above chance (the chance score the
    views check measured on that experiment's OOF). None while either is unknown."""
    entries, views = run.record["experiments"], run.record["views"]
    base = next((entry for name, entry in entries.items() if entry["status"] == "done" and name != candidate.name), None)
    scores = [score for score in result.fold_scores if score is not None]
    if base is None or base["oof_score"] is None or not views or not views["verdicts"] or not scores:
        return None
    metric, chance = metrics.get(views["metric"]), views["verdicts"][0]["chance"]
    sign = 1.0 if metric.greater_is_better else -1.0
    skill = sign * (base["oof_score"] - chance)
    mean = float(np.mean(scores))
    kept = sign * (mean - chance) / skill if skill > 0 else 1.0
    if kept >= ABANDON_SHARE:
        return None
    return (
        f"{metric.name} {mean:.4f} keeps {max(kept, 0):.0%} of {base['experiment']}'s skill above chance "
        f"({base['oof_score']:.4f}, chance {chance:.4f}; below {ABANDON_SHARE:.0%})"
    )


def check_views(run: Run, competition: Competition, candidate: Candidate, families: list[str]) -> None:
    started = time.perf_counter()
    folds = read_folds(run.workspace, competition)
    views: Views = find_views(run.workspace, competition, folds, run.experiment(candidate), families, started)
    run.record["views"] = {
        "experiment": views.experiment, "seconds": round(views.seconds, 2), "safe": views.safe, "spec": views.spec,
        "augment": views.augment, "tta": views.tta,
        "metric": metrics.get(competition.metric).name, "verdicts": [dataclasses.asdict(verdict) for verdict in views.verdicts],
    }
    records.save(run.workspace, run.record)
    run.tell(views)

