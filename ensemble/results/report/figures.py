"""The report's figures, drawn with matplotlib's Agg backend and returned as PNG bytes.

matplotlib is imported inside `figure()`, so importing this module costs nothing and never
touches a display. Each function takes arrays, not files.
"""

from __future__ import annotations

import contextlib
import io
from typing import Iterator

import numpy as np

DPI = 100
FOLD_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


@contextlib.contextmanager
def figure(width: float, height: float, columns: int = 1) -> Iterator[tuple]:
    """Yields (fig, axes, png) where png is filled with the figure's PNG bytes on exit."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, columns, figsize=(width, height), dpi=DPI, squeeze=False)
    png = bytearray()
    try:
        yield fig, axes[0], png
        fig.tight_layout()
        buffer = io.BytesIO()
        # No Software tag: the PNG then carries no address of any site.
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
        png.extend(buffer.getvalue())
    finally:
        plt.close(fig)


def training_curves(histories: dict[int, list[dict]], metric: str) -> bytes:
    """Loss (train solid, validation dashed) and validation score per epoch, one color per fold."""
    with figure(8, 2.6, columns=2) as (fig, (loss_axis, score_axis), png):
        for fold, epochs in sorted(histories.items()):
            color = FOLD_COLORS[fold % len(FOLD_COLORS)]
            x = [epoch["epoch"] for epoch in epochs]
            loss_axis.plot(x, [epoch["train_loss"] for epoch in epochs], "-o", color=color, markersize=3, label=f"fold {fold} train")
            loss_axis.plot(x, [epoch["valid_loss"] for epoch in epochs], "--s", color=color, markersize=3, label=f"fold {fold} valid")
            score_axis.plot(x, [epoch["valid_score"] for epoch in epochs], "-o", color=color, markersize=3, label=f"fold {fold}")
        metrics_seen = sorted({epoch.get("metric", metric) for epochs in histories.values() for epoch in epochs})
        loss_axis.set(title="loss (solid: train, dashed: valid)", xlabel="epoch")
        score_axis.set(title=f"validation {' / '.join(metrics_seen) or metric}", xlabel="epoch")
        for axis in (loss_axis, score_axis):
            axis.grid(alpha=0.3)
            integer_ticks(axis)
        score_axis.legend(fontsize=7, loc="best")
    return bytes(png)


def integer_ticks(axis) -> None:
    """Whole epochs on the x axis, even for one epoch: MaxNLocator's default min_n_ticks (2) made
    a 1-epoch axis fall back to 0.96...1.04."""
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def fold_scores(names: list[str], scores: list[list[float | None]], metric: str) -> bytes:
    """Each experiment's fold scores as dots, their mean as a bar and +-1 standard deviation as a line."""
    height = 1.2 + 0.3 * len(names)
    with figure(8, height) as (fig, (axis,), png):
        for row, (name, fold_values) in enumerate(zip(names, scores)):
            values = np.array([score for score in fold_values if score is not None], dtype=float)
            if not len(values):
                continue
            mean, spread = values.mean(), values.std()
            axis.plot([mean - spread, mean + spread], [row, row], color="#999999", linewidth=4, solid_capstyle="butt")
            axis.plot([mean, mean], [row - 0.3, row + 0.3], color="black", linewidth=2)
            axis.scatter(values, np.full(len(values), row), s=18, color=[FOLD_COLORS[f % 10] for f, s in enumerate(fold_values) if s is not None], zorder=3)
        axis.set_yticks(range(len(names)), names)
        axis.set_ylim(len(names) - 0.5, -0.5)
        axis.set(xlabel=f"{metric} per fold (dots), mean (bar), +-1 std (grey)")
        axis.grid(axis="x", alpha=0.3)
    return bytes(png)


def confusion(targets: np.ndarray, probs: np.ndarray, classes: tuple[str, ...], title: str) -> bytes:
    """Counts of true class (rows) against predicted class (columns), colored by share of the row."""
    n_classes = len(classes)
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (targets, probs.argmax(axis=1)), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = min(2.4 + 0.4 * n_classes, 14)
    with figure(side + 1, side) as (fig, (axis,), png):
        image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        if n_classes <= 15:
            for (row, column), count in np.ndenumerate(counts):
                axis.text(column, row, str(count), ha="center", va="center", fontsize=8, color="white" if shares[row, column] > 0.6 else "black")
        if n_classes <= 40:
            labels = [label[:14] for label in classes]
            slanted = n_classes > 4 and max(len(label) for label in labels) > 3
            axis.set_xticks(range(n_classes), labels, rotation=45 if slanted else 0, ha="right" if slanted else "center", fontsize=8)
            axis.set_yticks(range(n_classes), labels, fontsize=8)
        axis.set(xlabel="predicted", ylabel="true", title=title)
        fig.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of the true class")
    return bytes(png)


def correlation(names: list[str], matrix: np.ndarray) -> bytes:
    """Pearson correlation between experiments' OOF probabilities; lower means more to gain by blending.

    The diagonal (always 1) is left blank so the colors spread over the pairs alone.
    """
    n = len(names)
    pairs = matrix[~np.eye(n, dtype=bool)]
    # Colors span the pairs' range, widened to whole tenths so that a tiny spread is not blown up.
    low, high = np.floor(pairs.min() * 10) / 10, np.ceil(pairs.max() * 10) / 10
    if high - low < 0.1:
        high = low + 0.1
    side = min(2.6 + 0.45 * n, 14)
    with figure(side + 1.2, side) as (fig, (axis,), png):
        shown = np.where(np.eye(n, dtype=bool), np.nan, matrix)
        image = axis.imshow(shown, cmap="viridis", vmin=low, vmax=high)
        if n <= 20:
            for (row, column), value in np.ndenumerate(matrix):
                if row != column:
                    light = (value - low) / (high - low) > 0.6
                    axis.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=9 if n <= 10 else 7, color="black" if light else "white")
        axis.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
        axis.set_yticks(range(n), names, fontsize=8)
        fig.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="correlation")
    return bytes(png)


def reliability_bins(targets: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(confidence, accuracy, count) per bin of top-class probability, and the expected calibration error."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == targets
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    mean_confidence = np.bincount(bins, weights=confidence, minlength=n_bins) / np.maximum(counts, 1)
    accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / np.maximum(counts, 1)
    ece = float(np.sum(counts * np.abs(accuracy - mean_confidence)) / max(len(targets), 1))
    return mean_confidence, accuracy, counts, ece


def reliability(targets: np.ndarray, probs: np.ndarray, title: str) -> bytes:
    """Accuracy against confidence of the top class, per bin; the diagonal is perfect calibration."""
    mean_confidence, accuracy, counts, ece = reliability_bins(targets, probs)
    used = counts > 0
    with figure(8, 3.2, columns=2) as (fig, (curve, histogram), png):
        curve.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
        curve.plot(mean_confidence[used], accuracy[used], "-o", color=FOLD_COLORS[0], label=f"OOF (ECE {ece:.3f})")
        curve.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-class probability)", ylabel="accuracy", title=title)
        curve.legend(fontsize=8, loc="upper left")
        curve.grid(alpha=0.3)
        edges = np.linspace(0, 1, len(counts) + 1)
        histogram.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=FOLD_COLORS[0], edgecolor="white")
        histogram.set(xlim=(0, 1), xlabel="confidence (top-class probability)", ylabel="OOF rows", title="rows per bin")
    return bytes(png)


THUMBNAIL = 48  # px: the Data section's pictures of duplicate groups and train/test pairs


def thumbnail(path, size: int = THUMBNAIL) -> bytes:
    """One image file as a small RGB PNG (size x size, as training reads it); EnsError when unreadable."""
    from PIL import Image

    from ensemble.data.images import read_image

    buffer = io.BytesIO()
    Image.fromarray(read_image(path, size)).save(buffer, format="PNG")
    return buffer.getvalue()
