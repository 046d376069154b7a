"""`ens blend` and `ens leaderboard` on multi-label and regression workspaces, through the CLI.

No model is trained: the tiny competitions of conftest get a folds file (row i in fold i % 3,
written by data/folds.py's writer) and experiments whose OOF and test logits are synthetic,
written through the experiment writer as `ens train-folds` writes them (settings.json from
artifacts/identity.describe_run, each fold's logits, then the combined ones)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ensemble import metrics
from ensemble.blend import METHODS
from ensemble.tasks import sigmoid
from tests.conftest import TAGS, make_multi_label_competition
from tests.test_cli import ens, one_line_error, snapshot

CLASSES = sorted(TAGS)  # the logits' columns: the sorted tags
# Member name -> how sure it is: the truth's weight in its logits (tags) or its noise (values).
MEMBERS = {"sharp": 2.0, "blunt": 0.8, "noise": 0.0}


def write_simple_folds(root, monkeypatch, k: int = 3):
    """folds/folds.csv and folds.json through the folds writer, with row i in fold i % k (the
    stratified splitter is not this test's subject, and may not split every kind yet)."""
    from ensemble.config import FoldSettings, Workspace
    from ensemble.data import folds as folds_module
    from ensemble.data.competition import load_competition

    workspace = Workspace.load(root)
    competition = load_competition(workspace)
    monkeypatch.setattr(folds_module, "assign_folds", lambda competition, settings, duplicates=None: np.arange(len(competition.train_ids)) % settings.k)
    folds_module.write_folds(workspace, competition, FoldSettings(k=k), force=False)
    return folds_module.read_folds(workspace, competition)


def synthetic_logits(competition, sureness: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """(oof: float32 (n_train, n_columns) in train.csv order, test: float32 (n_test, n_columns))."""
    n_train, n_test = len(competition.train_ids), len(competition.test_ids)
    if competition.task.name == "regression":
        noise = 3.0 if sureness == 0 else 1.0 / sureness
        oof = competition.targets + rng.normal(size=n_train) * noise
        return oof[:, None].astype(np.float32), rng.uniform(0, 9, size=(n_test, 1)).astype(np.float32)
    oof = rng.normal(size=competition.targets.shape) + (2 * competition.targets - 1) * sureness
    return oof.astype(np.float32), rng.normal(size=(n_test, oof.shape[1])).astype(np.float32)


def write_experiment(root, name: str, sureness: float, folds, seed: int) -> None:
    """models/NAME as train-folds leaves it, every fold written through the experiment writer."""
    from ensemble.artifacts.identity import describe_run
    from ensemble.artifacts.store import ExperimentDir, Logits
    from ensemble.artifacts.writer import ExperimentWriter, write_fold
    from ensemble.config import Workspace
    from ensemble.data.competition import load_competition

    workspace = Workspace.load(root)
    competition = load_competition(workspace)
    metric = metrics.get(competition.metric)
    rng = np.random.default_rng(seed)
    oof, test = synthetic_logits(competition, sureness, rng)
    record = describe_run(competition, folds, name, workspace.train, "random", {}, {})
    experiment = ExperimentDir(workspace.models_dir, name)
    with ExperimentWriter(experiment, record, folds.k, list(range(folds.k)), force=False) as writer:
        writer.prepare()
        for fold in range(folds.k):
            held_out = folds.fold_of == fold
            fold_test = test + rng.normal(size=test.shape).astype(np.float32) * 0.1  # fold models differ a little
            score = metric.score(competition.targets[held_out], competition.task.outputs(oof[held_out]))
            write_fold(
                experiment,
                fold,
                Logits(competition.train_ids[held_out], competition.classes, oof[held_out]),
                Logits(competition.test_ids, competition.classes, fold_test),
                {"fold": fold, "metric": metric.name, "score": score, "seconds": 0.0},
            )
            writer.combine(competition, folds, metric)


def blendable(root, monkeypatch):
    folds = write_simple_folds(root, monkeypatch)
    for seed, (name, sureness) in enumerate(MEMBERS.items()):
        write_experiment(root, name, sureness, folds, seed)
    return root


@pytest.fixture
def tags_workspace(multi_label_dir, monkeypatch):
    return blendable(multi_label_dir, monkeypatch)


@pytest.fixture
def values_workspace(regression_dir, monkeypatch):
    return blendable(regression_dir, monkeypatch)


def targets_of(root):
    from ensemble.config import Workspace
    from ensemble.data.competition import load_competition

    return load_competition(Workspace.load(root), check_images=False, with_test=False).targets


def members_test(root, kind: str) -> np.ndarray:
    """float64 (n_models, n_test, n_columns): every member's combined test outputs, in test.csv order."""
    from ensemble.artifacts.store import load_logits

    logits = np.stack([load_logits(root / "models" / name / "test.npz").values for name in sorted(MEMBERS)]).astype(np.float64)
    return sigmoid(logits) if kind == "multi_label" else logits


def written(root, name):
    made = json.loads((root / "submissions" / f"{name}.json").read_text())
    return made, pd.read_csv(root / "submissions" / f"{name}.csv", dtype=str, keep_default_na=False), np.load(root / "submissions" / f"{name}.oof.npz")


def check_scores(made, oof, targets, metric):
    """The recorded scores are the metric of the saved outputs, out of fold and in sample."""
    assert made["metric"] == metric
    assert made["oof_score_out_of_fold"] == pytest.approx(metrics.get(metric).score(targets, oof["probs"]))
    assert made["oof_score_in_sample"] == pytest.approx(metrics.get(metric).score(targets, oof["in_sample_probs"]))
    np.testing.assert_array_equal(oof["fold"], np.arange(len(targets)) % 3)


# --- multi-label -----------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_writes_a_tags_submission_with_a_threshold(tags_workspace, method):
    result = ens("blend", "-w", tags_workspace, "-n", "s", "--method", method)
    assert result.exit_code == 0, result.output
    made, frame, oof = written(tags_workspace, "s")
    targets = targets_of(tags_workspace)
    check_scores(made, oof, targets, "f1_samples")
    assert made["task"] == "multi_label" and made["submission"]["kind"] == "tags" and made["tuned_biases"] is None
    assert isinstance(made["thresholds"], float) and 0 < made["thresholds"] < 1
    assert f"threshold, tuned on OOF: {made['thresholds']:.2f} for every tag" in result.stdout
    assert oof["classes"].tolist() == CLASSES and oof["probs"].shape == (36, 3)
    # The sample's rows and columns, every image given tags the competition knows, at least one.
    sample = pd.read_csv(tags_workspace / "data" / "sample_submission.csv", dtype=str)
    assert frame.columns.tolist() == ["id", "tags"] and frame["id"].tolist() == sample["id"].tolist()
    for cell in frame["tags"]:
        tags = cell.split(" ")
        assert tags and set(tags) <= set(TAGS) and len(set(tags)) == len(tags), cell
    weights = [member["weight"] for member in made["members"]]
    assert weights == [None] * 3 if method == "stack" else sum(weights) == pytest.approx(1)


def test_a_mean_blends_tags_decide_at_the_recorded_threshold_in_sample_row_order(tags_workspace):
    assert ens("blend", "-w", tags_workspace, "-n", "m").exit_code == 0
    made, frame, oof = written(tags_workspace, "m")
    threshold = made["thresholds"]
    probs = members_test(tags_workspace, "multi_label").mean(axis=0)
    test_ids = pd.read_csv(tags_workspace / "data" / "test.csv", dtype=str)["id"].tolist()
    for image_id, cell in zip(frame["id"], frame["tags"]):
        row = probs[test_ids.index(image_id)]
        expected = [tag for tag, p in zip(CLASSES, row) if p > threshold] or [CLASSES[int(np.argmax(row))]]
        assert cell == " ".join(expected), (image_id, row, threshold)
    # The OOF file holds the moved probabilities the scores were taken on. In sample they are above
    # 0.5 where above the recorded threshold; out of fold each fold's own, tuned on the other folds.
    raw = sigmoid(np.stack([np.load(tags_workspace / "models" / name / "oof.npz")["logits"] for name in sorted(MEMBERS)]).astype(np.float64)).mean(axis=0)
    np.testing.assert_array_equal(oof["in_sample_probs"] > 0.5, raw > threshold)


def test_tune_thresholds_gives_one_per_tag_and_a_probability_sample_one_column_per_tag(tmp_path, monkeypatch):
    root = blendable(make_multi_label_competition(tmp_path / "probs", sample="probabilities"), monkeypatch)
    result = ens("blend", "-w", root, "-n", "p", "--method", "weighted", "--tune-thresholds")
    assert result.exit_code == 0, result.output
    made, frame, oof = written(root, "p")
    check_scores(made, oof, targets_of(root), "f1_samples")
    assert made["submission"]["kind"] == "probabilities" and set(made["thresholds"]) == set(TAGS)
    assert "thresholds per tag, tuned on OOF: blue " in result.stdout
    assert frame.columns.tolist() == ["id", *reversed(TAGS)]  # the sample's column order
    values = frame[list(TAGS)].astype(float).to_numpy()
    assert ((values >= 0) & (values <= 1)).all()
    assert "note: the probability columns are moved by the tuned thresholds" in result.stderr


def test_a_metric_of_probabilities_gets_no_threshold(tags_workspace):
    result = ens("blend", "-w", tags_workspace, "-n", "a", "--method", "hill", "--metric", "map")
    assert result.exit_code == 0, result.output
    made, _, oof = written(tags_workspace, "a")
    check_scores(made, oof, targets_of(tags_workspace), "map")
    assert made["thresholds"] is None and "tuned on OOF" not in result.stdout


def test_a_stack_of_tags_is_scored_out_of_fold_below_its_in_sample_score(tags_workspace):
    assert ens("blend", "-w", tags_workspace, "-n", "st", "--method", "stack", "--metric", "logloss").exit_code == 0
    made, _, oof = written(tags_workspace, "st")
    check_scores(made, oof, targets_of(tags_workspace), "logloss")
    assert made["oof_score_out_of_fold"] > made["oof_score_in_sample"]  # logloss: lower is better
    assert "one per tag" in made["meta_learner"] and made["params"]["task"] == "multi_label"


# --- regression ----------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_writes_numbers_or_is_refused_in_one_line(values_workspace, method):
    before = snapshot(values_workspace)
    result = ens("blend", "-w", values_workspace, "-n", "v", "--method", method)
    if method in ("rank", "power"):
        one_line_error(result, f"{method} averaging does not apply to a regression", "use --method hill, mean, stack, weighted")
        assert snapshot(values_workspace) == before
        return
    assert result.exit_code == 0, result.output
    made, frame, oof = written(values_workspace, "v")
    check_scores(made, oof, targets_of(values_workspace), "rmse")
    assert made["task"] == "regression" and made["submission"]["kind"] == "values"
    assert made["thresholds"] is None and made["tuned_biases"] is None and "tuned on OOF" not in result.stdout
    assert oof["classes"].tolist() == ["count"] and oof["probs"].shape == (36, 1)
    sample = pd.read_csv(values_workspace / "data" / "sample_submission.csv", dtype=str)
    assert frame.columns.tolist() == ["image_id", "count"] and frame["image_id"].tolist() == sample["image_id"].tolist()
    assert np.isfinite(frame["count"].astype(float)).all()
    if method != "stack":
        weights = [member["weight"] for member in made["members"]]
        assert sum(weights) == pytest.approx(1) and min(weights) >= 0


def test_a_mean_of_values_is_written_in_sample_row_order(values_workspace):
    assert ens("blend", "-w", values_workspace, "-n", "m").exit_code == 0
    _, frame, _ = written(values_workspace, "m")
    values = members_test(values_workspace, "regression").mean(axis=0)[:, 0]
    test_ids = pd.read_csv(values_workspace / "data" / "test.csv", dtype=str)["image_id"].tolist()
    expected = [values[test_ids.index(image_id)] for image_id in frame["image_id"]]
    np.testing.assert_allclose(frame["count"].astype(float), expected, rtol=1e-6)


def test_weighted_values_trust_the_precise_member_and_say_nothing_of_flat_metrics(values_workspace):
    result = ens("blend", "-w", values_workspace, "-n", "w", "--method", "weighted")
    assert result.exit_code == 0, result.output
    made, _, _ = written(values_workspace, "w")
    weights = {member["name"]: member["weight"] for member in made["members"]}
    assert weights["sharp"] == max(weights.values()) and made["optimised"] == "rmse"
    assert "is fit by minimising" not in result.stdout
    result = ens("blend", "-w", values_workspace, "-n", "w2", "--method", "weighted", "--metric", "mae")
    assert "note: weighted is fit by minimising rmse, not mae" in result.stdout


# --- refusals and the leaderboard ------------------------------------------------------------

@pytest.mark.parametrize(
    "workspace, args, fragments",
    [
        ("values_workspace", ["--tune-thresholds"], ["--tune-thresholds does not apply to a regression"]),
        ("values_workspace", ["--metric", "accuracy"], ["--metric: metric 'accuracy' does not apply to a regression competition", "mae, r2, rmse"]),
        ("values_workspace", ["--method", "stack", "--meta", "logreg"], ["--meta: unknown meta-learner 'logreg'; expected one of: ridge, lgbm"]),
        ("tags_workspace", ["--metric", "qwk"], ["--metric: metric 'qwk' does not apply to a multi_label competition"]),
        ("tags_workspace", ["--metric", "map", "--tune-thresholds"], ["--tune-thresholds works with the metrics f1_macro, f1_samples, f2_samples, not 'map'"]),
        ("tags_workspace", ["--method", "mean", "--power", "3"], ["--power does not apply to --method mean; it applies to: power"]),
    ],
)
def test_refusals_are_one_line_and_write_nothing(request, workspace, args, fragments):
    root = request.getfixturevalue(workspace)
    before = snapshot(root)
    one_line_error(ens("blend", "-w", root, "-n", "x", *args), *fragments)
    assert snapshot(root) == before


@pytest.mark.parametrize("workspace, metric", [("tags_workspace", "f1_samples"), ("values_workspace", "rmse")])
def test_the_leaderboard_scores_and_correlates_the_new_kinds(request, workspace, metric):
    root = request.getfixturevalue(workspace)
    result = ens("leaderboard", "-w", root, "--format", "json", "--correlation")
    assert result.exit_code == 0, result.output
    board = json.loads(result.stdout)
    assert [row["name"] for row in board][0] == "sharp" and {row["metric"] for row in board} == {metric}
    assert all(row["correlation"][row["name"]] == pytest.approx(1) for row in board)
    assert ens("leaderboard", "-w", root, "--correlation").exit_code == 0
    one_line_error(ens("leaderboard", "-w", root, "--metric", "accuracy"), "--metric: metric 'accuracy' does not apply to a")
