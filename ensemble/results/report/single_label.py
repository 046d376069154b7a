"""The report's single-label sections: confusion matrices and calibration of the top class."""

from __future__ import annotations

from ensemble.results.report import figures
from ensemble.results.report.collect import ReportData
from ensemble.results.report.compare import NOT_TRAINED, each_model
from ensemble.results.report.markup import esc, img


def confusion_section(data: ReportData) -> str:
    """The best experiment's matrix and each blend's, side by side."""
    targets, classes = data.competition.targets, data.competition.classes
    return each_model(data, lambda probs, title: figures.confusion(targets, probs, classes, title), "confusion matrix")


def calibration_section(data: ReportData) -> str:
    best = data.best
    if best is None:
        return NOT_TRAINED
    targets = data.competition.targets
    *_, ece = figures.reliability_bins(targets, best.oof_probs)
    text = (f"<p>{esc(best.name)}: expected calibration error {ece:.4f} "
            '<span class="muted">(mean gap between confidence and accuracy, weighted by rows; 0 is perfect)</span></p>')
    return text + img(figures.reliability(targets, best.oof_probs, f"{best.name} (OOF)"), f"reliability diagram of {best.name}")


SECTIONS = (
    ("confusion", "Confusion matrices", confusion_section),
    ("calibration", "Calibration", calibration_section),
)
