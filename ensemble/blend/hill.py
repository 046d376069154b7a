"""Hill climbing: Caruana's ensemble selection (Caruana et al., "Ensemble Selection from
Libraries of Models", ICML 2004), as AutoGluon's EnsembleSelection does it.

Start from the best `hill_init` members (sorted initialisation), then add, `hill_steps`
times, the member (with replacement) whose addition scores best on the chosen metric; ties
go to a member already chosen, then to the lower index. The weights are the selection
counts of the best step seen (the tail after it is cut). With `hill_bags` > 1, each bag runs
on a seeded random half of the members and the bags' weights are averaged, which keeps one
lucky member from taking all the weight.

Optimises any metric of the task kind, piecewise constant ones included: on multi-label
tags (the mean of tag probabilities, decided at 0.5 before any threshold is tuned) and on a
regression's values alike. Each step updates the running sum of the chosen members' outputs
and scores every candidate in one vectorised pass (metrics.score_many), in chunks that bound
the memory used.
"""

from __future__ import annotations

import numpy as np

from ensemble import metrics, tasks
from ensemble.blend import kinds
from ensemble.blend.base import Blender, member_probabilities, weighted_probabilities
from ensemble.errors import EnsError

CHUNK_BYTES = 256 << 20  # candidates scored per pass are capped at this many bytes


def int_at_least(value, option: str, at_least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < at_least:
        raise EnsError(f"{option} must be an integer of at least {at_least}, got {value!r}")


class HillBlender(Blender):
    def __init__(
        self, metric: str = "logloss", hill_steps: int = 50, hill_init: int = 1, hill_bags: int = 1, seed: int = 0, task: str = "single_label"
    ):
        self.metric = metric
        self.hill_steps = hill_steps
        self.hill_init = hill_init
        self.hill_bags = hill_bags
        self.seed = seed
        self.task = task

    def check_options(self) -> "HillBlender":
        tasks.get(self.task).check_metric(self.metric, "--metric")
        int_at_least(self.hill_steps, "--hill-steps", 1)
        int_at_least(self.hill_init, "--hill-init", 1)
        int_at_least(self.hill_bags, "--hill-bags", 1)
        int_at_least(self.seed, "--seed", 0)
        return self

    def fit(self, logits, targets) -> "HillBlender":
        """logits: float (n_models, n_samples, n_classes); targets: as the task kind has them."""
        self.check_params()
        logits = self._check_logits(logits, targets)
        targets = np.asarray(targets)
        metric = metrics.get(self.metric)
        probs = member_probabilities(logits, task=self.task)
        n_models = len(probs)
        if self.hill_bags == 1:
            self.weights_, self.scores_ = select(probs, targets, metric, np.arange(n_models), self.hill_steps, self.hill_init, self.task)
            return self
        rng = np.random.default_rng(self.seed)
        bag_size = max(1, n_models // 2)
        weights = np.zeros(n_models)
        for _ in range(self.hill_bags):
            bag = np.sort(rng.choice(n_models, size=bag_size, replace=False))
            weights += select(probs, targets, metric, bag, self.hill_steps, self.hill_init, self.task)[0]
        self.weights_ = weights / self.hill_bags
        self.scores_ = None
        return self

    def predict_proba(self, logits) -> np.ndarray:
        """Probabilities (or values) float64 (n_samples, n_classes)."""
        self._check_fitted()
        return weighted_probabilities(self.weights_, self._check_logits(logits), self.task)


def select(
    probs: np.ndarray, targets: np.ndarray, metric: metrics.Metric, members: np.ndarray, steps: int, init: int, task: str = "single_label"
):
    """Greedy selection among `members` (indices into probs: float32 (n_models, n_samples, n_classes),
    the members' outputs as the task kind has them).

    Returns (weights: float64 (n_models,), summing to one; scores: the score after each step
    that was kept, the initial set first)."""
    single = metrics.score_many(metric, targets, probs[members])
    best_first = members[np.argsort(-single if metric.greater_is_better else single, kind="stable")]
    counts = np.zeros(len(probs), dtype=np.int64)
    running = np.zeros(probs.shape[1:], dtype=np.float64)
    for member in best_first[:init]:
        counts[member] += 1
        running += probs[member]
    history_counts, history_scores = [counts.copy()], [metric.score(targets, running / counts.sum())]
    # The shortcuts read targets as class indices (f1_macro's of_labels is single-label only).
    class_indices = kinds.get(task).class_indices
    if class_indices and metric.name == "logloss":
        score_candidates = logloss_candidates(probs, targets, members)
    elif class_indices and metric.of_labels is not None:
        score_candidates = label_candidates(probs, targets, metric, members)
    else:
        score_candidates = any_metric_candidates(probs, targets, metric, members)
    for _ in range(steps):
        scores = score_candidates(running, counts.sum())
        best_score = scores.max() if metric.greater_is_better else scores.min()
        tied = members[scores == best_score]
        # Ties go to the member chosen most often so far, then to the lowest index (argmax's first).
        pick = tied[np.argmax(counts[tied])]
        counts[pick] += 1
        running += probs[pick]
        history_counts.append(counts.copy())
        history_scores.append(float(best_score))
    history_scores = np.array(history_scores)
    best_step = int(np.argmax(history_scores) if metric.greater_is_better else np.argmin(history_scores))
    kept = history_counts[best_step]
    return kept / kept.sum(), history_scores[: best_step + 1].tolist()


def logloss_candidates(probs: np.ndarray, targets: np.ndarray, members: np.ndarray):
    """Log loss needs only each row's true-class probability: adding a member to the blend is
    then an (n_members, n_samples) operation, whatever the number of classes."""
    rows = np.arange(len(targets))
    picked = np.stack([probs[member][rows, targets] for member in members]).astype(np.float64)

    def score(running: np.ndarray, chosen: int) -> np.ndarray:
        blend = (running[rows, targets] + picked) / (chosen + 1)
        return -np.log(np.clip(blend, 1e-15, 1.0)).mean(axis=1)

    return score


def label_candidates(probs: np.ndarray, targets: np.ndarray, metric: metrics.Metric, members: np.ndarray):
    """For metrics of the argmax label. Where the running sum's best class leads the second
    by more than 1, adding one member (probabilities in [0, 1]) cannot change the label; as
    the blend grows most rows settle, and candidates are only built on the rows that remain.
    Sums are taken in the members' own precision (float32), as the general path takes them:
    the argmax needs nothing finer, and it halves the memory traffic of every candidate."""
    n_classes = probs.shape[2]

    def score(running: np.ndarray, chosen: int) -> np.ndarray:
        top_two = np.partition(running, n_classes - 2, axis=1)[:, -2:]
        open_rows = np.flatnonzero(top_two[:, 1] - top_two[:, 0] <= 1.0)
        every_row = len(open_rows) == len(running)  # early steps: no gather needed
        open_running = (running if every_row else running[open_rows]).astype(probs.dtype)
        candidate = np.empty_like(open_running)
        predicted = np.argmax(running, axis=1)  # settled rows keep it; open rows are overwritten below
        scores = np.empty(len(members))
        for slot, member in enumerate(members):
            np.add(open_running, probs[member] if every_row else probs[member][open_rows], out=candidate)
            predicted[open_rows] = np.argmax(candidate, axis=1)
            scores[slot] = metric.of_labels(targets, predicted, n_classes)
        return scores

    return score


def any_metric_candidates(probs: np.ndarray, targets: np.ndarray, metric: metrics.Metric, members: np.ndarray):
    """Every candidate blend (running sum + one member) built in a reused buffer, chunked so
    the buffer stays under CHUNK_BYTES, and scored in one metrics.score_many call per chunk."""
    chunk = max(1, CHUNK_BYTES // probs[0].nbytes)
    buffer = np.empty((min(chunk, len(members)),) + probs.shape[1:], dtype=probs.dtype)

    def score(running: np.ndarray, chosen: int) -> np.ndarray:
        running_cast = running.astype(probs.dtype)
        scores = np.empty(len(members))
        for start in range(0, len(members), chunk):
            part = members[start : start + chunk]
            candidates = buffer[: len(part)]
            for slot, member in enumerate(part):  # no fancy-indexed copy of the members
                np.add(probs[member], running_cast, out=candidates[slot])
            candidates /= chosen + 1
            scores[start : start + len(part)] = metrics.score_many(metric, targets, candidates)
        return scores

    return score
