"""`ens report` on a tiny trained workspace: every section, the right names and numbers, images embedded."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from typer.testing import CliRunner

from ensemble import metrics
from ensemble.artifacts.store import load_logits
from ensemble.blend.run import blend_experiments
from ensemble.cli import app
from ensemble.config import Workspace
from ensemble.data.competition import load_competition
from ensemble.errors import EnsError
from ensemble.results.leaderboard import leaderboard
from ensemble.results.report import write_report
from ensemble.results.report.figures import reliability_bins
from ensemble.results.report.page import sections_for

runner = CliRunner()
IMAGE_SOURCE = re.compile(r'src="([^"]*)"')


@pytest.fixture(scope="module")
def reported(trained_dir, tmp_path_factory):
    """The trained workspace with a blend whose OOF probabilities are known ('m') and one without them ('n')."""
    root = shutil.copytree(trained_dir, tmp_path_factory.mktemp("report") / "ws")
    workspace = Workspace.load(root)
    blend_experiments(workspace, "m")
    blend_experiments(workspace, "n", experiments=["b"])
    (root / "submissions" / "n.oof.npz").unlink()  # as a blend made before blends saved them
    competition = load_competition(workspace, check_images=False)
    probs = np.mean([metrics.softmax(load_logits(root / "models" / name / "oof.npz").values) for name in ("a", "b")], axis=0)
    np.savez(root / "submissions" / "m.oof.npz", ids=competition.train_ids, classes=np.array(competition.classes), probs=probs)
    for name in ("m", "n"):  # written by hand, as by a version that recorded no hashes of the group's files
        record_path = root / "submissions" / f"{name}.json"
        record = json.loads(record_path.read_text())
        del record["files_sha256"]
        record_path.write_text(json.dumps(record))
    result = runner.invoke(app, ["report", "-w", str(root)])
    assert result.exit_code == 0, result.output
    return workspace, (root / "report.html").read_text(), probs


def test_report_has_every_section_with_the_right_names_and_numbers(reported):
    workspace, page, blend_probs = reported
    for anchor, title in sections_for("single_label"):
        assert f'<section id="{anchor}"><h2>{title}</h2>' in page
    rows = leaderboard(workspace)
    best = rows[0]["name"]
    for row in rows:
        assert f"<td>{row['name']}</td><td>{row['model']}</td><td class=\"number\">{row['oof_score']:.4f}</td>" in page
        mean, std = np.mean(row["fold_scores"]), np.std(row["fold_scores"])
        assert f"{mean:.4f} &plusmn; {std:.4f}" in page
        assert " ".join(f"{score:.4f}" for score in row["fold_scores"]) in page
        assert f"<h3>{row['name']} <span" in page  # its training curves
    assert f"<h3>Best experiment: {best}</h3><img" in page
    assert "<h3>Blend: m</h3><img" in page  # drawn from m.oof.npz
    assert "<h3>Blend: n</h3><p class=\"note\">no n.oof.npz" in page
    competition = load_competition(workspace, check_images=False)
    blend_score = metrics.get("accuracy").score(competition.targets, blend_probs)
    assert f"OOF accuracy: <b>{blend_score:.4f}</b>" in page
    assert '<td>a</td><td class="number">0.500</td>' in page and '<td>b</td><td class="number">1.000</td>' in page
    best_probs = metrics.softmax(load_logits(workspace.models_dir / best / "oof.npz").values)
    *_, ece = reliability_bins(competition.targets, best_probs)
    assert f"{best}: expected calibration error {ece:.4f}" in page
    assert "<th>model</th>" in page and "<td>test_efficientnet</td>" in page  # settings that differ
    assert re.search(r"<td>matplotlib</td><td>\d", page)


def test_report_embeds_every_image_and_reaches_nothing_outside(reported):
    _, page, _ = reported
    sources = IMAGE_SOURCE.findall(page)
    # fold scores, 2 training curves, confusion of the best and of blend m, correlation, reliability
    assert len(sources) == 7
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(b"\x89PNG")
    assert "http" not in page.lower() and "<script" not in page and "<link" not in page and "url(" not in page


def test_blend_without_weights_or_probabilities_is_listed():
    from ensemble.results.report.collect import BlendSummary
    from ensemble.results.report.page import blends_section

    stacker = BlendSummary("st", "stack", "logloss", 0.25, [{"name": "a", "weight": None, "oof_score": 0.3}], None, "no st.oof.npz", 0.2)
    html_text = blends_section(type("Data", (), {"blends": [stacker]})())
    assert "<b>0.2500</b> (fit and scored on the same rows: 0.2000)" in html_text
    assert '<td>a</td><td class="number">-</td><td class="number">0.3000</td>' in html_text


def test_empty_workspace_report_says_so(competition_dir):
    result = runner.invoke(app, ["report", "-w", str(competition_dir), "--out", str(competition_dir / "r.html")])
    assert result.exit_code == 0, result.output
    assert "0 experiments" in result.stdout
    page = (competition_dir / "r.html").read_text()
    assert "No experiments yet." in page and "<img" not in page


def test_report_replaces_an_earlier_report_but_no_other_file(competition_dir):
    workspace = Workspace.load(competition_dir)
    write_report(workspace)
    write_report(workspace)  # an earlier report is replaced freely
    mine = competition_dir / "notes.html"
    mine.write_text("<p>my notes</p>")
    with pytest.raises(EnsError, match="notes.html: exists and is not an ens report; use --force"):
        write_report(workspace, mine)
    assert mine.read_text() == "<p>my notes</p>"
    write_report(workspace, mine, force=True)
    assert "No experiments yet." in mine.read_text()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(reported, tmp_path):
    workspace, _, _ = reported
    screenshot = tmp_path / "report.png"
    command = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}",
        f"--screenshot={screenshot}", "--window-size=1200,2000", (workspace.root / "report.html").as_uri(),
    ]
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    from PIL import Image

    pixels = np.asarray(Image.open(screenshot).convert("L"), dtype=float)
    assert pixels.shape == (2000, 1200)
    # Not a blank page: text, tables and figures give many dark pixels spread down the page.
    dark_rows = np.flatnonzero((pixels < 128).sum(axis=1) > 0)
    assert len(dark_rows) > 400 and dark_rows.max() > 1500


@pytest.mark.parametrize("damaged", ["a/fold0/result.json", "a/settings.json"])
def test_a_damaged_record_costs_a_note_not_the_report(trained_copy, damaged):
    from ensemble.results.report.collect import collect

    (trained_copy / "models" / damaged).write_text("{")
    data = collect(Workspace.load(trained_copy))
    row = next(experiment for experiment in data.experiments if experiment.name == "a")
    assert f"{damaged}: cannot read JSON" in row.note
    assert [experiment.name for experiment in data.experiments if experiment.note is None] == ["b"]
    result = runner.invoke(app, ["report", "-w", str(trained_copy)])
    assert result.exit_code == 0, result.output
    assert "cannot read JSON" in (trained_copy / "report.html").read_text()


@pytest.mark.parametrize("epochs, ticks", [([1], [1]), ([1, 2], [1, 2]), ([1, 2, 3], [1, 2, 3])])
def test_epoch_axis_has_whole_epochs(epochs, ticks):
    from ensemble.results.report.figures import figure, integer_ticks

    with figure(4, 3) as (fig, (axis,), _):
        axis.plot(epochs, [0.5] * len(epochs), "-o")
        integer_ticks(axis)
        fig.canvas.draw()
        low, high = axis.get_xlim()
        assert [tick for tick in axis.get_xticks() if low <= tick <= high] == ticks


def data_section(page: str) -> str:
    start = page.index('<section id="data"><h2>Data</h2>')
    return page[start:page.index("</section>", start)]


def test_without_an_audit_the_page_has_no_data_section(reported):
    _, page, _ = reported
    assert 'id="data"' not in page and ">Data</a>" not in page


def test_audit_gives_a_data_section_with_pictures_of_groups_and_pairs(competition_dir):
    images = competition_dir / "data"
    # Copies of training image 0000: another training row of the same label (0003, cat), one of
    # another label (0001, dog: a conflict), and a test image.
    for copy in ("train/0003.png", "train/0001.png", "test/t000.png"):
        shutil.copy(images / "train" / "0000.png", images / copy)
    result = runner.invoke(app, ["audit", "-w", str(competition_dir)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report", "-w", str(competition_dir)])
    assert result.exit_code == 0, result.output
    page = (competition_dir / "report.html").read_text()
    data = data_section(page)
    assert page.index('id="data"') < page.index('id="experiments"')  # before the (empty) experiments
    audit = json.loads((competition_dir / "audit" / "audit.json").read_text())
    assert f'<td>near-duplicate groups in train</td><td class="number">{audit["n_groups"]}</td>' in data
    assert f'<td class="number">{audit["n_test_with_copy"]} of {audit["n_test"]}</td>' in data
    assert "Method: thumbnail correlation" in data
    strips = re.findall(r'<div class="strip">(.*?)</div>', data)
    group = next(strip for strip in strips if "0003<br>cat" in strip)
    assert "0000<br>cat" in group and "0001<br>dog" in group and group.count("<img") == 3
    assert "<figcaption>test t000</figcaption>" in data and "train 0000<br>cat<br>distance" in data
    for source in IMAGE_SOURCE.findall(data):
        assert base64.b64decode(source.split(",", 1)[1]).startswith(b"\x89PNG")
    assert "<h3>Groups with conflicting labels</h3>" in data and "0001 (dog)" in data
    assert "cross-validated AUC of <b>" in data  # ens audit measures the train/test shift too


def write_audit(root, duplicates: str, shift: dict | None = None) -> None:
    folder = root / "audit"
    folder.mkdir()
    (folder / "duplicates.csv").write_text(duplicates)
    (folder / "train_test.csv").write_text("test_id,train_id,distance\n")
    (folder / "conflicts.csv").write_text("group,id,label\n0,0000,cat\n0,0001,dog\n")
    figures = {"threshold": 0.97, "method": "by hand", "n_train": 36, "n_test": 10, "n_groups": 1, "n_grouped": 2, "n_test_with_copy": 0, "n_conflicts": 1}
    (folder / "audit.json").write_text(json.dumps({**figures, **({"shift": shift} if shift else {})}))


def test_data_section_shows_the_shift_and_that_the_folds_split_groups(trained_copy):
    import pandas as pd

    folds = pd.read_csv(trained_copy / "folds" / "folds.csv", dtype=str).set_index("id")["fold"]
    first, other = folds.index[0], next(image_id for image_id, fold in folds.items() if fold != folds.iloc[0])  # in two folds
    write_audit(trained_copy, f"id,group,distance\n{first},0,0.01\n{other},0,0.01\n", shift={"auc": 0.5123, "most_test_like": ["0005", "0007"]})
    result = runner.invoke(app, ["report", "-w", str(trained_copy)])
    assert result.exit_code == 0, result.output
    data = data_section((trained_copy / "report.html").read_text())
    assert "cross-validated AUC of <b>0.512</b>" in data and "0005, 0007" in data
    assert data.count("<img") == 2
    assert "folds split 1 duplicate groups: OOF scores are optimistic; ens folds --dedupe" in data


def test_a_damaged_audit_file_costs_a_note_not_the_report(trained_copy):
    write_audit(trained_copy, "id,group,distance\n0000,0,0.01\n\"unclosed\n")
    (trained_copy / "audit" / "conflicts.csv").write_bytes(b"\xff\xfe\x00")
    result = runner.invoke(app, ["report", "-w", str(trained_copy)])
    assert result.exit_code == 0, result.output
    page = (trained_copy / "report.html").read_text()
    data = data_section(page)
    assert re.search(r'<p class="note">[^<]*duplicates.csv: not a CSV', data)
    assert re.search(r'<p class="note">[^<]*conflicts.csv: not a CSV', data)
    assert "<img" not in data and '<section id="experiments">' in page
    (trained_copy / "audit" / "audit.json").write_text("{")
    result = runner.invoke(app, ["report", "-w", str(trained_copy)])
    assert result.exit_code == 0, result.output
    assert "audit.json: cannot read JSON" in data_section((trained_copy / "report.html").read_text())
