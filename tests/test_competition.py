import pandas as pd
import pytest

from ensemble.config import Workspace
from ensemble.data.competition import load_competition
from ensemble.errors import EnsError
from ensemble.tasks import sort_classes


def test_reads_ids_as_text_and_orders_classes(competition_dir):
    competition = load_competition(Workspace.load(competition_dir))
    assert competition.train_ids[:2].tolist() == ["0000", "0001"]
    assert competition.classes == ("cat", "dog", "owl")
    assert competition.targets[:4].tolist() == [0, 1, 2, 0]
    assert len(competition.test_ids) == 10


def test_integer_labels_sort_numerically():
    assert sort_classes(["10", "2", "1", "2"]) == ("1", "2", "10")
    assert sort_classes(["b", "a", "10"]) == ("10", "a", "b")


class Text:
    """A change to a file's text rather than to its table."""

    def __init__(self, change):
        self.change = change


def rewrite(path, change):
    if isinstance(change, Text):
        path.write_text(change.change(path.read_text()))
        return
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    change(frame).to_csv(path, index=False)


def trailing_commas(text):
    header, *rows = text.splitlines()
    return "\n".join([header] + [row + "," for row in rows]) + "\n"


def blank_line_quoted_newline_and_duplicate(text):
    """A blank line after the header, a note spanning two lines on row 0000, and row 0003
    again at the end: the duplicate is on the file's line 40, the first 0003 on line 7."""
    header, *rows = text.splitlines()
    rows = [row + "," for row in rows]
    rows[0] += '"two\nlines"'
    return "\n".join([header + ",note", ""] + rows + [rows[3]]) + "\n"


def duplicate_row(frame):
    return pd.concat([frame, frame.iloc[[3]]], ignore_index=True)


def drop_from_sample(frame):
    return frame[frame["id"] != "t004"]


def add_to_sample(frame):
    return pd.concat([frame, pd.DataFrame({"id": ["t999"], "label": ["cat"]})], ignore_index=True)


def empty_label(frame):
    frame.loc[5, "label"] = ""
    return frame


@pytest.mark.parametrize(
    "file, change, fragments",
    [
        ("train.csv", lambda f: f.rename(columns={"label": "target"}), ["train.csv", "no column 'label'", "'id', 'target'"]),
        ("train.csv", duplicate_row, ["train.csv", "line 38", "duplicate id '0003'", "line 5"]),
        ("train.csv", Text(trailing_commas), ["train.csv", "line 2 has 3 fields, the header has 2"]),
        ("train.csv", Text(blank_line_quoted_newline_and_duplicate), ["line 40: duplicate id '0003' (first at line 7)"]),
        ("train.csv", Text(lambda t: t.replace("id,label", "id,label,label")), ["column 'label' appears twice"]),
        ("train.csv", Text(lambda t: t.replace("0005,", '"0005,')), ["train.csv", "line 7: not a readable CSV"]),
        ("test.csv", Text(lambda t: t.replace("id\n", "id\n\n\n") + "t999\n"), ["test.csv: line 14: test id 't999' is not in"]),
        ("train.csv", empty_label, ["train.csv", "line 7", "empty 'label'"]),
        ("train.csv", lambda f: f.assign(label="cat"), ["single class 'cat'"]),
        ("test.csv", duplicate_row, ["test.csv", "duplicate id 't003'"]),
        ("sample_submission.csv", drop_from_sample, ["test.csv", "line 6", "'t004' is not in", "sample_submission.csv"]),
        ("sample_submission.csv", add_to_sample, ["sample_submission.csv", "'t999' is not in", "test.csv"]),
    ],
)
def test_bad_tables_are_refused(competition_dir, file, change, fragments):
    rewrite(competition_dir / "data" / file, change)
    with pytest.raises(EnsError) as error:
        load_competition(Workspace.load(competition_dir))
    for fragment in fragments:
        assert fragment in str(error.value)


def test_missing_image_names_file_and_id(competition_dir):
    (competition_dir / "data" / "train" / "0007.png").unlink()
    with pytest.raises(EnsError, match=r"0007\.png: image not found for id '0007' .*train\.csv, line 9"):
        load_competition(Workspace.load(competition_dir))
    load_competition(Workspace.load(competition_dir), check_images=False)  # blending needs no images


def test_unknown_metric_is_refused(competition_dir):
    path = competition_dir / "ens.toml"
    path.write_text(path.read_text().replace('metric = "auto"', 'metric = "f2"'))
    with pytest.raises(EnsError, match="unknown metric 'f2'; expected one of: accuracy, auc, f1_macro, f1_samples, f2_samples, logloss, mae, map, qwk, r2, rmse"):
        load_competition(Workspace.load(competition_dir))


def test_the_sample_submission_can_serve_as_test_csv(competition_dir):
    config = competition_dir / "ens.toml"
    config.write_text(config.read_text().replace('test_csv = "data/test.csv"', 'test_csv = "data/sample_submission.csv"'))
    competition = load_competition(Workspace.load(competition_dir))
    assert competition.test_ids.tolist() == competition.sample["id"].tolist()


def test_byte_order_mark_and_windows_line_endings(competition_dir):
    # pandas reads both; this pins what users of Excel-made CSVs rely on.
    train_csv = competition_dir / "data" / "train.csv"
    train_csv.write_bytes(b"\xef\xbb\xbf" + train_csv.read_bytes().replace(b"\n", b"\r\n"))
    competition = load_competition(Workspace.load(competition_dir))
    assert competition.train_ids[0] == "0000" and competition.classes == ("cat", "dog", "owl")
