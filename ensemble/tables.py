"""Rich tables for the leaderboard and blends; the CLI prints them.

A score is never cut: score columns do not wrap and are as wide as their widest cell, so
at 80 columns (or piped, where rich assumes 80) names and model names wrap instead; when
even that cannot fit, the table grows wider than the terminal rather than hide a number.
"""

from __future__ import annotations

from rich.table import Column, Table

NAME_WIDTH = 10  # the least a wrapped name column keeps


def score_text(score: float | None) -> str:
    return "-" if score is None else f"{score:.4f}"


def fixed(header: str, cells: list[str]) -> Column:
    """A column that never wraps or truncates its cells."""
    return Column(header, no_wrap=True, min_width=max([len(cell) for cell in cells] + [1]), overflow="ignore")


def wrapping(header: str, min_width: int = NAME_WIDTH) -> Column:
    return Column(header, overflow="fold", min_width=min_width)


def build(columns: list[tuple[str, list[str], bool]]) -> Table:
    """columns: (header, cells, wraps); cells hold one string per row."""
    table = Table(*[wrapping(header) if wraps else fixed(header, cells) for header, cells, wraps in columns])
    for row in zip(*[cells for _, cells, _ in columns]):
        table.add_row(*row)
    return table


def leaderboard_table(rows: list[dict], wide: bool = False) -> Table:
    metric = rows[0]["metric"]
    columns = [
        ("experiment", [row["name"] for row in rows], True),
        ("model", [row["model"] for row in rows], True),
        ("attention", [row.get("attention", "-") for row in rows], True),
        ("sizes", [",".join(str(size) for size in row.get("sizes", [])) or "-" for row in rows], False),
        ("TTA", [row.get("tta", "-") for row in rows], True),
        (f"OOF {metric}", [score_text(row["oof_score"]) for row in rows], False),
        ("fold mean", [score_text(row.get("fold_mean")) for row in rows], False),
        ("fold std", [score_text(row.get("fold_std")) for row in rows], False),
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
    return build(columns)


def correlation_table(rows: list[dict]) -> Table:
    scored = [row for row in rows if "correlation" in row]
    columns = [("OOF correlation", [row["name"] for row in scored], True)]
    for other in scored:
        columns.append((other["name"], [f"{row['correlation'][other['name']]:.3f}" for row in scored], False))
    return build(columns)


def blend_table(result) -> Table:
    """Members with weights and OOF scores, then the blend scored in sample and out of fold."""
    weights = result.weights or [None] * len(result.names)
    member_cells = [f"{weight:.3f}" if weight is not None else "-" for weight in weights]
    names = list(result.names) + [f"blend ({result.method}), in sample", f"blend ({result.method}), out of fold"]
    scores = [score_text(score) for score in result.member_scores] + [score_text(result.oof_score_in_sample), score_text(result.oof_score)]
    table = build([("member", names, True), ("weight", member_cells + ["", ""], False), (f"OOF {result.metric}", scores, False)])
    table.rows[-1].style = "bold"
    return table

