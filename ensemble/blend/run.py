"""`ens blend`: fit a blend method on cached OOF logits, score it in and out of fold, write
the submission.

Three files make a submission: NAME.oof.npz (the blend's OOF outputs: probabilities, or a
regression's values), NAME.csv and NAME.json. All are computed in full, written to
temporaries, then renamed with the JSON last, recording the other two's sha256: a CSV without
its JSON, or one the JSON does not name (a kill between the renames, or a hand edit), counts
as not written: the report leaves it out. Only files without a JSON are replaced unasked; a JSON whose files disagree needs
--force, as any existing blend does. A rerun first removes the temporaries a killed one left.

Every task kind goes through the same steps; the blenders take the kind (kinds.py), methods
that do not apply to it are refused before anything is read, and a multi-label blend on a
metric of decisions always tunes its threshold (thresholds.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ensemble import metrics
from ensemble.artifacts import locks, store
from ensemble.blend import METHODS, kinds
from ensemble.blend.base import Blender
from ensemble.blend.members import Members, distilled, fold_test_logits, load_members, member_files, resolve_names
from ensemble.blend.nested import fit, out_of_fold_probabilities
from ensemble.blend.recorded import record as record_fitted
from ensemble.blend.stack import StackBlender
from ensemble.blend.thresholds import DECISIONS, ThresholdTuned
from ensemble.blend.weighted import SQUARED_ERROR
from ensemble.config import Workspace
from ensemble.data.competition import Competition, load_competition
from ensemble.data.submission import submission_frame, to_csv_text
from ensemble.errors import EnsError
from ensemble.io import group_complete, npz_bytes, remove_temporaries, sha256_file, write_group


@dataclass(frozen=True)
class BlendResult:
    """member_scores: each member's OOF score, in the order of names; weights: None for a
    stacker; oof_score_in_sample: the blend fit and scored on all OOF rows; oof_score: out
    of fold (each fold scored by a blend fit on the other folds), the honest one; optimised:
    the metric the fit minimised when it is not `metric`, else None; left_out: experiments
    not blended by default, and why; thresholds: a multi-label blend's tuned thresholds (one
    for every tag, or {tag: threshold}), None when none was tuned."""

    name: str
    method: str
    metric: str
    names: list[str]
    member_scores: list[float]
    weights: list[float] | None
    oof_score_in_sample: float
    oof_score: float
    optimised: str | None
    kind: str
    csv_path: Path
    json_path: Path
    oof_path: Path
    left_out: dict[str, str]
    notes: list[str] = field(default_factory=list)  # what the user should know about this blend's submission
    thresholds: float | dict[str, float] | None = None


def submission_notes(method: str, kind: str, thresholds: float | dict | None) -> list[str]:
    """Per-class ranks are spread evenly over rows, so the argmax of a rank blend picks each
    class about equally often, whatever the class frequencies; per-tag ranks are shares of
    rows, so a threshold on them gives each tag to a share of the images. Probability columns
    of a tuned multi-label blend are moved so that 0.5 decides as the thresholds did."""
    notes = []
    if method == "rank" and kind == "labels":
        notes.append(
            "rank blends per-class ranks, and labels taken from them lean toward equal class counts; "
            "for a labels submission prefer --method mean, weighted or hill"
        )
    if method == "rank" and kind == "tags":
        notes.append(
            "rank blends per-tag ranks, shares of rows rather than probabilities, and a threshold on them gives each tag "
            "to a share of the images; for a tags submission prefer --method mean, weighted or hill"
        )
    if kind == "probabilities" and thresholds is not None:
        notes.append("the probability columns are moved by the tuned thresholds: a tag's is above 0.5 exactly where it passes its threshold")
    return notes


def distilled_notes(names: list[str]) -> list[str]:
    if not names:
        return []
    return [
        f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} distilled: {'its' if len(names) == 1 else 'their'} OOF logits read a little "
        "optimistic (the teacher's OOF outputs came from models that trained on the held-out rows), and the blend's fit trusts them"
    ]


def option_flag(param: str) -> str:
    return "--" + param.replace("_", "-")


def make_blender(method: str, metric: str, options: dict, tune_thresholds: bool, task: str = "single_label") -> Blender:
    """The blender for `method` on a competition of the task kind `task`, refusing a method
    that does not apply to the kind and options the method does not take (the CLI passes only
    the options the user gave). `metric` goes to the methods that take one. Decisions are
    tuned with --tune-thresholds, and always where the kind has a shared threshold and the
    metric scores decisions (a multi-label blend on F1: one threshold for every tag)."""
    blender_class = METHODS.get(method)
    kind = kinds.get(task)
    if kind.name in blender_class.refused:
        others = [name for name in METHODS.names() if kind.name not in METHODS.get(name).refused]
        raise EnsError(f"{blender_class.refused[kind.name]}; for {kind.noun} use --method {', '.join(others)}")
    params = blender_class().get_params()
    for option in options:
        if option not in params or option in ("metric", "task"):
            takers = [name for name in METHODS.names() if option in METHODS.get(name)().get_params()]
            raise EnsError(f"{option_flag(option)} does not apply to --method {method}; it applies to: {', '.join(takers)}")
    blender = blender_class(**options, **({"metric": metric} if "metric" in params else {}), task=kind.name).check_params()
    shared = kind.name in DECISIONS and DECISIONS.get(kind.name).shared
    if tune_thresholds or (shared and metrics.get(metric).thresholded):
        return ThresholdTuned(blender, metric, per_column=tune_thresholds or not shared).check_params()
    return blender


def test_probabilities(blender: Blender, workspace: Workspace, competition: Competition, members: Members) -> np.ndarray:
    """float64 (n_test, n_classes) in test.csv order."""
    if not blender.applies_per_fold_model:
        return blender.predict_proba(members.test)
    per_fold = [blender.predict_proba(logits) for logits in fold_test_logits(workspace.models_dir, competition, members.names)]
    return np.mean(per_fold, axis=0)


def blend_experiments(
    workspace: Workspace,
    name: str,
    method: str = "mean",
    experiments: list[str] | None = None,
    force: bool = False,
    metric: str | None = None,
    options: dict | None = None,
    tune_thresholds: bool = False,
    made_by: dict | None = None,
) -> BlendResult:
    """Blend `experiments` (default: every finished one on the shared folds) with `method` and
    write submissions/NAME.csv, .oof.npz and .json. Two processes never write one name at once.

    made_by: what made the blend (`ens auto`'s record of its choices), kept in NAME.json under "made_by"."""
    store.check_name(name, "blend")
    busy = f"{workspace.submissions_dir / name}: is being written by another ens blend"
    with locks.hold(workspace.submissions_dir / ".locks" / f"{name}.lock", busy):
        return write_blend(workspace, name, method, experiments, force, metric, options, tune_thresholds, made_by)


def write_blend(
    workspace: Workspace,
    name: str,
    method: str,
    experiments: list[str] | None,
    force: bool,
    metric: str | None,
    options: dict | None,
    tune_thresholds: bool,
    made_by: dict | None = None,
) -> BlendResult:
    csv_path, json_path, oof_path = (workspace.submissions_dir / f"{name}{suffix}" for suffix in (".csv", ".json", ".oof.npz"))
    if json_path.exists() and not force:
        if group_complete(json_path):
            raise EnsError(f"{json_path}: already exists; use --force to replace {name}.csv and {name}.json")
        # Cut short while replacing an earlier blend, or edited by hand since: either way not ours to replace unasked.
        raise EnsError(
            f"{json_path}: {name}'s files do not agree with it (a write cut short, or a file edited since); "
            f"use --force to write {name} again"
        )
    competition = load_competition(workspace, check_images=False)
    scorer = competition.task.check_metric(metric, "--metric") if metric else metrics.get(competition.metric)
    blender = make_blender(method, scorer.name, options or {}, tune_thresholds, competition.task.name)
    names, left_out = resolve_names(workspace.models_dir, competition, experiments)
    members = load_members(workspace.models_dir, competition, names)
    targets = competition.targets

    fit(blender, members.oof, targets, members.fold_of)
    in_sample = blender.predict_proba(members.oof)
    out_of_fold = out_of_fold_probabilities(blender, members.oof, targets, members.fold_of)
    member_scores = [scorer.score(targets, competition.task.outputs(oof)) for oof in members.oof]
    test_probs = test_probabilities(blender, workspace, competition, members)
    rows = store.positions(competition.test_ids, competition.sample[competition.settings.id_column])
    frame = submission_frame(competition.sample, competition.settings.id_column, competition.submission_shape, competition.submission_kind, test_probs[rows])
    optimised = getattr(blender, "optimised_", None)
    if optimised == scorer.name or {optimised, scorer.name} <= set(SQUARED_ERROR):  # least squares is the metric's own fit
        optimised = None
    weights = None if blender.weights_ is None else [float(weight) for weight in blender.weights_]
    decisions = tuned_decisions(blender, competition)
    result = BlendResult(
        name=name,
        method=method,
        metric=scorer.name,
        names=names,
        member_scores=member_scores,
        weights=weights,
        oof_score_in_sample=scorer.score(targets, in_sample),
        oof_score=scorer.score(targets, out_of_fold),
        optimised=optimised,
        kind=competition.submission_kind,
        csv_path=csv_path,
        json_path=json_path,
        oof_path=oof_path,
        left_out=left_out,
        notes=submission_notes(method, competition.submission_kind, decisions["thresholds"]) + distilled_notes(distilled(workspace.models_dir, names)),
        thresholds=decisions["thresholds"],
    )
    document = describe(result, blender, competition, members, workspace) | ({"made_by": made_by} if made_by else {})
    oof_archive = npz_bytes(
        ids=np.asarray(competition.train_ids, dtype=str),
        classes=np.asarray(competition.classes, dtype=str),
        probs=out_of_fold.astype(np.float32),
        in_sample_probs=in_sample.astype(np.float32),
        fold=members.fold_of,
    )
    remove_temporaries([csv_path, oof_path, json_path])
    # NAME.json last: it marks the submission written, with the others' hashes.
    write_group({csv_path: to_csv_text(frame).encode(), oof_path: oof_archive}, json_path, document)
    return result


def tuned_decisions(blender: Blender, competition: Competition) -> dict:
    """{"tuned_biases": a list per class or None, "thresholds": one threshold, {tag: threshold}, or None}."""
    recorded = {"tuned_biases": None, "thresholds": None}
    if isinstance(blender, ThresholdTuned):
        key, value = blender.recorded(competition.classes)
        recorded[key] = value
    return recorded


def describe(result: BlendResult, blender: Blender, competition: Competition, members: Members, workspace: Workspace) -> dict:
    """The submission's JSON: how it was made, how good it is, and from which inputs."""
    tuned = isinstance(blender, ThresholdTuned)
    base = blender.blender_ if tuned else blender
    inputs = {}
    for member in result.names:
        inputs[member] = {name: sha256_file(path) for name, path in member_files(workspace.models_dir, member).items()}
    weights = result.weights or [None] * len(result.names)
    return {
        "name": result.name,
        "method": result.method,
        "task": competition.task.name,
        "params": base.get_params(),
        "meta_learner": base.meta_text() if isinstance(base, StackBlender) else None,
        "fitted": record_fitted(blender, result.method),  # every fitted number: `ens predict --blend` applies it with no refit
        **tuned_decisions(blender, competition),
        "metric": result.metric,
        "optimised": result.optimised or result.metric,
        "oof_score": result.oof_score,
        "oof_score_out_of_fold": result.oof_score,
        "oof_score_in_sample": result.oof_score_in_sample,
        "members": [
            {"name": member, "weight": weight, "oof_score": score}
            for member, weight, score in zip(result.names, weights, result.member_scores)
        ],
        "left_out": result.left_out,
        "submission": {"path": result.csv_path.name, "kind": result.kind, "rows": len(competition.sample)},
        "oof": result.oof_path.name,
        "train_sha256": competition.train_hash,
        "inputs_sha256": inputs,
    }
