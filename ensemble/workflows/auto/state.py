"""One `ens auto` invocation's state: what it was asked (AutoOptions), and Run: the workspace,
the record, the clock, the reserve kept for the finish, and the calibration of estimates by the
folds measured so far. run.py drives it; finish.py reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ensemble.artifacts.store import ExperimentDir
from ensemble.config import AutoSettings, Workspace
from ensemble.training.events import Progress
from ensemble.training.parallel import Executor
from ensemble.workflows.auto.events import Clock
from ensemble.workflows.auto.plan import Epochs, Plan, Shape, Started, plan_portfolio
from ensemble.workflows.auto.portfolio import Candidate
from ensemble.workflows.auto.views import families_of, recorded_tta

# The share of the reserve kept once no TTA member will be made: blends and the report take seconds
# (Fashion-MNIST at 10m, two members: hill, weighted, stack and the report in about 2 s, while
# the 72 s kept for TTA left 2:33 of the budget unused, where another member needed 190 s).
NO_TTA_SHARE = 0.3
# ...but never less than this: a stack of six members took 8 s on the emoji competition, and it is fitted twice when chosen.
NO_TTA_SECONDS = 20.0


@dataclass(frozen=True)
class AutoOptions:
    """What one invocation is asked: settings from [auto] and flags; device and jobs for training."""

    settings: AutoSettings
    device: str | None = None
    jobs: int = 1
    dry_run: bool = False
    force: bool = False


# Statuses that keep a candidate out of the plan: skipped (reopened by the next invocation) and abandoned (for good).
OUT_OF_PLAN = ("skipped", "abandoned")


class Run:
    """One invocation's state: the workspace, the record, the clock, the calibration of estimates."""

    def __init__(self, workspace: Workspace, options: AutoOptions, clock: Clock, progress: Progress | None):
        self.workspace, self.options, self.clock, self.progress = workspace, options, clock, progress
        self.settings = options.settings
        self.name = self.settings.name
        self.measured: list[tuple[float, float]] = []  # (seconds, estimated) of each fold chunk trained here
        self.epochs = Epochs(self.settings.epochs, self.settings.min_epochs, self.settings.max_epochs)
        self.executor = Executor(options.jobs)
        self.forced: set[str] = set()  # experiments already started over in this --force run

    def tell(self, event: object) -> None:
        if self.progress:
            self.progress(event)

    @property
    def scale(self) -> float:
        """Measured over estimated seconds of the folds trained in this invocation; 1.0 before any."""
        seconds, estimated = (sum(pair[index] for pair in self.measured) for index in (0, 1))
        return seconds / estimated if estimated > 0 else 1.0

    def experiment(self, candidate: Candidate) -> ExperimentDir:
        return ExperimentDir(self.workspace.models_dir, f"{self.name}-{candidate.name}")

    def started(self, candidates: list[Candidate], k: int) -> dict[str, Started]:
        entries = self.record["experiments"]
        chosen = [(c, self.experiment(c)) for c in candidates if c.name in entries and entries[c.name]["status"] not in OUT_OF_PLAN]
        return {c.name: Started(entries[c.name]["epochs"], k - len(done.done_folds()), done.features_path.is_file()) for c, done in chosen}

    @property
    def reserve(self) -> float:
        """Seconds kept for TTA, blends and the report: the share asked for, or NO_TTA_SHARE of it (at
        least NO_TTA_SECONDS) once no TTA member can be made (no exact view keeps labels, or no
        view is checked)."""
        views = self.record["views"]
        no_tta = not families_of(self.settings.views) if views is None else recorded_tta(views) == "none"
        full = self.settings.reserve * self.clock.budget
        return min(full, max(full * NO_TTA_SHARE, NO_TTA_SECONDS)) if no_tta else full

    def plan(self, candidates: list[Candidate], speeds, shape: Shape, views_seconds: float) -> Plan:
        reserve = self.reserve
        usable = [candidate for candidate in candidates if candidate.speed_key in speeds and self.record["experiments"].get(candidate.name, {}).get("status") not in OUT_OF_PLAN]
        return plan_portfolio(usable, speeds, shape, self.clock.left() - views_seconds, reserve, self.epochs, self.started(usable, shape.k), self.scale)
