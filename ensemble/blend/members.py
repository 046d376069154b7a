"""Loading cached experiments as blend members, aligned by id to the competition's order.

Members are matched on ids, never on row positions: an experiment whose ids or classes
differ from the competition (or from each other) is refused with the file and first id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensemble import store
from ensemble.competition import Competition
from ensemble.errors import EnsError
from ensemble.scores import stale_reason


@dataclass(frozen=True)
class Members:
    """oof: float32 (n_models, n_train, n_classes) in train.csv order;
    test: float32 (n_models, n_test, n_classes) in test.csv order."""

    names: list[str]
    oof: np.ndarray
    test: np.ndarray


def complete_experiments(models_dir: Path) -> list[str]:
    return [name for name in store.experiment_names(models_dir) if store.ExperimentDir(models_dir, name).is_complete()]


def resolve_names(models_dir: Path, experiments: list[str] | None) -> tuple[list[str], list[str]]:
    """(members, left out): the names given, or when none are, every experiment with all
    folds done, and those left out for missing folds."""
    if experiments:
        if len(set(experiments)) != len(experiments):
            raise EnsError(f"--experiments: a name is given twice: {', '.join(experiments)}")
        return experiments, []
    names = complete_experiments(models_dir)
    if not names:
        raise EnsError(f"{models_dir}: no experiment with all folds trained; run `ens train-folds` first")
    return names, [name for name in store.experiment_names(models_dir) if name not in names]


def aligned(logits: store.Logits, path: Path, ids: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """logits.values reordered to `ids`; refused when the ids or the classes differ."""
    if logits.classes != classes:
        raise EnsError(f"{path}: classes {list(logits.classes)[:5]} differ from the competition's {list(classes)[:5]}")
    try:
        rows = store.positions(logits.ids, ids)
    except KeyError as missing:
        raise EnsError(f"{path}: no logits for id {str(missing.args[0])!r}") from None
    if len(logits.ids) != len(ids):
        extra = sorted(set(logits.ids) - set(ids))
        raise EnsError(f"{path}: id {str(extra[0])!r} is not in the competition ({len(extra)} extra ids)")
    return logits.values[rows]


def load_members(models_dir: Path, competition: Competition, names: list[str]) -> Members:
    oof, test = [], []
    for name in names:
        experiment = store.open_experiment(models_dir, name)
        if not experiment.is_complete():
            raise EnsError(
                f"{experiment.root}: not every fold is trained (done: {experiment.done_folds()}); "
                f"run `ens train-folds --name {name}` again to finish it"
            )
        stale = stale_reason(experiment, competition)
        if stale:
            raise EnsError(f"{experiment.root}: {stale}")
        for path, ids, into in ((experiment.oof_path, competition.train_ids, oof), (experiment.test_path, competition.test_ids, test)):
            into.append(aligned(store.load_logits(path), path, ids, competition.classes))
    return Members(names=list(names), oof=np.stack(oof), test=np.stack(test))
