"""How the CLI shows training progress: a live rich display on a terminal, plain lines elsewhere.

The library sends events (ImagesRead, FoldsSent, FoldStart, StepEnd, EpochEnd, FoldEnd). On a
terminal a bar for each running fold (several under --jobs) shows its stage, epoch, step,
running loss, last validation score, images per second and the run's time left, and each
line the CLI prints for the other events appears above the bars. In CI logs and pipes, where a redrawn bar would be noise, step
events are dropped and only those lines are printed.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Column

if TYPE_CHECKING:
    from ensemble.training.events import StepEnd


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


class TrainProgress:
    """A progress callback for train_experiment; use as a context manager around the run."""

    def __init__(self, console: Console, print_event: Callable[[object], None]):
        """print_event: prints an event's line (through `console`, so it lands above the bar)."""
        self.print_event = print_event
        self.live = console.is_terminal
        # The numbers wrap under the bar rather than be cut off on an 80-column terminal.
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=16),
            TextColumn("{task.fields[detail]}", table_column=Column(no_wrap=False, ratio=1)),
            console=console, transient=True, expand=True,
        )
        self.tasks: dict[int, TaskID] = {}  # fold -> its bar
        self.scores: dict[int, str] = {}  # fold -> its last validation score, shown until its next epoch ends
        self.started: dict[int, float] = {}
        self.folds_left = 0  # not started yet
        self.workers = 1  # folds running at once

    def __enter__(self) -> "TrainProgress":
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.stop()

    def __call__(self, event: object) -> None:
        from ensemble.training.events import EpochEnd, StepEnd
        from ensemble.training.experiment import FoldsSent
        from ensemble.training.fold_job import FoldEnd, FoldStart

        if isinstance(event, StepEnd):
            if self.live:
                self.show_step(event)
            return
        if isinstance(event, FoldsSent):
            self.workers = event.workers
        if isinstance(event, FoldStart):
            self.folds_left = event.count - event.position
            self.started[event.fold] = time.perf_counter()
            self.scores[event.fold] = ""
        if isinstance(event, EpochEnd):
            self.scores[event.fold] = f"{event.metric} {event.valid_score:.4f}"
        if isinstance(event, FoldEnd) and event.fold in self.tasks:
            self.progress.remove_task(self.tasks.pop(event.fold))
        self.print_event(event)

    def show_step(self, event: StepEnd) -> None:
        if event.fold not in self.tasks:
            self.tasks[event.fold] = self.progress.add_task("", total=event.epochs * event.steps, detail="")
        done = (event.epoch - 1) * event.steps + event.step
        # The folds still to come take about as long as this one will, `workers` of them at a time.
        fold_seconds = time.perf_counter() - self.started.get(event.fold, time.perf_counter()) + event.seconds_left
        left = event.seconds_left + -(-self.folds_left // self.workers) * fold_seconds
        stage = f" stage {event.stage}/{event.stages} {event.size}px" if event.stages > 1 else ""
        description = f"fold {event.fold}{stage} epoch {event.epoch}/{event.epochs} step {event.step}/{event.steps}"
        detail = "  ".join(
            part for part in (f"loss {event.loss:.4f}", self.scores.get(event.fold, ""), f"{event.images_per_second:.0f} img/s", f"{clock(left)} left") if part
        )
        self.progress.update(self.tasks[event.fold], completed=done, description=description, detail=detail, refresh=True)
