"""The cheap figures of an audit: image sizes, channels and formats (headers only), the target in each fold."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Sequence

from joblib import Parallel, delayed
from PIL import Image

from ensemble.config import Workspace
from ensemble.data.competition import Competition
from ensemble.data.folds import folds_paths, read_folds, stratification
from ensemble.errors import EnsError

TOP = 10  # sizes listed by count; the rest are summed under "other"


Header = tuple[int, int, str, str]  # width, height, Pillow mode, format


def header(path: Path) -> Header:
    """(width, height, mode, format) from the file's header; Pillow decodes no pixels here."""
    try:
        with Image.open(path) as image:
            return image.width, image.height, image.mode, str(image.format)
    except (OSError, ValueError, SyntaxError) as error:
        raise EnsError(f"{path}: cannot read image header: {error}") from None


def counted(values: Sequence[str], top: int | None = None) -> dict[str, int]:
    counts = Counter(values).most_common()
    if top is None or len(counts) <= top:
        return dict(counts)
    return {**dict(counts[:top]), "other": sum(count for _, count in counts[top:])}


def read_headers(paths: Sequence[Path]) -> list[Header]:
    """Each file's header, in order, read in threads."""
    jobs = min(8, os.cpu_count() or 1)
    return list(Parallel(n_jobs=jobs, prefer="threads")(delayed(header)(path) for path in paths))


def image_distributions(headers: Sequence[Header]) -> dict:
    """Counts of sizes (the TOP most common), Pillow modes and formats of the files."""
    sizes = [f"{width}x{height}" for width, height, _, _ in headers]
    modes = [mode for _, _, mode, _ in headers]
    formats = [fmt for _, _, _, fmt in headers]
    return {"n_images": len(headers), "sizes": counted(sizes, TOP), "modes": counted(modes), "formats": counted(formats)}


def fold_balance(workspace: Workspace, competition: Competition) -> dict | None:
    """How each fold holds the target, when folds exist: {"k", "counts": {fold: {class: rows}}}
    (for tags: {fold: {tag: images with it}}), or for a regression {"k", "quantiles": {fold:
    {min, q25, median, q75, max, mean, rows}}}; folds that no longer match the competition give
    {"error": why}. None without folds."""
    if not folds_paths(workspace)[0].is_file():
        return None
    try:
        folds = read_folds(workspace, competition)
    except EnsError as error:
        return {"error": str(error)}
    return {"k": folds.k, **stratification(competition).balance(competition.targets, competition.classes, folds.fold_of, folds.k)}
