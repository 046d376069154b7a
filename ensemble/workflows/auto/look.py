"""ens auto's first look at the data: seconds, no torch. What the plan needs to know (images,
classes or task kind, the rarest class, native sizes and channels from the headers, the
metric), and folds made with `ens folds`' defaults when there are none."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from PIL import Image

from ensemble.config import AUTO_SIZE_RANGE, Workspace, auto_size
from ensemble.data.competition import Competition, load_competition
from ensemble.data.folds import FoldsResult, folds_paths, read_folds, stratification, write_folds
from ensemble.data.images import median_side

HEADER_SAMPLE = 200  # images whose headers are opened for their modes


@dataclass(frozen=True)
class Look:
    """native_side: the median longer side of the training images; size: the base training size,
    ens.toml's [train] size when a number, else config.auto_size of the side (size_from says
    which); rarest: (what, name, rows) of the rarest class or tag, None for a regression; modes:
    {PIL mode: images} over a sample of headers."""

    n_train: int
    n_test: int
    task: str
    n_classes: int
    metric: str
    native_side: float
    size: int
    modes: dict
    rarest: tuple | None
    size_from: str

    def lines(self) -> list[str]:
        """What was seen, one fact a line."""
        rarest = f"; rarest {self.rarest[0]} {self.rarest[1]!r}: {self.rarest[2]} rows" if self.rarest else ""
        modes = ", ".join(f"{mode} {count}" for mode, count in sorted(self.modes.items()))
        return [
            f"data: {self.n_train} training and {self.n_test} test images, {self.task} ({self.n_classes} output column{'s' if self.n_classes > 1 else ''}{rarest}), metric {self.metric}",
            f"images: median side {self.native_side:.0f}px (modes in a sample: {modes}); training at {self.size}px ({self.size_from})",
        ]


def header_modes(competition: Competition) -> dict:
    paths = competition.train_image_paths()
    step = max(1, len(paths) // HEADER_SAMPLE)
    modes: Counter = Counter()
    for path in paths[::step]:
        with Image.open(path) as image:
            modes[image.mode] += 1
    return dict(modes)


def look_at(workspace: Workspace) -> tuple[Competition, Look]:
    competition = load_competition(workspace)
    side = median_side(competition.train_image_paths(), competition.train_ids)
    # ens.toml's [train] size (or the last of its sizes) is the base size when it is a number; auto trains one stage.
    pinned = isinstance(workspace.train.size, int) and bool({"size", "sizes"} & workspace.train_keys)
    look = Look(
        n_train=len(competition.train_ids),
        n_test=len(competition.test_ids),
        task=competition.task.name,
        n_classes=len(competition.classes),
        metric=competition.metric,
        native_side=side,
        size=workspace.train.size if pinned else auto_size(side),
        modes=header_modes(competition),
        rarest=stratification(competition).rarest(competition.targets, competition.classes),
        size_from=pinned_from(workspace) if pinned else f"the images' side within {AUTO_SIZE_RANGE[0]}..{AUTO_SIZE_RANGE[1]}px",
    )
    return competition, look


def pinned_from(workspace: Workspace) -> str:
    stages = workspace.train.sizes
    return f"the last of ens.toml's [train] sizes {stages}; auto trains one size" if stages else "ens.toml [train] size"


def ensure_folds(workspace: Workspace, competition: Competition) -> FoldsResult | None:
    """The folds file, checked; made with ens.toml's [folds] (ens folds' defaults) when there is none.
    Returns the new folds' result, None when they existed."""
    csv_path, _ = folds_paths(workspace)
    if csv_path.exists():
        read_folds(workspace, competition)  # refuses a damaged or stale one, naming the fix
        return None
    return write_folds(workspace, competition, workspace.folds, force=False)
