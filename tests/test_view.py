"""The progress view: live on a terminal, plain lines (no step events) without one."""

import io

from rich.console import Console

from ensemble.fold_job import FoldEnd, FoldStart
from ensemble.train import EpochEnd, StepEnd
from ensemble.view import TrainView, clock

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

    with TrainView(console, print_event) as view:
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
