"""Rich tables for the leaderboard and blends; the CLI prints them.

A score is never cut: score columns do not wrap and are as wide as their widest cell, so
at 80 columns (or piped, where rich assumes 80) names and model names wrap instead; when
even that cannot fit, the table grows wider than the terminal rather than hide a number.
"""

from __future__ import annotations

from rich import box
from rich.table import Column, Table

NAME_WIDTH = 6  # the least a wrapping column is narrowed to


def score_text(score: float | None) -> str:
    return "-" if score is None else f"{score:.4f}"


def natural_width(header: str, cells: list[str], wraps: bool) -> int:
    """The width a column needs to show everything on one line (a wrapping header may
    break between words)."""
    header_width = max(len(word) for word in header.split()) if wraps else len(header)
    return max([header_width] + [len(cell) for cell in cells])


def column_widths(columns: list[tuple[str, list[str], bool]], available: int) -> list[int]:
    """Natural widths, narrowed until the table fits `available`: first wrapping columns
    whose header is wider than their cells (the header breaks between words, never inside
    one), then the widest wrapping column one character at a time; never below NAME_WIDTH.
    Numbers are never narrowed."""
    widths = [natural_width(header, cells, wraps) for header, cells, wraps in columns]
    excess = sum(widths) + overhead(len(columns)) - available
    for floors in (
        [max(NAME_WIDTH, *map(len, cells), *map(len, header.split())) if wraps else width for width, (header, cells, wraps) in zip(widths, columns)],
        [min(NAME_WIDTH, width) if wraps else width for width, (_, _, wraps) in zip(widths, columns)],
    ):
        while excess > 0:
            narrowable = [index for index, width in enumerate(widths) if width > floors[index]]
            if not narrowable:
                break  # in the last pass: only numbers left, the table grows past the terminal
            widest = max(narrowable, key=lambda index: widths[index])
            widths[widest] -= 1
            excess -= 1
    return widths


def overhead(n_columns: int) -> int:
    """Characters a table spends besides its cells: one space of padding each side of every
    cell, and a one-character divider between columns."""
    return 3 * n_columns - 1


def build(columns: list[tuple[str, list[str], bool]], available: int, title: str | None = None) -> Table:
    """columns: (header, cells, wraps), cells holding one string per row. Every width is
    fixed here, and the table's own width set to their sum, so that rich neither squeezes
    nor cuts a column: narrowing is done by column_widths, on wrapping columns only."""
    widths = column_widths(columns, available)
    table = Table(
        *[
            Column(header, width=width, no_wrap=not wraps, overflow="fold" if wraps else "ignore")
            for width, (header, _, wraps) in zip(widths, columns)
        ],
        title=title, box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1),
        width=sum(widths) + overhead(len(columns)),
    )
    for row in zip(*[cells for _, cells, _ in columns]):
        table.add_row(*row)
    return table


NOTHING = ("none", "-")  # what the attention and TTA columns show for an experiment without them


def leaderboard_table(rows: list[dict], available: int, wide: bool = False) -> Table:
    """Without `wide`, the attention and TTA columns are left out when no experiment has one:
    at 80 columns their room goes to names, which then need not wrap."""
    metric = rows[0]["metric"]
    optional = [
        ("teacher", [row.get("teacher", "-") for row in rows], True),
        ("attention", [row.get("attention", "-") for row in rows], True),
        ("sizes", [",".join(str(size) for size in row.get("sizes", [])) or "-" for row in rows], False),
        ("TTA", [row.get("tta", "-") for row in rows], True),
    ]
    columns = [
        ("experiment", [row["name"] for row in rows], True),
        ("model", [row["model"] for row in rows], True),
        *[column for column in optional if wide or column[0] == "sizes" or set(column[1]) - set(NOTHING)],
        ("OOF", [score_text(row["oof_score"]) for row in rows], False),
        ("mean", [score_text(row.get("fold_mean")) for row in rows], False),
        ("std", [score_text(row.get("fold_std")) for row in rows], False),
    ]
    if wide:
        columns += [
            # Scores are separated by spaces, so the column wraps between scores, never inside one.
            ("folds", [" ".join(score_text(score) for score in row["fold_scores"]) for row in rows], True),
            ("epochs", [str(row.get("epochs") or "-") for row in rows], False),
            ("lr", [f"{row['lr']:g}" if row.get("lr") is not None else "-" for row in rows], False),
            ("batch", [str(row.get("batch_size") or "-") for row in rows], False),
            ("train time", [f"{row['seconds']:.0f}s" for row in rows], False),
        ]
    return build(columns, available, title=f"{metric}: OOF score, and mean and std of the fold scores")


def correlation_table(rows: list[dict], available: int) -> Table:
    scored = [row for row in rows if "correlation" in row]
    columns = [("OOF correlation", [row["name"] for row in scored], True)]
    for other in scored:
        columns.append((other["name"], [f"{row['correlation'][other['name']]:.3f}" for row in scored], False))
    return build(columns, available)


def blend_table(result, available: int) -> Table:
    """Members with weights and OOF scores, then the blend scored in sample and out of fold."""
    weights = result.weights or [None] * len(result.names)
    member_cells = [f"{weight:.3f}" if weight is not None else "-" for weight in weights]
    names = list(result.names) + [f"blend ({result.method}), in sample", f"blend ({result.method}), out of fold"]
    scores = [score_text(score) for score in result.member_scores] + [score_text(result.oof_score_in_sample), score_text(result.oof_score)]
    table = build([("member", names, True), ("weight", member_cells + ["", ""], False), (f"OOF {result.metric}", scores, False)], available)
    table.rows[-1].style = "bold"
    return table

