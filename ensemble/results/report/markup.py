"""The report's HTML pieces: escaping, embedded pictures, tables and sections."""

from __future__ import annotations

import base64
import html


def esc(value) -> str:
    return html.escape(str(value))


def score(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def img(png: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    """Cells are HTML already (escape text before); columns in `numeric` are right-aligned."""
    head = "".join(f"<th>{esc(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="number">{cell}</td>' if column in numeric else f"<td>{cell}</td>" for column, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f'<div class="wide"><table><tr>{head}</tr>{body}</table></div>'


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'
