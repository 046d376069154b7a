"""`ens audit` with CNN embeddings: from a trained experiment's fold model or a weights file, computed
on the torch side (inference/embeddings.py) and handed to the torch-free audit (results/audit) as
plain arrays. Without either, the audit runs on thumbnails alone and torch is never imported."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ensemble.config import Workspace, override
from ensemble.data.competition import Competition
from ensemble.errors import EnsError
from ensemble.results.audit import DEFAULT_EMBEDDING_THRESHOLD, DEFAULT_THRESHOLD, AuditResult, Embeddings, run_audit


def audit(
    workspace: Workspace,
    threshold: float | None = None,
    force: bool = False,
    experiment: str | None = None,
    pretrained: Path | None = None,
    model: str | None = None,
    embedding_threshold: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> AuditResult:
    """run_audit, with the embeddings of `experiment`'s fold 0 model or of `model` with the weights
    file `pretrained` (model: the workspace's train model when None) when one is named."""
    if experiment and pretrained:
        raise EnsError("--experiment and --pretrained: give one; both name where the embeddings come from")
    if model and not pretrained:
        raise EnsError("--model names the architecture of a --pretrained weights file; give --pretrained FILE too")
    if embedding_threshold is not None and not (experiment or pretrained):
        raise EnsError("--embedding-threshold: there are no embeddings to judge; give --experiment NAME or --pretrained FILE")
    embed = None
    if experiment:
        embed = experiment_embed(workspace, experiment)
    elif pretrained:
        embed = pretrained_embed(workspace, Path(pretrained), model)
    return run_audit(
        workspace,
        DEFAULT_THRESHOLD if threshold is None else threshold,
        force,
        progress,
        embed,
        DEFAULT_EMBEDDING_THRESHOLD if embedding_threshold is None else embedding_threshold,
    )


def experiment_embed(workspace: Workspace, name: str) -> Callable[[Competition], Embeddings]:
    def embed(competition: Competition) -> Embeddings:
        from ensemble.inference.embeddings import experiment_embeddings

        found = experiment_embeddings(workspace, competition, name, workspace.train.device)
        return Embeddings(found.train, found.test, found.source)

    return embed


def pretrained_embed(workspace: Workspace, weights_file: Path, model: str | None) -> Callable[[Competition], Embeddings]:
    """The weights file's embeddings at the workspace's train size ("auto": as train-folds settles it)."""

    def embed(competition: Competition) -> Embeddings:
        from ensemble.inference.embeddings import pretrained_embeddings
        from ensemble.training.preflight import resolve

        source = weights_file if str(weights_file) == "timm" else weights_file.expanduser().resolve()
        if str(source) != "timm" and not source.is_file():
            raise EnsError(f"--pretrained {weights_file}: file not found")
        settings = resolve(workspace, override(workspace.train, model=model or workspace.train.model, pretrained=""), competition)
        found = pretrained_embeddings(workspace, competition, source, settings.model, settings.size, workspace.train.device)
        return Embeddings(found.train, found.test, found.source)

    return embed
