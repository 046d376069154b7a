"""What every kind's sections share: the best experiment's figure beside each blend's."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ensemble.results.report.collect import ReportData
from ensemble.results.report.markup import esc, img

NOT_TRAINED = "<p>No experiment has every fold trained yet.</p>"


def each_model(data: ReportData, draw: Callable[[np.ndarray, str], bytes], alt: str) -> str:
    """draw(oof_outputs, title) -> PNG for the best experiment and for each blend, side by side;
    a blend without saved OOF outputs says why."""
    parts = []
    best = data.best
    if best is not None:
        drawn = img(draw(best.oof_probs, f"{best.name} (OOF)"), f"{alt} of {best.name}")
        parts.append(f"<div><h3>Best experiment: {esc(best.name)}</h3>{drawn}</div>")
    else:
        parts.append(NOT_TRAINED)
    for blend in data.blends:
        if blend.oof_probs is not None:
            drawn = img(draw(blend.oof_probs, f"{blend.name} (OOF)"), f"{alt} of {blend.name}")
        else:
            drawn = f'<p class="note">{esc(blend.note)}</p>'
        parts.append(f"<div><h3>Blend: {esc(blend.name)}</h3>{drawn}</div>")
    return '<div class="figures">' + "".join(parts) + "</div>"
