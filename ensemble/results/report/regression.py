"""The report's regression sections: predicted against true values, and the residuals."""

from __future__ import annotations

import numpy as np

from ensemble.results.report.collect import ReportData
from ensemble.results.report.compare import NOT_TRAINED, each_model
from ensemble.results.report.figures import FOLD_COLORS, figure
from ensemble.results.report.markup import esc, img

MAX_POINTS = 5000  # drawn at most; a scatter of more is one blot, and a larger PNG


def shown_rows(n_rows: int) -> np.ndarray:
    """Evenly spaced rows, at most MAX_POINTS: the same rows for every model."""
    return np.unique(np.linspace(0, n_rows - 1, num=min(n_rows, MAX_POINTS)).astype(int))


def scatter(targets: np.ndarray, values: np.ndarray, title: str) -> bytes:
    """Predicted (y) against true (x) values; the diagonal is a perfect prediction."""
    rows = shown_rows(len(targets))
    predicted = np.asarray(values).reshape(len(targets), -1)[:, 0]
    low, high = float(min(targets.min(), predicted.min())), float(max(targets.max(), predicted.max()))
    with figure(4.2, 4) as (fig, (axis,), png):
        axis.plot([low, high], [low, high], ":", color="grey", label="perfect")
        axis.scatter(targets[rows], predicted[rows], s=8, alpha=0.4, color=FOLD_COLORS[0], edgecolors="none")
        axis.set(xlabel="true", ylabel="predicted (OOF)", title=title)
        axis.grid(alpha=0.3)
    return bytes(png)


def residuals_figure(targets: np.ndarray, values: np.ndarray, title: str) -> bytes:
    """The residuals (predicted - true): their histogram, and against the true value, where a
    trend says the model shrinks toward the mean."""
    residuals = np.asarray(values).reshape(len(targets), -1)[:, 0] - targets
    rows = shown_rows(len(targets))
    with figure(8, 3.2, columns=2) as (fig, (histogram, trend), png):
        histogram.hist(residuals, bins=min(50, max(10, len(residuals) // 20)), color=FOLD_COLORS[0], edgecolor="white")
        histogram.axvline(0, color="grey", linestyle=":")
        histogram.set(xlabel="residual (predicted - true)", ylabel="OOF rows", title=title)
        trend.scatter(targets[rows], residuals[rows], s=8, alpha=0.4, color=FOLD_COLORS[0], edgecolors="none")
        trend.axhline(0, color="grey", linestyle=":")
        trend.set(xlabel="true", ylabel="residual", title="residual against the true value")
        for axis in (histogram, trend):
            axis.grid(alpha=0.3)
    return bytes(png)


def predictions_section(data: ReportData) -> str:
    """The best experiment's scatter and each blend's, side by side."""
    targets = data.competition.targets
    return each_model(data, lambda values, title: scatter(targets, values, title), "predicted against true")


def residuals_section(data: ReportData) -> str:
    best = data.best
    if best is None:
        return NOT_TRAINED
    targets = data.competition.targets
    residuals = best.oof_probs[:, 0] - targets
    text = (f"<p>{esc(best.name)}: mean residual {residuals.mean():+.4f} <span class=\"muted\">(bias; 0 is none)</span>, "
            f"RMSE {np.sqrt(np.mean(residuals ** 2)):.4f}, MAE {np.mean(np.abs(residuals)):.4f}; "
            f"the target's standard deviation is {targets.std():.4f} (the RMSE of predicting the mean)</p>")
    return text + img(residuals_figure(targets, best.oof_probs, f"{best.name} (OOF)"), f"residuals of {best.name}")


SECTIONS = (
    ("predictions", "Predicted against true", predictions_section),
    ("residuals", "Residuals", residuals_section),
)
