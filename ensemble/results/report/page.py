"""The report as one HTML file: inline CSS, figures as base64 PNG, no script and no outside address.

Every text taken from the workspace (names, settings, notes) is escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import numpy as np

from ensemble.data.competition import Competition
from ensemble.registry import Registry
from ensemble.results.report import figures, multi_label, regression, single_label
from ensemble.results.report.collect import ExperimentSummary, ReportData
from ensemble.results.report.data_section import audit_section
from ensemble.results.report.markup import esc, img, score, section, table

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; padding: 0 16px; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 36px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
.wide { overflow-x: auto; } .note { color: #8a5a00; } .muted { color: #666; font-size: 13px; }
img { max-width: 100%; display: block; margin: 4px 0 12px; }
nav a { margin-right: 12px; }
.strip { display: flex; flex-wrap: wrap; gap: 6px; align-items: flex-start; margin: 4px 0 14px; }
.strip figure { margin: 0; width: 72px; font-size: 11px; text-align: center; overflow-wrap: anywhere; }
.strip img { width: 64px; height: 64px; margin: 0 auto 2px; image-rendering: pixelated; }
.strip .missing { width: 64px; height: 64px; margin: 0 auto 2px; background: #eee; color: #8a5a00; line-height: 64px; }
.pair { border-left: 3px solid #ddd; padding-left: 6px; }
.figures { display: flex; flex-wrap: wrap; gap: 8px 32px; align-items: flex-start; } .figures > div { max-width: 100%; }
"""

# Every kind's page: these first, then the kind's own sections (KIND_PAGES), then AFTER.
BEFORE = (
    ("experiments", "Experiments"),
    ("curves", "Training curves"),
)
AFTER = (
    ("diversity", "Diversity"),
    ("blends", "Blends"),
    ("settings", "Settings"),
    ("versions", "Versions"),
)


@dataclass(frozen=True)
class KindPage:
    """What the page shows for one task kind: what is predicted, in the header's words, and the
    sections only that kind has: (anchor, title, builder(data) -> HTML)."""

    predicted: Callable[[Competition], str]
    sections: tuple[tuple[str, str, Callable[[ReportData], str]], ...]


KIND_PAGES: Registry[KindPage] = Registry("report page of a task kind")
KIND_PAGES.register("single_label")(KindPage(lambda competition: f"{len(competition.classes)} classes", single_label.SECTIONS))
KIND_PAGES.register("multi_label")(KindPage(lambda competition: f"{len(competition.classes)} tags", multi_label.SECTIONS))
KIND_PAGES.register("regression")(KindPage(lambda competition: f"a number per image ({esc(repr(competition.classes[0]))})", regression.SECTIONS))


def sections_for(task: str) -> tuple[tuple[str, str], ...]:
    """(anchor, title) of every section a competition of this kind shows, in order."""
    return BEFORE + tuple((anchor, title) for anchor, title, _ in KIND_PAGES.get(task).sections) + AFTER


# Shown (first) only when the workspace has audit/audit.json.
DATA_SECTION = ("data", "Data")


def spread(fold_scores: list) -> str:
    values = np.array([value for value in fold_scores if value is not None], dtype=float)
    return f"{values.mean():.4f} &plusmn; {values.std():.4f}" if len(values) else "-"


def experiments_section(data: ReportData) -> str:
    rows = [
        [
            esc(experiment.name), esc(experiment.model), score(experiment.oof_score), spread(experiment.fold_scores),
            " ".join(score(value) for value in experiment.fold_scores), f"{experiment.seconds:.0f}s",
            f'<span class="note">{esc(experiment.note)}</span>' if experiment.note else "",
        ]
        for experiment in data.experiments
    ]
    header = ["experiment", "model", f"OOF {data.metric.name}", "fold mean ± std", "folds", "train time", "note"]
    better = "higher" if data.metric.greater_is_better else "lower"
    body = f'<p class="muted">Best first; {esc(data.metric.name)}: {better} is better. Scores are recomputed from the cached logits.</p>'
    body += table(header, rows, numeric={2, 3, 5})
    scored = [experiment for experiment in data.experiments if any(value is not None for value in experiment.fold_scores)]
    if scored:
        body += "<h3>Fold scores and their spread</h3>" + img(
            figures.fold_scores([e.name for e in scored], [e.fold_scores for e in scored], data.metric.name), "fold scores"
        )
    return body


def curves_section(data: ReportData) -> str:
    parts = []
    for experiment in data.experiments:
        if not any(experiment.histories.values()):
            parts.append(f"<h3>{esc(experiment.name)}</h3><p>No per-epoch history in its result.json files.</p>")
            continue
        parts.append(f"<h3>{esc(experiment.name)} <span class=\"muted\">({esc(experiment.model)})</span></h3>")
        parts.append(img(figures.training_curves(experiment.histories, data.metric.name), f"training curves of {experiment.name}"))
    return "".join(parts)


def oof_correlation(experiments: list[ExperimentSummary]) -> np.ndarray:
    """Pearson correlation of the experiments' OOF probabilities, every row and class flattened: (n, n)."""
    flat = np.stack([experiment.oof_probs.ravel() for experiment in experiments])
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.corrcoef(flat)
    return np.nan_to_num(matrix, nan=0.0)


def diversity_section(data: ReportData) -> str:
    complete = [experiment for experiment in data.experiments if experiment.oof_probs is not None]
    if len(complete) < 2:
        return "<p>Needs two experiments with every fold trained.</p>"
    matrix = oof_correlation(complete)
    text = ('<p class="muted">Pearson correlation of OOF probabilities (every row and class). '
            "Blending gains most from good experiments that are least correlated.</p>")
    return text + img(figures.correlation([experiment.name for experiment in complete], matrix), "correlation heatmap")


def blends_section(data: ReportData) -> str:
    if not data.blends:
        return "<p>No blends yet: run <code>ens blend</code>.</p>"
    parts = []
    for blend in data.blends:
        parts.append(f"<h3>{esc(blend.name)} <span class=\"muted\">({esc(blend.method)})</span></h3>")
        in_sample = f" (fit and scored on the same rows: {score(blend.oof_score_in_sample)})" if blend.oof_score_in_sample is not None else ""
        parts.append(f"<p>OOF {esc(blend.metric)}: <b>{score(blend.oof_score)}</b>{in_sample}</p>")
        # A stacker has no weights: its members are inputs of a learned model.
        rows = [[esc(member.get("name")), "-" if member.get("weight") is None else f"{member['weight']:.3f}", score(member.get("oof_score"))] for member in blend.members]
        parts.append(table(["member", "weight", f"OOF {blend.metric}"], rows, numeric={1, 2}))
    return "".join(parts)


def flatten(record: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def settings_section(data: ReportData) -> str:
    """Settings every experiment shares, once; then a row per experiment of the settings that differ."""
    flats = {
        experiment.name: flatten({key: experiment.settings.get(key) for key in ("train", "device", "versions") if key in experiment.settings})
        for experiment in data.experiments
    }
    keys = list(dict.fromkeys(key for flat in flats.values() for key in flat))
    shared = [key for key in keys if len({repr(flat.get(key)) for flat in flats.values()}) == 1]
    differing = [key for key in keys if key not in shared]
    body = '<p class="muted">From each experiment\'s settings.json: what made it, and the versions it was trained with.</p>'
    if shared:
        body += "<h3>Shared by every experiment</h3>" + table(
            ["setting", "value"], [[esc(key.removeprefix("train.")), esc(next(iter(flats.values()))[key])] for key in shared]
        )
    if differing:
        rows = [[esc(name)] + [esc(flat.get(key, "")) for key in differing] for name, flat in flats.items()]
        body += "<h3>Different between experiments</h3>" + table(["experiment"] + [key.removeprefix("train.") for key in differing], rows)
    return body


def versions_section(data: ReportData) -> str:
    return table(["package", "version"], [[esc(name), esc(version)] for name, version in data.versions.items()])


BUILDERS = {
    "experiments": experiments_section,
    "curves": curves_section,
    "diversity": diversity_section,
    "blends": blends_section,
    "settings": settings_section,
    "versions": versions_section,
}


def render(data: ReportData) -> str:
    competition = data.competition
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"<h1>ens report</h1><p class=\"muted\">{esc(data.root)} &middot; {made} &middot; {len(competition.train_ids)} train rows, "
        f"{esc(competition.task.name)}: {KIND_PAGES.get(competition.task.name).predicted(competition)}, metric {esc(data.metric.name)}</p>"
    )
    # An audit is worth showing before any experiment: first, after the nav.
    data_html = section(*DATA_SECTION, audit_section(data.audit)) if data.audit is not None else ""
    if not data.experiments:
        body = data_html + section("experiments", "Experiments", "<p><b>No experiments yet.</b> Run <code>ens folds</code>, then "
                                                                 "<code>ens train-folds --name NAME</code>, and <code>ens report</code> again.</p>")
        body += section("versions", "Versions", versions_section(data))
    else:
        sections = sections_for(competition.task.name)
        builders = BUILDERS | {anchor: build for anchor, _, build in KIND_PAGES.get(competition.task.name).sections}
        shown = ((DATA_SECTION,) if data_html else ()) + sections
        nav = "<nav>" + "".join(f'<a href="#{anchor}">{esc(title)}</a>' for anchor, title in shown) + "</nav>"
        body = nav + data_html + "".join(section(anchor, title, builders[anchor](data)) for anchor, title in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>ens report: {esc(data.root.name)}</title>'
            f"<style>{STYLE}</style></head><body>{header}{body}</body></html>\n")
