"""The report's multi-label sections: how well each tag is found, and the metric against one
global threshold on the OOF tag probabilities.

A tag is predicted as the metrics decide it (metrics.tag_decisions: above the threshold, or an
image's likeliest tag when none is). A threshold t is tried as blends apply theirs
(blend/thresholds.apply_thresholds): every probability moved so that the metrics' fixed 0.5
decides as t would, each image's likeliest tag staying its likeliest.
"""

from __future__ import annotations

import numpy as np

from ensemble import metrics
from ensemble.blend.thresholds import apply_thresholds
from ensemble.results.report.collect import ReportData
from ensemble.results.report.compare import NOT_TRAINED
from ensemble.results.report.figures import FOLD_COLORS, figure
from ensemble.results.report.markup import esc, img, table

THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.025), 3)
# A metric that does not decide tags (map, logloss) is flat against a threshold: the curve shows this one.
CURVE_FALLBACK = "f1_samples"


def at_threshold(probs: np.ndarray, threshold: float) -> np.ndarray:
    """probs (n, n_tags) moved so that metrics.THRESHOLD decides each tag as one global `threshold` would."""
    return apply_thresholds(probs, np.full(np.shape(probs)[1], threshold))


def threshold_curve(targets: np.ndarray, probs: np.ndarray, metric: metrics.Metric) -> np.ndarray:
    """float (len(THRESHOLDS),): the metric at each global threshold."""
    return np.array([metric.score(targets, at_threshold(probs, threshold)) for threshold in THRESHOLDS])


def tag_scores(targets: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    """Per tag, float (n_tags,) each: images with it, predicted with it, precision, recall, F1
    (0 where undefined, as scikit-learn's zero_division=0) and average precision (NaN for a tag no image has)."""
    truth, predicted = np.asarray(targets) > 0.5, metrics.tag_decisions(probs, metrics.every_image_tagged(targets))
    hits = (truth & predicted).sum(axis=0).astype(float)
    positives, chosen = truth.sum(axis=0).astype(float), predicted.sum(axis=0).astype(float)

    def ratio(top, bottom):
        return np.divide(top, bottom, out=np.zeros(len(top)), where=bottom > 0)

    average_precision = [metrics.average_precision(truth[:, tag], probs[:, tag]) if truth[:, tag].any() else np.nan for tag in range(truth.shape[1])]
    return {
        "positives": positives, "predicted": chosen, "precision": ratio(hits, chosen), "recall": ratio(hits, positives),
        "f1": ratio(2 * hits, positives + chosen), "ap": np.array(average_precision),
    }


def tag_f1_figure(tags: tuple[str, ...], f1: np.ndarray, positives: np.ndarray, title: str) -> bytes:
    """One bar per tag, commonest first, labelled with how many images have it."""
    order = np.argsort(-positives, kind="stable")
    height = 1.2 + 0.28 * len(tags)
    with figure(7, min(height, 30)) as (fig, (axis,), png):
        axis.barh(range(len(tags)), f1[order], color=FOLD_COLORS[0])
        axis.set_yticks(range(len(tags)), [f"{tags[tag][:24]} ({positives[tag]:.0f})" for tag in order], fontsize=8)
        axis.set_ylim(len(tags) - 0.5, -0.5)
        axis.set(xlim=(0, 1), xlabel="F1 of the tag's decisions (OOF); images with the tag in brackets", title=title)
        axis.grid(axis="x", alpha=0.3)
    return bytes(png)


def threshold_figure(curves: list[tuple[str, np.ndarray]], metric: str) -> bytes:
    """The metric against the global threshold, one line per model; the best point of each marked."""
    with figure(7, 3.2) as (fig, (axis,), png):
        for index, (name, scores) in enumerate(curves):
            color = FOLD_COLORS[index % len(FOLD_COLORS)]
            axis.plot(THRESHOLDS, scores, "-", color=color, label=name)
            best = int(np.nanargmax(scores)) if metrics.get(metric).greater_is_better else int(np.nanargmin(scores))
            axis.plot(THRESHOLDS[best], scores[best], "o", color=color)
        axis.axvline(metrics.THRESHOLD, color="grey", linestyle=":", label="default 0.5")
        axis.set(xlim=(0, 1), xlabel="global threshold on every tag's probability", ylabel=f"OOF {metric}")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="best")
    return bytes(png)


def tags_section(data: ReportData) -> str:
    """A row per tag: the best experiment's counts and scores, and each blend's F1."""
    best = data.best
    if best is None:
        return NOT_TRAINED
    targets, tags = data.competition.targets, data.competition.classes
    scores = tag_scores(targets, best.oof_probs)
    blends = [blend for blend in data.blends if blend.oof_probs is not None]
    blend_f1 = [tag_scores(targets, blend.oof_probs)["f1"] for blend in blends]
    header = ["tag", "images", "predicted", "precision", "recall", f"F1 {best.name}", "average precision"] + [f"F1 {blend.name}" for blend in blends]
    rows = [
        [esc(tag), f"{scores['positives'][index]:.0f}", f"{scores['predicted'][index]:.0f}", f"{scores['precision'][index]:.3f}",
         f"{scores['recall'][index]:.3f}", f"{scores['f1'][index]:.3f}", "-" if np.isnan(scores["ap"][index]) else f"{scores['ap'][index]:.3f}"]
        + [f"{f1[index]:.3f}" for f1 in blend_f1]
        for index, tag in enumerate(tags)
    ]
    text = (f'<p class="muted">{esc(best.name)}, the best experiment, out of fold: a tag is predicted above {metrics.THRESHOLD}, '
            "or as an image's likeliest tag when none is; average precision does not depend on a threshold.</p>")
    figure_png = tag_f1_figure(tags, scores["f1"], scores["positives"], f"{best.name} (OOF): F1 per tag")
    return text + table(header, rows, numeric=set(range(1, len(header)))) + img(figure_png, f"F1 per tag of {best.name}")


def threshold_section(data: ReportData) -> str:
    best = data.best
    if best is None:
        return NOT_TRAINED
    metric = data.metric if data.metric.thresholded else metrics.get(CURVE_FALLBACK)
    targets = data.competition.targets
    models = [(best.name, best.oof_probs)] + [(blend.name, blend.oof_probs) for blend in data.blends if blend.oof_probs is not None]
    curves = [(name, threshold_curve(targets, probs, metric)) for name, probs in models]
    scores = curves[0][1]
    top = int(np.argmax(scores)) if metric.greater_is_better else int(np.argmin(scores))
    default = metric.score(targets, best.oof_probs)
    text = (f"<p>{esc(best.name)}: OOF {esc(metric.name)} {default:.4f} at the default threshold {metrics.THRESHOLD}; "
            f"{scores[top]:.4f} at {THRESHOLDS[top]:.3f}, the best global threshold "
            '<span class="muted">(tuned on the same OOF rows, so optimistic; a blend tunes it nested out of fold)</span></p>')
    if metric is not data.metric:
        text += f'<p class="muted">{esc(data.metric.name)} does not depend on a threshold; the curve shows {esc(metric.name)}.</p>'
    return text + img(threshold_figure(curves, metric.name), f"{metric.name} against the threshold")


SECTIONS = (
    ("tags", "Tags", tags_section),
    ("threshold", "Threshold", threshold_section),
)
