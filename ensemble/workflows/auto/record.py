"""ens auto's record, auto/NAME.json in the workspace: every choice made so far, written
atomically after each one, so that a rerun of the same command continues where a stopped one
left (the candidates, the measured speeds, each started experiment's epochs and augmentation,
the views found) and the submission's JSON can say how it was made.

Fields: name; settings ([auto], resolved); look; candidates; speeds {speed_key: Speed};
experiments {candidate: {experiment, epochs, augment, seconds, estimated_seconds, oof_score, status}},
status one of running, done, skipped (out of time; a rerun may continue it), abandoned (its first
folds learnt too little, run.learns_too_little: never planned again);
views (None until found); plan (the latest); runs (one entry per invocation: budget, time used).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from ensemble.config import Workspace
from ensemble.errors import EnsError
from ensemble.io import read_json, write_json
from ensemble.workflows.auto.plan import Plan, Speed
from ensemble.workflows.auto.portfolio import Candidate

FORMAT = 1


def record_path(workspace: Workspace, name: str) -> Path:
    return workspace.root / "auto" / f"{name}.json"


def fresh(name: str, settings: dict) -> dict:
    return {"format": FORMAT, "name": name, "settings": settings, "look": None, "candidates": None, "speeds": {}, "experiments": {}, "views": None, "plan": None, "runs": []}


def load(workspace: Workspace, name: str) -> dict | None:
    path = record_path(workspace, name)
    if not path.is_file():
        return None
    try:
        document = read_json(path)
    except EnsError:
        raise EnsError(f"{path}: not readable as ens auto's record; run `ens auto --name {name} --force` to start over") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise EnsError(f"{path}: written by another version of ens auto; run `ens auto --name {name} --force` to start over")
    return document


def save(workspace: Workspace, record: dict) -> None:
    write_json(record_path(workspace, record["name"]), record)


def remove(workspace: Workspace, name: str) -> None:
    path = record_path(workspace, name)
    if path.is_file():
        path.unlink()
    if path.parent.is_dir() and not any(path.parent.iterdir()):
        shutil.rmtree(path.parent)


def candidates_of(record: dict) -> list[Candidate]:
    return [Candidate(**renamed(fields)) for fields in record["candidates"]]


def renamed(fields: dict) -> dict:
    """A recorded candidate's fields as Candidate names them: a record of the first top-stages
    candidates (one commit of 2026-11-30) called top_blocks train_blocks."""
    fields = dict(fields)
    if "train_blocks" in fields:
        fields["top_blocks"] = max(fields.pop("train_blocks"), 0) if fields.get("frozen") else 0
    return fields


def speeds_of(record: dict) -> dict[str, Speed]:
    return {key: Speed(**fields) for key, fields in record["speeds"].items()}


def plan_document(plan: Plan, prefix: str) -> dict:
    return {
        "seconds_left": round(plan.seconds_left, 1),
        "reserve_seconds": round(plan.reserve_seconds, 1),
        "experiments": [
            {"experiment": f"{prefix}-{planned.candidate.name}", "candidate": dataclasses.asdict(planned.candidate), "epochs": planned.epochs,
             "estimated_seconds": round(planned.seconds, 1), "reason": planned.reason}
            for planned in plan.experiments
        ],
        "dropped": [{"candidate": name, "reason": reason} for name, reason in plan.dropped],
        "notes": list(plan.notes),
    }
