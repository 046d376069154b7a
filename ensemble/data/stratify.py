"""How each task kind's targets are spread evenly over k folds, one member per kind (ensemble/tasks.py).

- single_label: scikit-learn's StratifiedKFold on the class (StratifiedGroupKFold with groups),
  as ens always did, so folds made before issue 18 come out the same;
- multi_label: iterative stratification (iterative_stratification.py), groups as whole units;
- regression: StratifiedKFold (StratifiedGroupKFold) on quantile bins of the target: at most
  REGRESSION_BINS, each of at least k rows.

Every member takes the competition's targets, k, a seed and groups (None, or one label per row;
rows sharing a label share a fold) and gives the fold of each row. most_folds says how many folds
the targets allow, and why, so `ens folds` refuses a larger k in one line and `ens init` picks one
that fits; rarest names what some folds may lack; balance describes each fold's target for `ens audit`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ensemble.data.iterative_stratification import stratify_tags
from ensemble.registry import Registry

# Deciles. Measured on a count 0-9 (2,000 rows) and a Pawpularity-like skewed score 1-100 (9,912
# rows), k = 5, 20 seeds: the range of the five folds' target means falls from 0.36 and 1.24
# (shuffled KFold) to 0.037 and 0.18 with 10 bins, about 1% of the target's standard deviation,
# far below what separates two models. Finer bins shrink it further (n // k bins of k rows: 0.010
# and 0.021) but leave StratifiedGroupKFold nothing to balance (a group fills a bin), and its cost
# grows with groups x bins. A count 0-9 in deciles is stratified on the count itself.
REGRESSION_BINS = 10


@dataclass(frozen=True)
class Limit:
    """The most folds the targets allow, and what they count in words: '12 rows in the largest class'."""

    k: int
    what: str


class Stratification:
    """Folds that keep a kind's target distribution: stratify on one label per row (`strata`)."""

    def strata(self, targets: np.ndarray, k: int) -> np.ndarray:
        """int (n_rows,): the label each fold keeps the shares of."""
        raise NotImplementedError

    def most_folds(self, targets: np.ndarray) -> Limit:
        return Limit(len(targets), "rows")

    def rarest(self, targets: np.ndarray, classes: tuple[str, ...]) -> tuple[str, str, int] | None:
        """(what, name, rows) of the rarest class or tag: below k rows, some folds lack it. None: nothing to lack."""
        return None

    def balance(self, targets: np.ndarray, classes: tuple[str, ...], fold_of: np.ndarray, k: int) -> dict:
        """How each fold holds the target, for `ens audit`: {"counts": {fold: {class or tag: rows}}},
        or {"quantiles": {fold: {statistic: value}}}. Folds are keyed by their number as text."""
        raise NotImplementedError

    def split(self, targets: np.ndarray, k: int, seed: int, groups: np.ndarray | None) -> np.ndarray:
        """fold_of: int64 (n_rows,)."""
        from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

        strata = self.strata(targets, k)
        if groups is None:
            splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(strata, strata)
        else:
            splits = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(strata, strata, groups)
        fold_of = np.full(len(targets), -1, dtype=np.int64)
        for fold, (_, valid_rows) in enumerate(splits):
            fold_of[valid_rows] = fold
        return fold_of


class ByClass(Stratification):
    def strata(self, targets, k):
        return targets

    def most_folds(self, targets):
        # StratifiedKFold needs some class with a row in every fold.
        return Limit(int(np.bincount(targets).max()), "rows in the largest class")

    def rarest(self, targets, classes):
        counts = np.bincount(targets, minlength=len(classes))
        return "class", classes[int(counts.argmin())], int(counts.min())

    def balance(self, targets, classes, fold_of, k):
        return {"counts": {str(fold): dict(zip(classes, np.bincount(targets[fold_of == fold], minlength=len(classes)).tolist())) for fold in range(k)}}


class ByTags(Stratification):
    def rarest(self, targets, classes):
        counts = (np.asarray(targets) > 0.5).sum(axis=0)
        return "tag", classes[int(counts.argmin())], int(counts.min())

    def balance(self, targets, classes, fold_of, k):
        positives = np.asarray(targets) > 0.5
        return {"counts": {str(fold): dict(zip(classes, positives[fold_of == fold].sum(axis=0).tolist())) for fold in range(k)}}

    def split(self, targets, k, seed, groups):
        return stratify_tags(targets, k, seed, groups)


class ByQuantile(Stratification):
    def strata(self, targets, k):
        return quantile_bins(targets, min(REGRESSION_BINS, len(targets) // k))

    def balance(self, targets, classes, fold_of, k):
        return {"quantiles": {str(fold): target_summary(targets[fold_of == fold]) for fold in range(k)}}


# The statistics of a fold's target that `ens audit` records: its range, quartiles and mean.
QUANTILES = {"min": 0.0, "q25": 0.25, "median": 0.5, "q75": 0.75, "max": 1.0}


def target_summary(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {}
    summary = {name: float(np.quantile(values, q)) for name, q in QUANTILES.items()}
    return summary | {"mean": float(np.mean(values)), "rows": len(values)}


def quantile_bins(values: np.ndarray, n_bins: int) -> np.ndarray:
    """int64 (n,): each value's bin, 0 for the smallest values to n_bins - 1, by rank.

    Bins by rank, not by value, hold n // n_bins or one more rows each however many values tie
    (a count of 0 in half the rows still fills several bins); tied values fall in adjacent bins
    in row order.
    """
    order = np.argsort(np.asarray(values), kind="stable")
    bins = np.empty(len(order), dtype=np.int64)
    bins[order] = np.arange(len(order)) * max(n_bins, 1) // len(order)
    return bins


STRATIFICATIONS: Registry[Stratification] = Registry("stratification")
STRATIFICATIONS.register("single_label")(ByClass())
STRATIFICATIONS.register("multi_label")(ByTags())
STRATIFICATIONS.register("regression")(ByQuantile())
