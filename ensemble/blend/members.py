"""Loading cached experiments as blend members, aligned by id to the competition's order.

Members are matched on ids, never on row positions: an experiment whose ids or classes
differ from the competition (or from each other) is refused with the file and first id.

A member is an experiment (`r18`) or one TTA view of one (`r18-d4:hflip`; `r18-d4:*` is every
view), read from the fold<k>/views.npz that `ens predict --keep-views` writes, so that a blend
can weigh views as it weighs models. A view's OOF logits come from the fold models that did
not see the rows, and its test logits are the mean over fold models, as an experiment's are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ensemble.artifacts import store
from ensemble.artifacts.scores import check_usable, stale_reason, unfinished_reason
from ensemble.data.competition import Competition
from ensemble.errors import EnsError
from ensemble.io import read_json, read_npz


@dataclass(frozen=True)
class Members:
    """oof: float32 (n_models, n_train, n_classes) in train.csv order;
    test: float32 (n_models, n_test, n_classes) in test.csv order;
    fold_of: int (n_train,), the fold whose models produced each OOF row (the same for every member)."""

    names: list[str]
    oof: np.ndarray
    test: np.ndarray
    fold_of: np.ndarray


VIEW_MARK = ":"  # experiment names cannot hold it (store.check_name); view names may ("scale:1.1")


def split_member(name: str) -> tuple[str, str | None]:
    """'r18-d4:hflip' -> ('r18-d4', 'hflip'); 'r18' -> ('r18', None)."""
    experiment, mark, view = name.partition(VIEW_MARK)
    return experiment, view if mark else None


def read_views(experiment: store.ExperimentDir, fold: int) -> dict[str, np.ndarray]:
    """One fold's views.npz (predict.views_arrays), whole."""
    path = experiment.views_path(fold)
    if not path.is_file():
        raise EnsError(
            f"{path}: no per-view logits; `ens predict --name {experiment.name} --tta SPEC --as NEW --keep-views` keeps them, "
            "and NEW:VIEW is then a member"
        )
    return read_npz(path, "per-view logits", ("views", "classes", "oof_ids", "oof", "test_ids", "test"))


def view_logits(experiment: store.ExperimentDir, fold: int, view: str) -> tuple[store.Logits, store.Logits, Path]:
    """(held-out rows' logits, test logits, the file) of one view of one fold model."""
    archive = read_views(experiment, fold)
    names = archive["views"].astype(str).tolist()
    if view not in names:
        raise EnsError(f"{experiment.views_path(fold)}: no view {view!r}; it has {', '.join(names)}")
    index, classes = names.index(view), tuple(archive["classes"].astype(str).tolist())
    oof = store.Logits(archive["oof_ids"].astype(str), classes, archive["oof"][index])
    return oof, store.Logits(archive["test_ids"].astype(str), classes, archive["test"][index]), experiment.views_path(fold)


def expand_views(models_dir: Path, names: list[str]) -> list[str]:
    """Each 'EXP:*' replaced by one member per view kept in EXP's fold 0."""
    expanded = []
    for name in names:
        experiment_name, view = split_member(name)
        if view != "*":
            expanded.append(name)
            continue
        archive = read_views(store.open_experiment(models_dir, experiment_name), 0)
        expanded += [f"{experiment_name}{VIEW_MARK}{each}" for each in archive["views"].astype(str).tolist()]
    return expanded


def member_files(models_dir: Path, name: str) -> dict[str, Path]:
    """The files a member's logits are read from, by their path in the experiment (a blend records their hashes)."""
    experiment_name, view = split_member(name)
    experiment = store.ExperimentDir(models_dir, experiment_name)
    paths = [experiment.oof_path, experiment.test_path] if view is None else [experiment.views_path(fold) for fold in experiment.done_folds()]
    return {str(path.relative_to(experiment.root)): path for path in paths}


def distilled(models_dir: Path, names: list[str]) -> list[str]:
    """The members trained with --distill: their OOF scores read a little high (README, Teacher and student)."""
    found = []
    for name in names:
        settings = read_json(store.ExperimentDir(models_dir, split_member(name)[0]).settings_path)
        if (settings.get("teacher") or {}).get("distill"):
            found.append(name)
    return found


def complete_experiments(models_dir: Path) -> list[str]:
    return [name for name in store.experiment_names(models_dir) if store.ExperimentDir(models_dir, name).is_complete()]


def fold_assignment(experiment: store.ExperimentDir, competition: Competition) -> np.ndarray:
    """int (n_train,): the fold of each train row, read from the experiment's own per-fold
    OOF files (folds.csv may have been made again since it was trained)."""
    fold_of = np.full(len(competition.train_ids), -1, dtype=np.int64)
    for fold in experiment.done_folds():
        path = experiment.fold_oof_path(fold)
        ids = read_npz(path, "logits", ("ids",))["ids"].astype(str)
        try:
            fold_of[store.positions(competition.train_ids, ids)] = fold
        except KeyError as missing:
            raise EnsError(f"{path}: id {str(missing.args[0])!r} is not in {competition.train_csv.name}") from None
    if (fold_of < 0).any():
        missing = competition.train_ids[np.argmax(fold_of < 0)]
        raise EnsError(f"{experiment.root}: id {str(missing)!r} is in no fold<k>/oof.npz; train it again with --force")
    return fold_of


def fold_disagreement(name: str, fold_of: np.ndarray, reference: str, reference_fold_of: np.ndarray, ids: np.ndarray) -> str:
    row = int(np.argmax(fold_of != reference_fold_of))
    return (
        f"trained on other folds than {reference} (id {str(ids[row])!r} is in its fold {fold_of[row]}, "
        f"in {reference}'s fold {reference_fold_of[row]}); blend experiments trained on the same folds"
    )


def resolve_names(models_dir: Path, competition: Competition, experiments: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """(members, left out: name -> why). The names given, or when none are, every experiment
    with all folds done, trained on this train.csv and on the folds most of them share."""
    if experiments:
        experiments = expand_views(models_dir, experiments)
        if len(set(experiments)) != len(experiments):
            raise EnsError(f"--experiments: a name is given twice: {', '.join(experiments)}")
        return experiments, {}
    names = complete_experiments(models_dir)
    left_out = {}
    usable, assignments = [], {}
    for name in store.experiment_names(models_dir):
        experiment = store.ExperimentDir(models_dir, name)
        try:  # a damaged settings.json or logits file leaves its experiment out, not the blend
            reason = stale_reason(experiment, competition) if name in names else unfinished_reason(experiment)
            if not reason:
                assignments[name] = fold_assignment(experiment, competition)
        except EnsError as error:
            reason = f"cannot be read: {error}"
        if reason:
            left_out[name] = reason
        else:
            usable.append(name)
    if not usable:
        why = "; ".join(f"{name}: {reason}" for name, reason in left_out.items())
        raise EnsError(f"{models_dir}: no experiment can be blended" + (f" ({why})" if why else "; run `ens train-folds` first"))
    # The largest group sharing one fold assignment (ties: the group of the first name) is blended.
    groups: dict[bytes, list[str]] = {}
    for name in usable:
        groups.setdefault(assignments[name].tobytes(), []).append(name)
    chosen = max(groups.values(), key=len)
    for name in usable:
        if name not in chosen:
            left_out[name] = fold_disagreement(name, assignments[name], chosen[0], assignments[chosen[0]], competition.train_ids)
    return chosen, dict(sorted(left_out.items()))


def aligned(
    logits: store.Logits, path: Path, ids: np.ndarray, classes: tuple[str, ...], into: np.ndarray | None = None
) -> np.ndarray:
    """logits.values reordered to `ids`, written into `into` when given (no further copy);
    refused when the ids or the classes differ."""
    if logits.classes != classes:
        raise EnsError(f"{path}: classes {list(logits.classes)[:5]} differ from the competition's {list(classes)[:5]}")
    try:
        rows = store.positions(logits.ids, ids)
    except KeyError as missing:
        raise EnsError(f"{path}: no logits for id {str(missing.args[0])!r}") from None
    if len(logits.ids) != len(ids):
        extra = sorted(set(logits.ids) - set(ids))
        raise EnsError(f"{path}: id {str(extra[0])!r} is not in the competition ({len(extra)} extra ids)")
    if into is None:
        return logits.values[rows]
    np.take(logits.values, rows, axis=0, out=into)
    return into


def usable_experiment(models_dir: Path, competition: Competition, name: str) -> store.ExperimentDir:
    experiment = store.open_experiment(models_dir, name)
    check_usable(experiment, competition)
    return experiment


def check_same_images(experiment: store.ExperimentDir, name: str, seen: dict) -> None:
    """Refuse members trained on other pixels: their recorded content keys (settings.json
    images_sha256) must agree; the image files themselves are never read here. seen: which ->
    (member, key) of the members before, updated."""
    recorded = read_json(experiment.settings_path).get("images_sha256") or {}
    for which, key in recorded.items():
        first, first_key = seen.setdefault(which, (name, key))
        if key != first_key:
            raise EnsError(
                f"{experiment.root}: {name} and {first} were trained on other {which} images (their recorded content "
                "keys differ); train the older one again on the images there are now"
            )


def load_members(models_dir: Path, competition: Competition, names: list[str]) -> Members:
    """Every member's OOF and test logits, each written straight into one preallocated stack."""
    n_models, n_classes = len(names), len(competition.classes)
    oof = np.empty((n_models, len(competition.train_ids), n_classes), dtype=np.float32)
    test = np.empty((n_models, len(competition.test_ids), n_classes), dtype=np.float32)
    fold_of = None
    images: dict[str, tuple[str, dict]] = {}  # which -> (the first member that recorded it, its key)
    for index, name in enumerate(names):
        experiment_name, view = split_member(name)
        experiment = usable_experiment(models_dir, competition, experiment_name)
        check_same_images(experiment, name, images)
        member_folds = fold_assignment(experiment, competition)
        if fold_of is None:
            fold_of = member_folds
        elif not np.array_equal(member_folds, fold_of):
            raise EnsError(f"{experiment.root}: " + fold_disagreement(name, member_folds, names[0], fold_of, competition.train_ids))
        if view is None:
            aligned(store.load_logits(experiment.oof_path), experiment.oof_path, competition.train_ids, competition.classes, oof[index])
            aligned(store.load_logits(experiment.test_path), experiment.test_path, competition.test_ids, competition.classes, test[index])
            continue
        # As artifacts.writer.summarize combines an experiment's folds: held-out rows in place, test summed in float64.
        test_sum = np.zeros(test.shape[1:], dtype=np.float64)
        folds = experiment.done_folds()
        for fold in folds:
            fold_oof, fold_test, path = view_logits(experiment, fold, view)
            try:
                rows = store.positions(competition.train_ids, fold_oof.ids)
            except KeyError as missing:
                raise EnsError(f"{path}: id {str(missing.args[0])!r} is not in {competition.train_csv.name}") from None
            oof[index, rows] = aligned(fold_oof, path, fold_oof.ids, competition.classes)
            test_sum += aligned(fold_test, path, competition.test_ids, competition.classes)
        test[index] = test_sum / len(folds)
    return Members(names=list(names), oof=oof, test=test, fold_of=fold_of)


def fold_test_logits(models_dir: Path, competition: Competition, names: list[str]) -> Iterator[np.ndarray]:
    """For each fold, float32 (n_models, n_test, n_classes): every member's fold<k>/test.npz,
    in test.csv order. Members share folds (load_members checked), so fold k means the same."""
    for fold in store.ExperimentDir(models_dir, split_member(names[0])[0]).done_folds():
        yield fold_test_stack(models_dir, competition, names, fold)


def fold_test_stack(models_dir: Path, competition: Competition, names: list[str], fold: int) -> np.ndarray:
    """float32 (n_models, n_test, n_classes): every member's fold-`fold` model's test logits, in test.csv order."""
    stack = np.empty((len(names), len(competition.test_ids), len(competition.classes)), dtype=np.float32)
    for index, name in enumerate(names):
        experiment_name, view = split_member(name)
        experiment = store.ExperimentDir(models_dir, experiment_name)
        if view is None:
            path = experiment.fold_test_path(fold)
            aligned(store.load_logits(path), path, competition.test_ids, competition.classes, stack[index])
        else:
            _, fold_test, path = view_logits(experiment, fold, view)
            aligned(fold_test, path, competition.test_ids, competition.classes, stack[index])
    return stack
