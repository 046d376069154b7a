"""The progress view: live on a terminal, plain lines (no step events) without one."""

import io

from rich.console import Console

from ensemble.cli.progress import TrainProgress, clock
from ensemble.training.events import EpochEnd, StepEnd
from ensemble.training.fold_job import FoldEnd, FoldStart

EVENTS = [
    FoldStart(fold=0, n_train=80, n_valid=20, resuming=False, position=1, count=3),
    *[
        StepEnd(fold=0, epoch=1, epochs=2, stage=1, stages=2, size=24, step=step, steps=5, loss=0.7,
                images_per_second=123.0, seconds_left=42.0)
        for step in range(1, 6)
    ],
    EpochEnd(fold=0, epoch=1, epochs=2, train_loss=0.7, valid_loss=0.6, valid_score=0.75, metric="accuracy",
             seconds=1.0, stage=1, stages=2, size=24),
    StepEnd(fold=0, epoch=2, epochs=2, stage=2, stages=2, size=32, step=1, steps=5, loss=0.5,
            images_per_second=99.0, seconds_left=10.0),
    FoldEnd(fold=0, metric="accuracy", score=0.8, seconds=2.0),
]


def show(console: Console) -> tuple[str, list]:
    printed = []

    def print_event(event):
        printed.append(type(event).__name__)
        console.print(f"line for {type(event).__name__}")

    with TrainProgress(console, print_event) as view:
        for event in EVENTS:
            view(event)
    return console.file.getvalue(), printed


def test_without_a_terminal_only_plain_lines():
    text, printed = show(Console(file=io.StringIO(), force_terminal=False))
    assert printed == ["FoldStart", "EpochEnd", "FoldEnd"]
    assert text.splitlines() == ["line for FoldStart", "line for EpochEnd", "line for FoldEnd"]
    assert "\x1b" not in text


def test_on_a_terminal_the_live_view_shows_each_step():
    text, printed = show(Console(file=io.StringIO(), force_terminal=True, width=200))
    assert printed == ["FoldStart", "EpochEnd", "FoldEnd"]
    assert "fold 0 stage 2/2 32px epoch 2/2 step 1/5" in text
    assert "accuracy 0.7500" in text and "99 img/s" in text and " left" in text


def test_clock():
    assert [clock(5), clock(65), clock(3725), clock(-1)] == ["0:05", "1:05", "1:02:05", "0:00"]


def test_folds_running_side_by_side_have_a_bar_each():
    from ensemble.training.experiment import FoldsSent

    def step(fold, number):
        return StepEnd(fold=fold, epoch=1, epochs=1, stage=1, stages=1, size=32, step=number, steps=4, loss=0.5,
                       images_per_second=50.0, seconds_left=30.0)

    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    with TrainProgress(console, lambda event: None) as view:
        view(FoldsSent(folds=[0, 1, 2], where="2 worker processes", workers=2))
        view(FoldStart(fold=0, n_train=80, n_valid=20, resuming=False, position=1, count=3))
        view(FoldStart(fold=1, n_train=80, n_valid=20, resuming=False, position=2, count=3))
        view(step(0, 1))
        view(step(1, 3))
        assert len(view.progress.tasks) == 2
        bars = {task.description: task.completed for task in view.progress.tasks}
        assert bars == {"fold 0 epoch 1/1 step 1/4": 1, "fold 1 epoch 1/1 step 3/4": 3}
        view(FoldEnd(fold=0, metric="accuracy", score=0.8, seconds=2.0))
        assert [task.description for task in view.progress.tasks] == ["fold 1 epoch 1/1 step 3/4"]
