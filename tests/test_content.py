"""The images' content key (data/content.py): recorded by every experiment, checked on resume
and predict, compared between blend members without reading an image."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from PIL import Image
from typer.testing import CliRunner

from ensemble.cli import app
from ensemble.data import content


def ens(*args):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def one_line_error(result, *fragments):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and lines[-1].startswith("error:"), result.output
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def replace_keeping_size_and_time(path):
    """Another picture in the same file, of the same byte size and modification time (cp -p)."""
    Image.new("RGB", (10, 9), (0, 0, 255)).save(path, format="PNG", compress_level=0)
    stat = path.stat()
    Image.new("RGB", (10, 9), (0, 255, 0)).save(path, format="PNG", compress_level=0)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size


def test_every_experiment_records_the_content_key_of_its_images(trained_copy):
    from ensemble.config import Workspace
    from ensemble.data.competition import load_competition

    recorded = json.loads((trained_copy / "models" / "a" / "settings.json").read_text())["images_sha256"]
    assert recorded == content.competition_keys(load_competition(Workspace.load(trained_copy)))


def test_a_copied_workspace_keeps_its_key_and_resumes(trained_copy, tmp_path):
    moved = shutil.copytree(trained_copy, tmp_path / "moved")  # new paths, new times
    again = ens("train-folds", "-w", moved, "-n", "a")
    assert again.exit_code == 0 and "nothing trained" in again.output, again.output


@pytest.mark.parametrize("which, folder", [("train", "train"), ("test", "test")])
def test_resume_and_predict_refuse_images_changed_since(trained_copy, which, folder):
    # Same settings, other pixels: one image now holds another picture (its time kept).
    replace_keeping_size_and_time(sorted((trained_copy / "data" / folder).iterdir())[1])
    one_line_error(ens("train-folds", "-w", trained_copy, "-n", "a"), f"trained on other {which} images", "--force")
    one_line_error(ens("predict", "-w", trained_copy, "-n", "a", "--as", "a2"), f"other {which} images", "ens train-folds --name a --force")
    assert not (trained_copy / "models" / "a2").exists()


def test_an_older_record_without_the_key_is_not_checked(trained_copy):
    settings_path = trained_copy / "models" / "a" / "settings.json"
    record = json.loads(settings_path.read_text())
    del record["images_sha256"]
    settings_path.write_text(json.dumps(record))
    replace_keeping_size_and_time(sorted((trained_copy / "data" / "train").iterdir())[1])
    assert ens("train-folds", "-w", trained_copy, "-n", "a").exit_code == 0


def test_blend_refuses_members_trained_on_other_pixels_without_reading_an_image(trained_copy, monkeypatch):
    settings_path = trained_copy / "models" / "b" / "settings.json"
    record = json.loads(settings_path.read_text())
    record["images_sha256"]["train"] = "0" * 64  # as if b were trained before the images changed
    settings_path.write_text(json.dumps(record))
    monkeypatch.setattr(content, "file_digest", lambda path: pytest.fail(f"blend read {path}"))
    one_line_error(ens("blend", "-w", trained_copy, "-n", "x", "--experiments", "a,b"), "b and a were trained on other train images")
    assert not (trained_copy / "submissions" / "x.csv").exists()
