"""`ens blend`: fit a blend method on cached OOF logits, score it, write the submission.

Both output files are computed in full before either is written, and each is written
atomically; existing outputs are only replaced with force.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ensemble import metrics, store
from ensemble.blend import METHODS
from ensemble.blend.members import load_members, resolve_names
from ensemble.competition import load_competition
from ensemble.config import Workspace
from ensemble.errors import EnsError
from ensemble.submission import submission_frame, to_csv_text


@dataclass(frozen=True)
class BlendResult:
    """member_scores: each member's OOF score, in the order of names; left_out: experiments
    not blended by default because some of their folds are not trained."""

    name: str
    method: str
    metric: str
    names: list[str]
    member_scores: list[float]
    weights: list[float]
    oof_score: float
    csv_path: Path
    json_path: Path
    left_out: list[str]
    kind: str  # the submission kind written: labels, probabilities, ...


def blend_experiments(
    workspace: Workspace,
    name: str,
    method: str = "mean",
    experiments: list[str] | None = None,
    force: bool = False,
) -> BlendResult:
    store.check_name(name, "blend")
    blender_class = METHODS.get(method)
    csv_path = workspace.submissions_dir / f"{name}.csv"
    json_path = workspace.submissions_dir / f"{name}.json"
    for path in (csv_path, json_path):
        if path.exists() and not force:
            raise EnsError(f"{path}: already exists; use --force to replace it")
    competition = load_competition(workspace, check_images=False)
    metric = metrics.get(competition.settings.metric)
    names, left_out = resolve_names(workspace.models_dir, experiments)
    members = load_members(workspace.models_dir, competition, names)

    blender = blender_class().fit(members.oof, competition.targets)
    oof_score = metric.score(competition.targets, blender.predict_proba(members.oof))
    member_scores = [metric.score(competition.targets, metrics.softmax(oof)) for oof in members.oof]
    test_probs = blender.predict_proba(members.test)[store.positions(competition.test_ids, competition.sample[competition.settings.id_column])]
    frame = submission_frame(competition.sample, competition.settings.id_column, competition.submission_shape, competition.submission_kind, test_probs)
    csv_text = to_csv_text(frame)
    result = BlendResult(
        name=name,
        method=method,
        metric=metric.name,
        names=names,
        member_scores=member_scores,
        weights=[float(weight) for weight in blender.weights_],
        oof_score=oof_score,
        csv_path=csv_path,
        json_path=json_path,
        left_out=left_out,
        kind=competition.submission_kind,
    )
    store.write_text(csv_path, csv_text)
    store.write_json(
        json_path,
        {
            "name": name,
            "method": method,
            "params": blender.get_params(),
            "metric": metric.name,
            "oof_score": oof_score,
            "members": [
                {"name": member, "weight": weight, "oof_score": score}
                for member, weight, score in zip(names, result.weights, member_scores)
            ],
            "submission": {"path": csv_path.name, "kind": competition.submission_kind, "rows": len(competition.sample)},
            "train_sha256": competition.train_hash,
        },
    )
    return result
