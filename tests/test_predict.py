"""`ens predict` and `train-folds --tta`: logits again from saved fold checkpoints, through the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from ensemble import metrics
from ensemble.artifacts.store import load_logits
from ensemble.cli import app
from ensemble.config import Workspace
from ensemble.errors import EnsError
from ensemble.inference import predict

runner = CliRunner()


def ens(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def logits(root, experiment: str, name: str) -> np.ndarray:
    return load_logits(root / "models" / experiment / name).values


def test_predict_without_tta_reproduces_the_cached_logits(trained_copy):
    result = ens("predict", "-w", trained_copy, "-n", "a", "--as", "again")
    assert result.exit_code == 0, result.output
    for name in ("oof.npz", "test.npz"):
        np.testing.assert_array_equal(logits(trained_copy, "again", name), logits(trained_copy, "a", name))
    settings = json.loads((trained_copy / "models" / "again" / "settings.json").read_text())
    assert settings["source"]["experiment"] == "a" and len(settings["source"]["checkpoints_sha256"]) == 3
    assert (settings["train"]["tta"], settings["train"]["tta_merge"]) == ("none", "mean")
    board = json.loads(ens("leaderboard", "-w", trained_copy, "--format", "json").stdout)
    scores = {row["name"]: row["oof_score"] for row in board}
    assert scores["again"] == scores["a"]
    again = ens("predict", "-w", trained_copy, "-n", "a", "--as", "again")  # already done: a rerun is safe
    assert again.exit_code == 0 and "nothing predicted" in again.output


def test_tta_experiment_goes_stale_when_its_source_is_trained_again(trained_copy):
    result = ens("predict", "-w", trained_copy, "-n", "a", "--tta", "hflip,rot90", "--tta-merge", "gmean", "--as", "a-tta", "--keep-views")
    assert result.exit_code == 0, result.output
    assert not np.allclose(logits(trained_copy, "a-tta", "oof.npz"), logits(trained_copy, "a", "oof.npz"))
    views = np.load(trained_copy / "models" / "a-tta" / "fold1" / "views.npz")
    assert views["views"].tolist() == ["identity", "hflip", "rot90", "rot180", "rot270"]
    fold_oof = load_logits(trained_copy / "models" / "a" / "fold1" / "oof.npz").values
    np.testing.assert_allclose(views["oof"][0], fold_oof, atol=1e-5)  # the identity view is the plain model
    assert ens("blend", "-w", trained_copy, "-n", "s", "--experiments", "a,a-tta").exit_code == 0

    # Trained again with other settings (fold 0 alone, to keep the test short): other weights.
    assert ens("train-folds", "-w", trained_copy, "-n", "a", "--epochs", "2", "--force", "--folds", "0").exit_code == 0
    board = {row["name"]: row for row in json.loads(ens("leaderboard", "-w", trained_copy, "--format", "json").stdout)}
    assert board["a-tta"]["oof_score"] is None and "trained again" in board["a-tta"]["note"]
    refused = ens("blend", "-w", trained_copy, "-n", "s2", "--experiments", "b,a-tta")
    assert refused.exit_code == 1 and "a-tta" in refused.output and "trained again" in refused.output


class Killed(Exception):
    pass


def test_a_predicted_experiment_resumes_after_a_kill(trained_copy):
    workspace = Workspace.load(trained_copy)
    unbroken = predict.predict_experiment(workspace, "a", "whole", "vflip,scale:0.75")

    def kill_after_first_fold(event):
        if isinstance(event, predict.FoldPredicted):
            raise Killed

    with pytest.raises(Killed):
        predict.predict_experiment(workspace, "a", "cut", "vflip,scale:0.75", progress=kill_after_first_fold)
    assert not (trained_copy / "models" / "cut" / "oof.npz").exists()
    resumed = predict.predict_experiment(workspace, "a", "cut", "vflip,scale:0.75")
    assert (resumed.trained, resumed.kept) == ([1, 2], [0])
    assert resumed.oof_score == unbroken.oof_score
    for name in ("oof.npz", "test.npz"):
        np.testing.assert_array_equal(logits(trained_copy, "cut", name), logits(trained_copy, "whole", name))
    changed = ens("predict", "-w", trained_copy, "-n", "a", "--tta", "hflip", "--as", "cut")
    assert changed.exit_code == 1 and "other settings" in changed.output


def test_a_new_test_folder_matches_the_competitions_test_set(trained_copy, tmp_path):
    # One column per class: the CSV carries probabilities to compare (the sample is not part of an experiment's identity).
    test_ids = pd.read_csv(trained_copy / "data" / "test.csv", dtype=str)["id"].tolist()
    pd.DataFrame({"id": test_ids, "owl": 0.3, "cat": 0.3, "dog": 0.4}).to_csv(trained_copy / "data" / "sample_submission.csv", index=False)
    assert ens("predict", "-w", trained_copy, "-n", "b", "--tta", "hflip,shift:0.1", "--as", "b-tta").exit_code == 0
    expected = dict(zip(test_ids, metrics.softmax(logits(trained_copy, "b-tta", "test.npz"))))

    new_ids = test_ids[::-2]  # a later batch: some of the images, in another order, elsewhere
    (tmp_path / "batch").mkdir()
    for image_id in new_ids:
        shutil.copy(trained_copy / "data" / "test" / f"{image_id}.png", tmp_path / "batch" / f"{image_id}.png")
    pd.DataFrame({"id": new_ids, "note": "x"}).to_csv(tmp_path / "batch.csv", index=False)
    out = tmp_path / "elsewhere" / "batch-predictions.csv"
    args = ("predict", "-w", trained_copy, "-n", "b-tta", "--test-csv", tmp_path / "batch.csv", "--test-images", tmp_path / "batch", "--out", out)
    result = ens(*args)
    assert result.exit_code == 0, result.output
    assert "TTA hflip,shift:0.1 (mean)" in result.stdout  # the experiment's own policy by default
    written = pd.read_csv(out, dtype={"id": str})
    assert written.columns.tolist() == ["id", "owl", "cat", "dog"] and written["id"].tolist() == new_ids
    for row, image_id in zip(written.itertuples(index=False), new_ids):
        np.testing.assert_allclose([row.cat, row.dog, row.owl], expected[image_id], rtol=2e-5)
    assert ens(*args).exit_code == 1  # not replaced without --force


def test_train_folds_with_tta_caches_oof_and_test_under_the_same_policy(trained_copy):
    result = ens("train-folds", "-w", trained_copy, "-n", "t", "--tta", "d4, none", "--tta-merge", "max")
    assert result.exit_code == 0, result.output
    settings = json.loads((trained_copy / "models" / "t" / "settings.json").read_text())
    assert (settings["train"]["tta"], settings["train"]["tta_merge"]) == ("d4", "max")
    # Its checkpoints under its own policy (the default) give back its cached OOF and test logits.
    assert ens("predict", "-w", trained_copy, "-n", "t", "--as", "t2").exit_code == 0
    for name in ("oof.npz", "test.npz"):
        np.testing.assert_allclose(logits(trained_copy, "t2", name), logits(trained_copy, "t", name), atol=1e-5)
    assert not np.allclose(logits(trained_copy, "t", "oof.npz"), logits(trained_copy, "a", "oof.npz"))


def test_an_experiment_trained_before_tta_existed_resumes_blends_and_predicts(trained_copy):
    root = trained_copy / "models" / "a"
    settings = json.loads((root / "settings.json").read_text())
    del settings["train"]["tta"], settings["train"]["tta_merge"]
    (root / "settings.json").write_text(json.dumps(settings))
    for fold in range(3):
        result = json.loads((root / f"fold{fold}" / "result.json").read_text())
        del result["checkpoint_sha256"]
        (root / f"fold{fold}" / "result.json").write_text(json.dumps(result))
        checkpoint = torch.load(root / f"fold{fold}" / "model.pt", weights_only=True)
        del checkpoint["net_options"]
        torch.save(checkpoint, root / f"fold{fold}" / "model.pt")
    again = ens("train-folds", "-w", trained_copy, "-n", "a")
    assert again.exit_code == 0 and "nothing trained" in again.output  # same identity, not "other settings"
    assert ens("blend", "-w", trained_copy, "-n", "old", "--experiments", "a").exit_code == 0
    assert ens("predict", "-w", trained_copy, "-n", "a", "--as", "a-new").exit_code == 0
    np.testing.assert_array_equal(logits(trained_copy, "a-new", "oof.npz"), logits(trained_copy, "a", "oof.npz"))


@pytest.mark.parametrize(
    "args, message",
    [
        (("-n", "a", "--tta", "hflip,mirror", "--as", "x"), "error: unknown TTA view 'mirror'; expected one of: d4, hflip, none, rot90, scale, shift, vflip\n"),
        (("-n", "a"), "give either --as NEW, or --test-csv, --test-images and --out"),
        (("-n", "a", "--as", "x", "--out", "y.csv"), "give either --as NEW, or --test-csv"),
        (("-n", "a", "--out", "y.csv"), "needs all three of --test-csv, --test-images and --out"),
        (("-n", "a", "--as", "a"), "name a new experiment"),
        (("-n", "nope", "--as", "x"), "no experiment named 'nope'"),
        (("-n", "a", "--tta-merge", "median", "--as", "x"), "unknown TTA merge 'median'"),
    ],
)
def test_predict_errors_are_one_line(trained_dir, args, message):
    result = ens("predict", "-w", trained_dir, *args)
    assert result.exit_code == 1
    assert message in result.output and result.output.count("\n") == 1


@pytest.mark.parametrize("key, value", [("model", "resnet10t"), ("size", 24)])
def test_checkpoints_that_do_not_fit_the_settings_are_refused(trained_copy, key, value):
    path = trained_copy / "models" / "a" / "settings.json"
    settings = json.loads(path.read_text())
    settings["train"][key] = value
    path.write_text(json.dumps(settings))
    result = ens("predict", "-w", trained_copy, "-n", "a", "--as", "x")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "fold0/model.pt: checkpoint is a test_resnet at 16px" in result.output and str(value) in result.output
    assert not (trained_copy / "models" / "x").exists()


def test_train_folds_refuses_an_unknown_view(trained_dir):
    result = ens("train-folds", "-w", trained_dir, "-n", "x", "--tta", "flip")
    assert result.exit_code == 1 and result.output.startswith("error: unknown TTA view 'flip'; expected one of:")
    assert not (trained_dir / "models" / "x").exists()


def test_views_kept_by_predict_are_blend_members(trained_copy):
    from ensemble.blend.members import load_members, resolve_names
    from ensemble.data.competition import load_competition

    assert ens("predict", "-w", trained_copy, "-n", "a", "--tta", "hflip", "--as", "a-h", "--keep-views").exit_code == 0
    models = trained_copy / "models"
    competition = load_competition(Workspace.load(trained_copy), check_images=False)
    names, _ = resolve_names(models, competition, ["a", "a-h:*"])
    assert names == ["a", "a-h:identity", "a-h:hflip"]
    members = load_members(models, competition, names)
    # The identity view is the plain model, fold by fold: its OOF and fold-mean test logits are a's.
    np.testing.assert_allclose(members.oof[1], members.oof[0], atol=1e-5)
    np.testing.assert_allclose(members.test[1], members.test[0], atol=1e-5)
    assert not np.allclose(members.oof[2], members.oof[0], atol=1e-3)

    # Stacking reads each fold's own test logits, of views too; a view may come first.
    result = ens("blend", "-w", trained_copy, "-n", "v", "--method", "stack", "--experiments", "a-h:*,a")
    assert result.exit_code == 0, result.output
    made = json.loads((trained_copy / "submissions" / "v.json").read_text())
    assert [member["name"] for member in made["members"]] == names[1:] + names[:1]
    assert sorted(made["inputs_sha256"]["a-h:hflip"]) == ["fold0/views.npz", "fold1/views.npz", "fold2/views.npz"]

    unknown = ens("blend", "-w", trained_copy, "-n", "x", "--experiments", "a-h:vflip")
    assert unknown.exit_code == 1 and "views.npz: no view 'vflip'; it has identity, hflip" in unknown.output
    never_kept = ens("blend", "-w", trained_copy, "-n", "x", "--experiments", "a:hflip")
    assert never_kept.exit_code == 1 and "no per-view logits" in never_kept.output and "--keep-views" in never_kept.output


@pytest.mark.parametrize("target", ["as", "test-csv"])
def test_a_damaged_checkpoint_is_refused_before_it_predicts(trained_copy, tmp_path, target):
    from tests.test_cli import one_line_error
    from tests.test_guards import new_test_set
    from tests.test_torch_files import damage

    args = ("--as", "p") if target == "as" else (*new_test_set(trained_copy, tmp_path), "--out", tmp_path / "out.csv")
    path = trained_copy / "models" / "a" / "fold1" / "model.pt"
    damage(path, 4096)
    result = ens("predict", "-w", trained_copy, "-n", "a", *args)
    one_line_error(result, f"{path}: damaged or replaced", "result.json", "ens train-folds --name a --folds 1 --force")
    assert not (trained_copy / "models" / "p").exists() and not (tmp_path / "out.csv").exists()


def test_a_predict_started_while_another_writes_the_experiment_is_refused(trained_copy, monkeypatch):
    """Two `predict --as x` with other TTA at once: the second is refused in one line while the
    first holds the folds, and the result is the first's alone (settings.json names the TTA
    its fold logits were made with), never a mix."""
    workspace = Workspace.load(trained_copy)
    real_read_images = predict.competition_images
    refused = []

    def read_images_while_another_predict_starts(*args, **kwargs):
        if not refused:
            monkeypatch.setattr(predict, "competition_images", real_read_images)
            with pytest.raises(EnsError) as error:
                predict.predict_experiment(workspace, "a", "x", "vflip,rot90")
            refused.append(str(error.value))
        return real_read_images(*args, **kwargs)

    monkeypatch.setattr(predict, "competition_images", read_images_while_another_predict_starts)
    result = ens("predict", "-w", trained_copy, "-n", "a", "--tta", "hflip", "--as", "x")
    assert result.exit_code == 0, result.output
    assert len(refused) == 1 and "fold 0 is being predicted by another process" in refused[0] and "\n" not in refused[0]
    settings = json.loads((trained_copy / "models" / "x" / "settings.json").read_text())
    assert settings["train"]["tta"] == "hflip"
    assert ens("predict", "-w", trained_copy, "-n", "a", "--tta", "hflip", "--as", "alone").exit_code == 0
    for name in ("fold0/oof.npz", "fold2/test.npz", "oof.npz", "test.npz"):
        np.testing.assert_array_equal(logits(trained_copy, "x", name), logits(trained_copy, "alone", name))


def test_an_experiment_trained_meanwhile_is_never_replaced_by_predictions(trained_copy, monkeypatch):
    """`predict --as x --force` checks that x is not a trained experiment; if train-folds -n x
    writes it between that check and predict's locks, the plan made under the locks refuses it."""
    from ensemble.training.experiment import train_experiment

    workspace = Workspace.load(trained_copy)
    real_writer = predict.ExperimentWriter

    def x_trained_before_the_locks(*args, **kwargs):
        train_experiment(workspace, "x", workspace.train, [0])
        return real_writer(*args, **kwargs)

    monkeypatch.setattr(predict, "ExperimentWriter", x_trained_before_the_locks)
    result = ens("predict", "-w", trained_copy, "-n", "a", "--tta", "hflip", "--as", "x", "--force")
    assert result.exit_code == 1 and "a trained experiment; predict never replaces trained weights" in result.stderr, result.output
    assert (trained_copy / "models" / "x" / "fold0" / "model.pt").is_file()
    assert "source" not in json.loads((trained_copy / "models" / "x" / "settings.json").read_text())
