"""`ens export` and `ens predict --bundle`: a blend packed into a folder predicts without the
workspace what `ens blend` and `ens predict --blend` wrote; a damaged bundle is refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from tests.test_cli import ens, one_line_error
from tests.test_export_blend import assert_same_submission, probability_sample

SAMPLE = Path("data") / "sample_submission.csv"


@pytest.fixture
def exported(trained_copy, tmp_path):
    """A hill blend of a and b (probability columns), exported to tmp_path/bundle."""
    probability_sample(trained_copy)
    assert ens("blend", "-w", trained_copy, "-n", "hill", "--method", "hill", "--hill-steps", "5").exit_code == 0
    result = ens("export", "hill", "-w", trained_copy, "--out", tmp_path / "bundle", "--zip")
    assert result.exit_code == 0, result.output
    return trained_copy, tmp_path / "bundle", result


def predict_bundle(bundle, test_csv, test_images, out, *extra):
    return ens("predict", "--bundle", bundle, "--test-csv", test_csv, "--test-images", test_images, "--out", out, *extra)


def test_bundle_reproduces_the_submission_and_the_blend(exported, tmp_path):
    root, bundle, result = exported
    assert "differ from the blend's by at most" in result.stdout and "images/s" in result.stdout
    files = json.loads((bundle / "manifest.json").read_text())["files"]
    weights = {member["name"]: member["weight"] for member in json.loads((root / "submissions" / "hill.json").read_text())["members"]}
    exported_weights = {f"weights/{name}/fold{fold}.safetensors" for name, weight in weights.items() if weight > 0 for fold in range(3)}
    assert {"bundle.json", "README.md", "requirements.txt"} | exported_weights == {name for name in files if not name.endswith(".whl")}
    assert not any(name.endswith((".pt", ".pkl")) for name in files)
    assert "torch==" in (bundle / "requirements.txt").read_text() and "images/s" in (bundle / "README.md").read_text()
    with zipfile.ZipFile(tmp_path / "bundle.zip") as archive:
        assert "bundle/manifest.json" in archive.namelist()

    moved = shutil.move(str(bundle), tmp_path / "elsewhere")  # no path inside the bundle points back to the workspace
    assert predict_bundle(moved, root / SAMPLE, root / "data" / "test", tmp_path / "sub.csv").exit_code == 0
    assert_same_submission(tmp_path / "sub.csv", root / "submissions" / "hill.csv")

    new = tmp_path / "new"
    new.mkdir()
    for old, fresh in (("t002", "n1"), ("t009", "n2")):
        shutil.copy(root / "data" / "test" / f"{old}.png", new / f"{fresh}.png")
    pd.DataFrame({"id": ["n2", "n1"]}).to_csv(tmp_path / "new.csv", index=False)
    assert predict_bundle(moved, tmp_path / "new.csv", new, tmp_path / "from_bundle.csv").exit_code == 0
    blend_result = ens("predict", "-w", root, "--blend", "hill", "--test-csv", tmp_path / "new.csv", "--test-images", new, "--out", tmp_path / "from_blend.csv")
    assert blend_result.exit_code == 0, blend_result.output
    assert (tmp_path / "from_bundle.csv").read_text() == (tmp_path / "from_blend.csv").read_text()


def test_damaged_or_incomplete_bundles_are_refused(exported, tmp_path):
    root, bundle, _ = exported
    args = (root / SAMPLE, root / "data" / "test", tmp_path / "x.csv")
    weights = sorted(bundle.glob("weights/*/fold1.safetensors"))[-1]
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    one_line_error(predict_bundle(bundle, *args), f"{weights}: damaged: its sha256 is not the one manifest.json records")
    weights.unlink()
    one_line_error(predict_bundle(bundle, *args), f"{weights}: missing from the bundle")
    one_line_error(predict_bundle(tmp_path, *args), "not an ens bundle (no manifest.json)")
    assert not (tmp_path / "x.csv").exists()


def test_bundle_refuses_missing_images_and_existing_outputs(exported, tmp_path):
    root, bundle, _ = exported
    images = Path(shutil.copytree(root / "data" / "test", tmp_path / "images"))
    (images / "t005.png").unlink()
    one_line_error(predict_bundle(bundle, root / SAMPLE, images, tmp_path / "x.csv"), "t005.png: image not found for id 't005'")
    (tmp_path / "x.csv").write_text("keep")
    one_line_error(predict_bundle(bundle, root / SAMPLE, root / "data" / "test", tmp_path / "x.csv"), "x.csv: already exists; use --force")
    one_line_error(ens("export", "hill", "-w", root, "--out", bundle), "bundle: already exists; use --force to replace it")
    assert (tmp_path / "x.csv").read_text() == "keep"


def test_half_reports_the_size_saved_and_refuses_changed_labels(exported, tmp_path, monkeypatch):
    root = exported[0]
    result = ens("export", "hill", "-w", root, "--out", tmp_path / "half", "--half")
    assert result.exit_code == 0, result.output
    assert "MB saved" in result.stderr
    assert json.loads((tmp_path / "half" / "bundle.json").read_text())["half"] is True
    assert sum(path.stat().st_size for path in (tmp_path / "half" / "weights").rglob("*")) < 0.6 * sum(
        path.stat().st_size for path in (tmp_path / "bundle" / "weights").rglob("*")
    )

    from ensemble.workflows.export import export as export_module

    real = export_module.weights_file

    def scrambled(state_dict, half):  # fp16 rounding made large: the labels move
        return real({key: tensor.flip(0) if tensor.is_floating_point() and tensor.dim() > 1 else tensor for key, tensor in state_dict.items()}, half)

    monkeypatch.setattr(export_module, "weights_file", scrambled)
    refused = ens("export", "hill", "-w", root, "--out", tmp_path / "bad", "--half")
    assert refused.exit_code == 1  # after the check run's progress lines, one error line
    assert refused.stderr.strip().splitlines()[-1].startswith("error: --half changes the predicted labels of")
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad.*"))


def test_older_blends_are_not_exported(exported, tmp_path):
    root = exported[0]
    path = root / "submissions" / "hill.json"
    document = json.loads(path.read_text())
    del document["fitted"]
    path.write_text(json.dumps(document))
    one_line_error(ens("export", "hill", "-w", root, "--out", tmp_path / "old"), "run `ens blend -n hill --force`")


@pytest.mark.slow
def test_bundle_installs_offline_into_a_fresh_venv(exported, tmp_path):
    """The wheel into a fresh venv with its own pip and no network, where torch, timm and the
    rest are importable but ens is not (this interpreter's site-packages added by a .pth line,
    which does not run the editable install's finder), then `python -m ensemble predict --bundle`."""
    import site
    import sysconfig

    root, bundle, _ = exported
    venv = tmp_path / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", venv], check=True)
    python = venv / "bin" / "python"
    packages = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    (packages / "machine_libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environment["PIP_NO_INDEX"] = "1"
    missing = subprocess.run([python, "-c", "import torch, timm; import ensemble"], cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert "No module named 'ensemble'" in missing.stderr, (missing.stderr, site.getsitepackages())
    wheel = next(bundle.glob("*.whl"))
    subprocess.run([python, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check", "-q", wheel], check=True, env=environment)
    where = subprocess.run([python, "-c", "import ensemble; print(ensemble.__file__)"], cwd=tmp_path, env=environment, capture_output=True, text=True, check=True)
    assert str(packages) in where.stdout
    run = subprocess.run(
        [python, "-m", "ensemble", "predict", "--bundle", bundle, "--test-csv", root / SAMPLE, "--test-images", root / "data" / "test", "--out", tmp_path / "sub.csv"],
        cwd=tmp_path, env=environment, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    assert_same_submission(tmp_path / "sub.csv", root / "submissions" / "hill.csv")
    assert (venv / "bin" / "ens").is_file()  # the wheel's console script


def test_amp_runs_every_forward_pass_under_autocast_and_is_refused_where_it_does_not_apply(exported, tmp_path, monkeypatch):
    """--amp wraps each fold model's forward passes in devices.autocast (CUDA autocast; nothing on the CPU)."""
    import contextlib

    from ensemble.nets import devices

    root, bundle, _ = exported
    assert predict_bundle(bundle, root / SAMPLE, root / "data" / "test", tmp_path / "plain.csv").exit_code == 0
    assert predict_bundle(bundle, root / SAMPLE, root / "data" / "test", tmp_path / "amp.csv", "--amp").exit_code == 0
    assert (tmp_path / "amp.csv").read_text() == (tmp_path / "plain.csv").read_text()  # the CPU has no autocast dtype
    entered = []

    def recording(device):
        entered.append(device.type)
        return contextlib.nullcontext()

    monkeypatch.setattr(devices, "autocast", recording)
    assert predict_bundle(bundle, root / SAMPLE, root / "data" / "test", tmp_path / "plain2.csv", "--force").exit_code == 0
    assert entered == []  # float32 by default: what reproduces the submission
    result = predict_bundle(bundle, root / SAMPLE, root / "data" / "test", tmp_path / "amp2.csv", "--amp")
    assert result.exit_code == 0, result.output
    assert entered and set(entered) == {"cpu"}  # one context per fold model and chunk
    one_line_error(ens("predict", "-w", root, "-n", "a", "--as", "x", "--amp"), "--amp applies to --blend and --bundle")
