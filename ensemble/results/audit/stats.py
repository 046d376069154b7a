"""The cheap figures of an audit: image sizes, channels and formats (headers only), class balance per fold."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
from joblib import Parallel, delayed
from PIL import Image

from ensemble.config import Workspace
from ensemble.data.competition import Competition
from ensemble.data.folds import folds_paths, read_folds
from ensemble.errors import EnsError

TOP = 10  # sizes listed by count; the rest are summed under "other"


def header(path: Path) -> tuple[str, str, str]:
    """(size "WxH", mode, format) from the file's header; Pillow decodes no pixels here."""
    try:
        with Image.open(path) as image:
            return f"{image.width}x{image.height}", image.mode, str(image.format)
    except (OSError, ValueError, SyntaxError) as error:
        raise EnsError(f"{path}: cannot read image header: {error}") from None


def counted(values: Sequence[str], top: int | None = None) -> dict[str, int]:
    counts = Counter(values).most_common()
    if top is None or len(counts) <= top:
        return dict(counts)
    return {**dict(counts[:top]), "other": sum(count for _, count in counts[top:])}


def image_distributions(paths: Sequence[Path]) -> dict:
    """Counts of sizes (the TOP most common), Pillow modes and formats of the files."""
    jobs = min(8, os.cpu_count() or 1)
    headers = Parallel(n_jobs=jobs, prefer="threads")(delayed(header)(path) for path in paths)
    sizes, modes, formats = zip(*headers) if headers else ((), (), ())
    return {"n_images": len(paths), "sizes": counted(sizes, TOP), "modes": counted(modes), "formats": counted(formats)}


def fold_balance(workspace: Workspace, competition: Competition) -> dict | None:
    """Rows of each class in each fold, when folds exist: {"k", "counts": {fold: {label: n}}};
    folds that no longer match the competition give {"error": why}. None without folds."""
    if not folds_paths(workspace)[0].is_file():
        return None
    try:
        folds = read_folds(workspace, competition)
    except EnsError as error:
        return {"error": str(error)}
    counts = {
        str(fold): {label: int(np.sum(competition.labels[folds.fold_of == fold] == label)) for label in competition.classes}
        for fold in range(folds.k)
    }
    return {"k": folds.k, "counts": counts}
