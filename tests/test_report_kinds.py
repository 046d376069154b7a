"""`ens report`, `ens leaderboard` and `ens audit` on multi-label and regression workspaces.

The experiments are not trained: their OOF and test logits are made up from the targets plus
noise and written through the real experiment writer (artifacts/writer.py) with a settings.json
from artifacts/identity.describe_run, so the report reads what training would have written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ensemble import metrics
from ensemble.artifacts.identity import describe_run
from ensemble.artifacts.store import ExperimentDir, Logits
from ensemble.artifacts.writer import ExperimentWriter, write_fold
from ensemble.cli import app
from ensemble.config import Workspace
from ensemble.data.competition import Competition, load_competition
from ensemble.data.folds import read_folds, write_folds
from ensemble.results.audit.run import run_audit
from ensemble.results.audit.stats import fold_balance
from ensemble.results.leaderboard import leaderboard
from ensemble.results.report.multi_label import THRESHOLDS, at_threshold, tag_scores
from ensemble.results.report.page import KIND_PAGES, sections_for
from ensemble.tasks import TASKS
from tests.conftest import make_multi_label_competition, make_regression_competition

runner = CliRunner()
MAKERS = {"multi_label": make_multi_label_competition, "regression": make_regression_competition}


def made_up_logits(competition: Competition, rows: np.ndarray | None, noise: float, rng: np.random.Generator) -> np.ndarray:
    """float32 (n, n_columns): tag logits that lean toward the true tags, or values near the true
    ones; for the test rows (rows None), logits of no target in particular."""
    n_columns = len(competition.classes)
    if rows is None:
        return rng.normal(size=(len(competition.test_ids), n_columns)).astype(np.float32)
    targets = np.asarray(competition.targets)[rows].reshape(len(rows), -1)
    if competition.task.name == "multi_label":
        return (3 * (2 * targets - 1) + rng.normal(0, noise, targets.shape)).astype(np.float32)
    return (targets + rng.normal(0, noise, targets.shape)).astype(np.float32)


def synthetic_experiment(workspace: Workspace, name: str, noise: float, seed: int) -> None:
    """An experiment of made-up logits, written as train-folds writes one (every fold, then combined)."""
    competition = load_competition(workspace)
    folds = read_folds(workspace, competition)
    metric = metrics.get(competition.metric)
    record = describe_run(competition, folds, name, workspace.train, "random", {"torch": "none"}, {"train": "x", "test": "y"})
    experiment = ExperimentDir(workspace.models_dir, name)
    rng = np.random.default_rng(seed)
    with ExperimentWriter(experiment, record, folds.k, list(range(folds.k)), force=False) as writer:
        writer.prepare()
        for fold in range(folds.k):
            rows = np.flatnonzero(folds.fold_of == fold)
            oof = made_up_logits(competition, rows, noise, rng)
            score = metric.score(competition.targets[rows], competition.task.outputs(oof))
            epoch = {"fold": fold, "epoch": 1, "epochs": 1, "train_loss": 1.0, "valid_loss": 1.1, "valid_score": score, "metric": metric.name}
            history = [epoch | {"seconds": 1.0}]
            result = {"fold": fold, "metric": metric.name, "score": score, "seconds": 1.0, "history": history}
            test = Logits(competition.test_ids, competition.classes, made_up_logits(competition, None, noise, rng))
            write_fold(experiment, fold, Logits(competition.train_ids[rows], competition.classes, oof), test, result)
            writer.combine(competition, folds, metric)


def hand_blend(workspace: Workspace, name: str, outputs: np.ndarray) -> None:
    """submissions/NAME.json and NAME.oof.npz as a blend writes them (without the group's hashes, as an older one)."""
    competition = load_competition(workspace, check_images=False)
    metric = metrics.get(competition.metric)
    workspace.submissions_dir.mkdir(exist_ok=True)
    record = {"name": name, "method": "mean", "metric": metric.name, "oof_score": metric.score(competition.targets, outputs),
              "members": [{"name": "good", "weight": 0.5, "oof_score": None}, {"name": "noisy", "weight": 0.5, "oof_score": None}]}
    (workspace.submissions_dir / f"{name}.json").write_text(json.dumps(record))
    np.savez(workspace.submissions_dir / f"{name}.oof.npz", ids=competition.train_ids, classes=np.array(competition.classes), probs=outputs)


@pytest.fixture(scope="module", params=sorted(MAKERS))
def workspace(request, tmp_path_factory) -> Workspace:
    """A workspace of the kind with folds, two experiments ('good', 'noisy') and a blend ('hand')."""
    root = MAKERS[request.param](tmp_path_factory.mktemp(request.param) / "ws")
    workspace = Workspace.load(root)
    write_folds(workspace, load_competition(workspace), workspace.folds, force=False)
    synthetic_experiment(workspace, "good", noise=0.5, seed=0)
    synthetic_experiment(workspace, "noisy", noise=3.0, seed=1)
    competition = load_competition(workspace, check_images=False)
    rows = {row["name"]: row for row in leaderboard(workspace)}
    assert set(rows) == {"good", "noisy"}
    from ensemble.artifacts.store import load_logits

    outputs = [competition.task.outputs(load_logits(workspace.models_dir / name / "oof.npz").values) for name in ("good", "noisy")]
    hand_blend(workspace, "hand", np.mean(outputs, axis=0))
    return workspace


def report_page(workspace: Workspace) -> str:
    result = runner.invoke(app, ["report", "-w", str(workspace.root)])
    assert result.exit_code == 0, result.output
    return (workspace.root / "report.html").read_text()


def test_every_task_kind_has_a_report_page():
    assert KIND_PAGES.names() == TASKS.names()


def test_report_shows_the_kind_sections_and_none_of_the_single_label_ones(workspace):
    page = report_page(workspace)
    task = workspace.competition.task
    for anchor, title in sections_for(task):
        assert f'<section id="{anchor}"><h2>{title}</h2>' in page
    assert 'id="confusion"' not in page and 'id="calibration"' not in page
    assert f"<p class=\"muted\">{workspace.root} &middot;" in page and f"36 train rows, {task}: " in page
    if task == "regression":  # the best experiment's figure beside the blend's
        assert "<h3>Best experiment: good</h3><img" in page and "<h3>Blend: hand</h3><img" in page
    else:  # the blend's F1 per tag beside the best experiment's
        assert "<th>F1 good</th><th>average precision</th><th>F1 hand</th>" in page
    assert "<td>good</td><td>test_resnet</td>" in page  # the leaderboard's row, scored with the task's metric


@pytest.mark.parametrize("workspace", ["multi_label"], indirect=True)
def test_multi_label_report_has_per_tag_f1_and_the_threshold_curve(workspace):
    from sklearn.metrics import f1_score

    page = report_page(workspace)
    competition = load_competition(workspace, check_images=False)
    from ensemble.artifacts.store import load_logits

    probs = competition.task.outputs(load_logits(workspace.models_dir / "good" / "oof.npz").values)
    scores = tag_scores(competition.targets, probs)
    expected = f1_score(competition.targets, metrics.tag_decisions(probs), average=None, zero_division=0)
    np.testing.assert_allclose(scores["f1"], expected)
    for tag, f1, positives in zip(competition.classes, scores["f1"], scores["positives"]):
        assert f'<tr><td>{tag}</td><td class="number">{positives:.0f}</td>' in page and f'<td class="number">{f1:.3f}</td>' in page
    default = metrics.get("f1_samples").score(competition.targets, probs)
    assert f"good: OOF f1_samples {default:.4f} at the default threshold 0.5" in page
    # Moving the probabilities decides each tag as the threshold would, and keeps each row's likeliest tag.
    for threshold in (0.2, 0.7):
        moved = at_threshold(probs, threshold)
        np.testing.assert_array_equal(moved > 0.5, probs > threshold)
        np.testing.assert_array_equal(moved.argmax(axis=1), probs.argmax(axis=1))
    assert THRESHOLDS[0] > 0 and THRESHOLDS[-1] < 1


@pytest.mark.parametrize("workspace", ["regression"], indirect=True)
def test_regression_report_has_the_scatter_and_the_residuals(workspace):
    page = report_page(workspace)
    competition = load_competition(workspace, check_images=False)
    from ensemble.artifacts.store import load_logits

    values = load_logits(workspace.models_dir / "good" / "oof.npz").values[:, 0].astype(np.float64)
    residuals = values - competition.targets
    assert f"good: mean residual {residuals.mean():+.4f}" in page
    assert f"RMSE {metrics.get('rmse').score(competition.targets, values[:, None]):.4f}" in page
    assert "a number per image (&#x27;count&#x27;), metric rmse" in page
    predictions = page[page.index('<section id="predictions">'):page.index("</section>", page.index('<section id="predictions">'))]
    assert predictions.count("<img") == 2  # the best experiment's and the blend's


def test_leaderboard_ranks_and_correlates_the_new_kinds(workspace):
    rows = leaderboard(workspace, correlation=True)
    assert [row["name"] for row in rows] == ["good", "noisy"]  # the less noisy is better, whichever way the metric goes
    assert rows[0]["correlation"]["good"] == pytest.approx(1.0) and rows[0]["correlation"]["noisy"] == rows[1]["correlation"]["good"]
    result = runner.invoke(app, ["leaderboard", "-w", str(workspace.root)])
    assert result.exit_code == 0, result.output
    assert "good" in result.stdout and metrics.get(load_competition(workspace, check_images=False).metric).name in result.stdout


def test_report_never_imports_torch_or_scikit_learn(workspace):
    script = (
        "import sys\nfrom ensemble.config import Workspace\nfrom ensemble.results.report import write_report\n"
        f"write_report(Workspace.load({str(workspace.root)!r}), {str(workspace.root / 'r.html')!r})\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('torch', 'timm', 'torchvision', 'sklearn')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_audit_records_the_target_in_each_fold(workspace):
    competition = load_competition(workspace)
    balance = fold_balance(workspace, competition)
    assert balance["k"] == 3
    if competition.task.name == "multi_label":  # positives of each tag per fold add up to the tag's total
        totals = {tag: sum(fold[tag] for fold in balance["counts"].values()) for tag in competition.classes}
        assert totals == dict(zip(competition.classes, competition.targets.sum(axis=0).astype(int).tolist()))
    else:
        assert sum(fold["rows"] for fold in balance["quantiles"].values()) == 36
        assert all(fold["min"] <= fold["median"] <= fold["max"] for fold in balance["quantiles"].values())


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_audit_runs_on_every_kind_and_compares_targets_not_spellings(tmp_path, kind):
    import shutil

    import pandas as pd

    root = MAKERS[kind](tmp_path / kind)
    images = root / "data" / "train"
    shutil.copy(images / "0000.png", images / "0001.png")  # 0001 a copy of 0000, with the same target spelled otherwise
    train_csv = root / "data" / "train.csv"
    frame = pd.read_csv(train_csv, dtype=str)
    label = frame.columns[1]
    spelled = " ".join(reversed(frame.loc[0, label].split())) if kind == "multi_label" else f"{float(frame.loc[0, label]):.1f}"
    frame.loc[1, label] = spelled
    frame.to_csv(train_csv, index=False)
    result = run_audit(Workspace.load(root))
    duplicates = pd.read_csv(root / "audit" / "duplicates.csv", dtype=str)
    assert {"0000", "0001"} <= set(duplicates["id"])
    assert result.n_conflicts == 0


def test_data_section_shows_the_target_in_each_fold(workspace):
    run_audit(workspace, force=True)
    page = report_page(workspace)
    data = page[page.index('<section id="data">'):page.index("</section>", page.index('<section id="data">'))]
    assert "<h3>Target in each fold</h3>" in data
    competition = load_competition(workspace, check_images=False)
    if competition.task.name == "multi_label":
        assert "<th>fold</th><th>blue</th><th>green</th><th>red</th>" in data
    else:
        assert "<th>fold</th><th>min</th><th>q25</th><th>median</th><th>q75</th><th>max</th><th>mean</th><th>rows</th>" in data
