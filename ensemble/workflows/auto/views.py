"""Which views keep the labels, measured on the first experiment's OOF, never guessed.

Each fold model of the first experiment predicts the rows it was held out from under every
candidate view (the machinery of `ens predict --keep-views`, inference/checkpoints.py), and
each view's OOF score is set against the identity's. A view keeps labels when the model keeps
nearly all of its skill on it, or the two scores differ by no more than noise:
- skill is the score's distance from chance, and chance is measured too: the identity's own
  outputs shuffled over the rows (any task kind, any metric, no per-kind code);
- noise is twice the standard error of the paired difference, bootstrapped over rows.
A model trained without flips loses a little on flipped images even where flips keep labels
(issue 17: hflip took clothes from 0.80 to 0.77), and loses most of its skill where they do
not (d4: 0.34; a mirrored 3 is no digit), hence the share of skill kept, not equality.
A family (rot90 is three quarter turns) keeps labels only when each of its views does. When the
first model has too little skill to tell, no view is used.

Each safe family then augments later experiments with its train-time counterpart (`train_transform`:
the view `scale:0.8`, the content shrunk to 0.8 of the side, becomes random crops of 1 to 1.25
sides, the train-time scale's unit; a shift of up to the same fraction each way), while TTA
takes only the exact views (flips and quarter turns): a shifted or zoomed view loses pixels,
and four shifted views cost four predictions of every image.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ensemble import metrics
from ensemble.artifacts.store import ExperimentDir
from ensemble.config import Workspace
from ensemble.data.cache import competition_images
from ensemble.data.competition import Competition
from ensemble.data.content import competition_keys
from ensemble.data.folds import Folds
from ensemble.errors import EnsError
from ensemble.inference import tta
from ensemble.inference.checkpoints import choose_policy, fold_checkpoints, fold_logits, settings_of
from ensemble.training import augment

SKILL_KEPT = 0.9  # a view keeping this share of the identity's distance from chance keeps labels
BOOTSTRAPS = 200
TOO_WEAK = "the first model is too close to chance to tell"
SHUFFLES = 5


@dataclass(frozen=True)
class Verdict:
    """One view family: `keeps` whether it keeps labels; the worst of its views' OOF scores
    against the identity's, the chance score, and the reason in words."""

    family: str
    keeps: bool
    score: float
    identity: float
    chance: float
    reason: str

    def line(self) -> str:
        verb = "keeps labels" if self.keeps else "not used" if self.reason == TOO_WEAK else "changes them"
        return f"{self.family}: {verb} (OOF {self.score:.4f} vs {self.identity:.4f}; chance {self.chance:.4f}; {self.reason})"


@dataclass(frozen=True)
class Views:
    verdicts: tuple[Verdict, ...]
    experiment: str
    seconds: float

    @property
    def safe(self) -> list[str]:
        return [verdict.family for verdict in self.verdicts if verdict.keeps]

    @property
    def spec(self) -> str:
        """The safe families, as they were checked; "none" when there are none."""
        return ",".join(self.safe) or "none"

    @property
    def augment(self) -> str:
        """Later experiments' --augment: each safe family's train-time counterpart, each transform once."""
        return augment_of(self.safe)

    @property
    def tta(self) -> str:
        """The TTA members' views: the safe families whose views are exact (flips, quarter turns)."""
        return ",".join(family for family in self.safe if exact(family)) or "none"


def train_transform(family: str) -> str:
    """The --augment transforms of a view family. The view `scale:F` resizes the content by F; the
    train-time `scale:LO-HI` crops LO..HI of the side and stretches it, resizing by 1/side, so F
    becomes crops between 1/F and 1 (0.8 -> 1-1.25, 1.25 -> 0.8-1). d4 is hflip with quarter turns
    (the eight symmetries); the others share their name."""
    name, _, number = family.partition(":")
    if name == "scale" and number:
        low, high = sorted((1 / float(number), 1.0))
        return f"scale:{low:.3g}-{high:.3g}"
    return "hflip,rot90" if name == "d4" else family


def augment_of(families: list[str]) -> str:
    transforms = [part for family in families for part in train_transform(family).split(",")]
    return ",".join(dict.fromkeys(transforms)) or "none"


def recorded_augment(views: dict | None) -> str:
    """The --augment a later experiment takes from the auto record's views (None: not found yet);
    a record written before the `augment` key: its safe families' train-time counterparts."""
    if not views:
        return "none"
    return views.get("augment") or augment_of(views["safe"])


def recorded_tta(views: dict | None) -> str:
    """The TTA views members take from the auto record's views ("none" before they are found); a
    record written before shifts were checked has no `tta` key: its spec."""
    if not views:
        return "none"
    return views.get("tta", views["spec"])


def families_of(spec: str) -> list[str]:
    """[auto] views as families, checked before anything trains: as TTA views (tta.py's registry),
    and their train-time counterparts as --augment transforms. 'none' checks no view."""
    try:
        # Each family checked and in its canonical spelling ('shift: 0.10' -> 'shift:0.1'), once.
        families = list(dict.fromkeys(tta.parse_policy(part).spec for part in spec.split(",") if part.strip() not in ("", "none")))
        names = [family.partition(":")[0] for family in families]
        twice = next((name for name in names if names.count(name) > 1), None)
        if twice:
            raise EnsError(f"{twice} is listed at two strengths; list one view per family")
        augment.parse(augment_of(families))
    except EnsError as error:
        raise EnsError(f"[auto] views {spec!r}: {error}") from None
    return families


def exact(family: str) -> bool:
    """Whether every view of a family can be undone exactly (no pixels lost)."""
    return all(view.undo is not None for view in tta.parse_policy(family).views[1:])


def view_oof(workspace: Workspace, competition: Competition, folds: Folds, experiment: ExperimentDir, families: list[str]) -> tuple[list[str], np.ndarray]:
    """(view names, float32 (n_views, n_train, n_columns)): every fold model's logits of its held-out rows under each view."""
    from ensemble.nets.devices import resolve_device

    settings = settings_of(experiment)
    policy = choose_policy(settings, ",".join(families), None, competition.task)
    checkpoints, size = fold_checkpoints(experiment, list(range(folds.k)), settings, competition.classes)
    train_images, _, _ = competition_images(workspace.root, competition, size, competition_keys(competition))
    device = resolve_device(workspace.train.device)
    oof = np.zeros((policy.n_views, len(competition.train_ids), len(competition.classes)), dtype=np.float32)
    for fold in range(folds.k):
        rows = np.flatnonzero(folds.fold_of == fold)
        prediction = fold_logits(checkpoints[fold], experiment.checkpoint_path(fold), device, settings["train"], train_images, rows, policy, competition.task)
        oof[:, rows] = prediction.views
    return [view.name for view in policy.views], oof


def judge(names: list[str], oof: np.ndarray, targets: np.ndarray, task, metric: metrics.Metric, families: list[str], seed: int = 0) -> list[Verdict]:
    """A verdict per family from each view's OOF logits (names[0] is the identity). Pure numpy."""
    rng = np.random.default_rng(seed)
    outputs = [task.outputs(logits) for logits in oof]
    sign = 1.0 if metric.greater_is_better else -1.0
    identity = metric.score(targets, outputs[0])
    chance = float(np.mean([metric.score(targets, outputs[0][rng.permutation(len(targets))]) for _ in range(SHUFFLES)]))
    samples = [rng.integers(0, len(targets), len(targets)) for _ in range(BOOTSTRAPS)]
    identity_samples = np.array([metric.score(targets[rows], outputs[0][rows]) for rows in samples])
    skill = sign * (identity - chance)
    identity_noise = 2 * float(np.std(identity_samples))
    verdicts = []
    for family in families:
        members = [index for index, name in enumerate(names) if name in {view.name for view in tta.parse_policy(family).views[1:]}]
        scores = {index: metric.score(targets, outputs[index]) for index in members}
        worst = min(members, key=lambda index: sign * scores[index])
        noise = 2 * float(np.std(np.array([metric.score(targets[rows], outputs[worst][rows]) for rows in samples]) - identity_samples))
        kept = sign * (scores[worst] - chance) / skill if skill > 0 else 0.0
        lost = sign * (identity - scores[worst])
        if skill <= identity_noise:
            keeps, reason = False, TOO_WEAK
        elif lost <= noise:
            keeps, reason = True, f"within noise ({noise:.4f})"
        elif kept >= SKILL_KEPT:
            keeps, reason = True, f"keeps {kept:.0%} of the skill above chance"
        else:
            keeps, reason = False, f"keeps {max(kept, 0):.0%} of the skill above chance, below {SKILL_KEPT:.0%}"
        verdicts.append(Verdict(family, keeps, float(scores[worst]), float(identity), chance, reason))
    return verdicts


def find_views(workspace: Workspace, competition: Competition, folds: Folds, experiment: ExperimentDir, families: list[str], seconds_started: float) -> Views:
    """The verdicts on `families` from `experiment`'s fold models; seconds counted from `seconds_started` (time.perf_counter)."""
    names, oof = view_oof(workspace, competition, folds, experiment, families)
    verdicts = judge(names, oof, competition.targets, competition.task, metrics.get(competition.metric), families)
    return Views(tuple(verdicts), experiment.name, time.perf_counter() - seconds_started)
