"""`ens report`: one self-contained HTML page of a workspace's results, from cached files only.

collect.py reads scores, histories, OOF probabilities and blends; figures.py draws them with
matplotlib (Agg, imported only when drawing); page.py assembles the HTML. Neither torch nor
the training code is imported, so a report takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ensemble.config import Workspace
from ensemble.errors import EnsError
from ensemble.io import write_text

# The page's first line: a file starting with it was written by `ens report` and is replaced
# freely; any other file at the output path needs force.
MARK = "<!-- written by ens report -->"


@dataclass(frozen=True)
class ReportResult:
    path: Path
    n_experiments: int
    n_blends: int
    best: str | None


def write_report(workspace: Workspace, out: str | Path | None = None, force: bool = False) -> ReportResult:
    """Write the report to `out` (default: <workspace>/report.html), replacing an older report."""
    from ensemble.results.report.collect import collect
    from ensemble.results.report.page import render

    path = Path(out).resolve() if out else workspace.root / "report.html"
    if path.exists() and not force and not written_by_report(path):
        raise EnsError(f"{path}: exists and is not an ens report; use --force to replace it, or another --out")
    data = collect(workspace)
    write_text(path, MARK + "\n" + render(data))
    best = data.best.name if data.best else None
    return ReportResult(path, len(data.experiments), len(data.blends), best)


def written_by_report(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return stream.readline().strip() == MARK
    except OSError:
        return False
