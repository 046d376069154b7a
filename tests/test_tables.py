"""cli/tables.py: column widths fit the terminal by narrowing names, never by cutting a score."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from ensemble.cli.tables import NAME_WIDTH, build, column_widths, leaderboard_table, natural_width, overhead

NAMES = ("experiment", ["resnet18_mixup_long_name", "b"], True)
MODELS = ("model", ["efficientnet_b0", "convnext_tiny"], True)
OOF = ("OOF", ["0.9123", "0.8870"], False)
MEAN = ("mean", ["0.9100", "0.8850"], False)
COLUMNS = [NAMES, MODELS, OOF, MEAN]


def table_width(widths: list[int]) -> int:
    return sum(widths) + overhead(len(widths))


@pytest.mark.parametrize("available", [200, 80, 60, 50, 45, 40])
def test_widths_fit_available_and_numbers_keep_their_width(available):
    widths = column_widths(COLUMNS, available)
    assert table_width(widths) <= available
    assert widths[2:] == [6, 6]  # scores: as wide as "0.9123", never narrowed
    assert all(width >= NAME_WIDTH for width in widths[:2])


def test_room_enough_gives_every_column_its_natural_width():
    natural = [natural_width(header, cells, wraps) for header, cells, wraps in COLUMNS]
    assert column_widths(COLUMNS, 200) == natural == [24, 15, 6, 6]


def test_the_widest_wrapping_column_is_narrowed_first():
    widths = column_widths(COLUMNS, table_width([24, 15, 6, 6]) - 5)
    assert widths == [19, 15, 6, 6]


@pytest.mark.parametrize("available", [20, 10])
def test_when_nothing_fits_names_stop_at_their_floor_and_the_table_grows(available):
    widths = column_widths(COLUMNS, available)
    assert widths == [NAME_WIDTH, NAME_WIDTH, 6, 6]
    assert table_width(widths) > available


def test_a_wrapping_header_breaks_between_words_before_its_cells_wrap():
    columns = [("OOF correlation", ["a", "b"], True), ("a", ["1.000", "0.500"], False)]
    assert natural_width(*columns[0]) == len("correlation")
    # At its natural width the header needs 11; narrowed, it goes no lower than its cells or NAME_WIDTH.
    assert column_widths(columns, 10) == [NAME_WIDTH, 5]


@pytest.mark.parametrize("available", [80, 50])
def test_a_rendered_table_never_cuts_a_score_and_fits(available):
    table = build(COLUMNS, available)
    console = Console(file=io.StringIO(), width=available, color_system=None, legacy_windows=False)
    console.print(table)
    text = console.file.getvalue()
    for score in OOF[1] + MEAN[1]:
        assert score in text
    assert max(len(line) for line in text.splitlines()) <= available


def test_leaderboard_leaves_out_empty_attention_and_tta_unless_wide():
    rows = [
        {"name": "a", "model": "test_resnet", "metric": "accuracy", "oof_score": 0.5, "fold_mean": 0.5, "fold_std": 0.0,
         "fold_scores": [0.5, 0.5], "attention": "none", "tta": "none", "sizes": [16], "seconds": 3.0},
    ]
    narrow = [column.header for column in leaderboard_table(rows, 80).columns]
    wide = [column.header for column in leaderboard_table(rows, 80, wide=True).columns]
    assert "attention" not in narrow and "TTA" not in narrow and "sizes" in narrow
    assert {"attention", "TTA", "folds", "train time"} <= set(wide)
    with_tta = [column.header for column in leaderboard_table([{**rows[0], "tta": "hflip"}], 80).columns]
    assert "TTA" in with_tta and "attention" not in with_tta


def test_a_one_word_header_is_not_broken_while_a_name_can_still_narrow():
    columns = [("experiment", ["auto-efficientnet_lite0-frozen288"], True), ("augment", ["hflip"], True), ("OOF", ["0.6100"], False)]
    widths = column_widths(columns, table_width([33, 7, 6]) - 2)
    assert widths == [31, 7, 6]  # the name gives the two characters; "augment" keeps its word


def test_the_auto_summary_keeps_its_longest_built_in_name_on_one_line_at_80_columns(monkeypatch):
    from types import SimpleNamespace

    from ensemble.cli import auto

    console = Console(file=io.StringIO(), width=80, color_system=None, legacy_windows=False)
    monkeypatch.setattr(auto, "out", console)
    names = ["resnet10t-64", "efficientnet_lite0-frozen288", "resnet10t-64-seed2"]
    rows = [
        {"experiment": f"auto-{name}", "candidate": {"name": name}, "epochs": 10, "augment": "hflip", "seconds": 91.4, "oof_score": 0.61, "status": status}
        for name, status in zip(names, ["done", "abandoned", "skipped"])
    ]
    auto.print_summary(SimpleNamespace(experiments=rows, finished=None, seconds=552.0, budget=600.0))
    text = console.file.getvalue()
    lines = text.splitlines()
    assert "ens auto: experiments auto-<experiment>" in text
    assert all(any(line.split()[:1] == [name] for line in lines) for name in names)  # each whole, on its own row
    assert "augment" in text and "1:31" in text and "abandoned" in text
    assert max(len(line) for line in lines) <= 80 and "time: 9:12 used of 10:00" in text
