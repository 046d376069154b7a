"""ens auto's finish: TTA members from the views that keep labels, blends picked by their
out-of-fold score, the submission with every choice in its JSON, and the report.

TTA members are ordinary experiments (`ens predict -n X --tta VIEWS --as X-tta`), made while
the time left allows, the most valuable member first. Every blend method that applies to the
task kind is fitted on the same members; each is scored out of fold (a blend fit on the other
folds scores each fold), never in sample, and the best of those scores makes NAME.csv.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ensemble import metrics
from ensemble.blend.run import BlendResult, blend_experiments
from ensemble.data.competition import Competition
from ensemble.errors import EnsError
from ensemble.inference.predict import predict_experiment
from ensemble.inference.tta import parse_policy
from ensemble.results.report import write_report
from ensemble.workflows.auto import record as records
from ensemble.workflows.auto.events import BlendScored, Skipped, Status
from ensemble.workflows.auto.plan import Shape, tta_seconds
from ensemble.workflows.auto.views import recorded_tta

# The methods tried, in the order printed; a method the task kind refuses is skipped with its reason.
METHODS = ("hill", "weighted", "stack")


@dataclass(frozen=True)
class Finished:
    """members: the experiments blended; blends: {method: out-of-fold score, or the refusal};
    chosen: the submission's blend."""

    members: list[str]
    tta_members: list[str]
    blends: dict
    chosen: BlendResult
    report: str | None


def finish(run, competition: Competition, candidates, speeds, shape: Shape) -> Finished:
    entries = run.record["experiments"]
    order = [candidate for candidate in candidates if entries.get(candidate.name, {}).get("status") == "done"]
    members = [entries[candidate.name]["experiment"] for candidate in order]
    if not members:
        records.save(run.workspace, run.record)
        raise EnsError(
            f"no experiment finished every fold within --time-limit {run.settings.time_limit} "
            f"({run.clock.used():.0f}s used); the plan and measured speeds are in {records.record_path(run.workspace, run.name)}; "
            "give a longer --time-limit (the same command continues the plan)"
        )
    tta_members = add_tta(run, order, speeds, shape)
    blends, results = {}, {}
    metric = metrics.get(competition.metric)
    for method in METHODS:
        run.tell(Status(len(members), f"blend {method}", len(METHODS) - len(blends) - 1, run.clock.left(), "scored out of fold"))
        try:
            results[method] = blend_experiments(run.workspace, f"{run.name}-{method}", method, members + tta_members, force=True)
            blends[method] = {"oof_score": results[method].oof_score, "oof_score_in_sample": results[method].oof_score_in_sample}
            run.tell(BlendScored(method, results[method].oof_score))
        except EnsError as error:
            blends[method] = {"refused": str(error)}
            run.tell(BlendScored(method, None, str(error)))
    if not results:
        raise EnsError(f"no blend method applies: {'; '.join(blend['refused'] for blend in blends.values())}")
    best = choose(results, metric)
    run.record["chosen_blend"] = {"method": best, "oof_score": results[best].oof_score, "members": members + tta_members, "by": "out-of-fold blend score"}
    run.record["blends"] = blends
    run.record["runs"][-1].update(seconds_used=round(run.clock.used(), 1))
    made_by = made_by_record(run, members + tta_members, best)
    chosen = blend_experiments(run.workspace, run.name, best, members + tta_members, force=True, made_by=made_by)
    records.save(run.workspace, run.record)
    report = write_report(run.workspace).path
    return Finished(members, tta_members, blends, chosen, str(report))


def choose(results: dict[str, BlendResult], metric: metrics.Metric) -> str:
    """The method with the best out-of-fold score; the first listed wins a tie."""
    best = next(iter(results))
    for method, result in results.items():
        if metric.better(result.oof_score, results[best].oof_score):
            best = method
    return best


def add_tta(run, order, speeds, shape: Shape) -> list[str]:
    """A TTA member for each finished experiment under the safe views, while the time left allows.
    Half the reserve stays for blends and the report."""
    views = run.record["views"]
    spec = recorded_tta(views)
    if spec == "none":
        return []
    n_views = parse_policy(spec).n_views
    made = []
    for candidate in order:
        source = run.record["experiments"][candidate.name]["experiment"]
        name = f"{source}-tta"
        estimate = tta_seconds(speeds[candidate.speed_key], shape, n_views) * run.scale
        if estimate > run.clock.left() - run.settings.reserve * run.clock.budget / 2:
            run.tell(Skipped(name, f"TTA needs about {estimate:.0f}s; {max(run.clock.left(), 0):.0f}s left keep the blends in budget"))
            continue
        run.tell(Status(len(made), f"TTA {name}", len(order) - len(made) - 1, run.clock.left(), f"views {spec}: they keep labels"))
        started = time.perf_counter()
        try:
            predict_experiment(run.workspace, source, name, spec, None, run.options.device, False, run.options.force, run.progress)
        except EnsError as error:
            run.tell(Skipped(name, str(error)))
            continue
        run.record.setdefault("tta", {})[name] = {"source": source, "views": spec, "seconds": round(time.perf_counter() - started, 2)}
        records.save(run.workspace, run.record)
        made.append(name)
    return made


def made_by_record(run, members: list[str], method: str) -> dict:
    """Every choice, and the ordinary ens commands that redo each part by hand."""
    record = run.record
    commands = []
    for entry in record["experiments"].values():
        candidate = entry["candidate"]
        flags = [f"--model {candidate['model']}", f"--size {candidate['size']}", f"--epochs {entry['epochs']}", f"--seed {candidate['seed']}",
                 f"--augment {entry['augment']}", "--tta none"]
        flags += [f"--attention {candidate['attention']}"] if candidate["attention"] != "none" else []
        flags += [f"--pretrained {candidate['pretrained']}"] if candidate["pretrained"] else []
        # A candidate recorded before frozen ones has no key; a frozen one overrides [train]'s mixing and EMA (probe.candidate_settings).
        flags += ["--frozen-features", "--mixup 0", "--cutmix 0", "--ema 0"] if candidate.get("frozen") else []
        top_blocks = records.renamed(candidate).get("top_blocks", 0)
        flags += [f"--top-blocks {top_blocks}"] if top_blocks > 0 else []
        commands.append(f"ens train-folds -n {entry['experiment']} {' '.join(flags)}")
    for name, tta in record.get("tta", {}).items():
        commands.append(f"ens predict -n {tta['source']} --tta {tta['views']} --as {name}")
    commands.append(f"ens blend -n {run.name} --method {method} --experiments {','.join(members)}")
    return {
        "tool": "ens auto",
        "settings": record["settings"],
        "budget_seconds": run.clock.budget,
        "seconds_used": round(run.clock.used(), 1),
        "look": record["look"],
        "speeds": record["speeds"],
        "plan": record["plan"],
        "experiments": record["experiments"],
        "views": record["views"],
        "tta": record.get("tta", {}),
        "blends": record.get("blends", {}),
        "chosen_blend": record.get("chosen_blend"),
        "runs": record["runs"],
        "commands": commands,
        "record": str(records.record_path(run.workspace, run.name).relative_to(run.workspace.root)),
    }

