"""`ens folds --dedupe`: near-duplicate groups of audit/duplicates.csv kept in one fold, and the
leaderboard's note when the current folds split some."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ensemble.cli import app
from ensemble.config import Workspace
from ensemble.data.competition import load_competition
from ensemble.data.folds import connected_rows, read_folds
from ensemble.io import read_json, sha256_file
from ensemble.results.leaderboard import duplicates_note
from tests.conftest import add_group_column

# 36 rows, labels cat, dog, owl by turn (row % 3); k = 3 in the fixture's ens.toml.
GROUPS = {
    0: ["0000", "0003", "0006"],  # three cats
    1: ["0001", "0010"],
    2: ["0002", "0005", "0008", "0011"],
    7: ["0004", "0007"],
    9: ["0012", "0013", "0014"],  # copies with other labels: kept together all the same
}

# sha256 of folds.csv written by main before dedupe existed, from the fixture with --seed 7:
# without --dedupe the folds must stay byte for byte what they were.
BEFORE_DEDUPE = {
    "stratified": "b6ac2a96c91aae034563aca82b0237f169247def7b341524d8e452ab2068cdcb",
    "group": "3ad8c0bc4e355c0f218b528421406a8074b78a138a5419236acba0e7b1a8ea20",
}


def ens(*args):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def write_duplicates(root, groups: dict[int, list[str]]) -> None:
    lines = [(image_id, group, 3) for group, ids in groups.items() for image_id in ids]
    (root / "audit").mkdir(exist_ok=True)
    pd.DataFrame(lines, columns=["id", "group", "distance"]).to_csv(root / "audit" / "duplicates.csv", index=False)


def fold_by_id(root) -> dict[str, int]:
    frame = pd.read_csv(root / "folds" / "folds.csv", dtype={"id": str})
    return dict(zip(frame["id"], frame["fold"]))


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_every_duplicate_group_lands_in_one_fold_and_labels_stay_balanced(competition_dir):
    write_duplicates(competition_dir, GROUPS)
    result = ens("folds", "--dedupe", "-w", competition_dir)
    assert result.exit_code == 0, result.output
    assert "5 near-duplicate groups each in one fold" in result.stdout
    fold_of = fold_by_id(competition_dir)
    for ids in GROUPS.values():
        assert len({fold_of[image_id] for image_id in ids}) == 1, ids
    labels = pd.read_csv(competition_dir / "data" / "train.csv", dtype=str).set_index("id")["label"]
    for fold in range(3):  # 12 of each label in all, 4 per fold when nothing is tied together
        counts = labels[[image_id for image_id, f in fold_of.items() if f == fold]].value_counts()
        assert counts.min() >= 3 and counts.max() <= 5, (fold, counts.to_dict())


def test_folds_json_records_the_groups_used_and_a_later_audit_changes_nothing(competition_dir):
    write_duplicates(competition_dir, GROUPS)
    assert ens("folds", "--dedupe", "-w", competition_dir).exit_code == 0
    meta = read_json(competition_dir / "folds" / "folds.json")
    assert meta["dedupe"] is True and meta["dedupe_groups"] == 5 and len(meta["dedupe_sha256"]) == 64
    assert meta["groups_sha256"] is None
    # The same groups listed in another order and under other numbers: the same hash.
    write_duplicates(competition_dir, {10 + group: list(reversed(ids)) for group, ids in reversed(GROUPS.items())})
    assert ens("folds", "--dedupe", "--force", "-w", competition_dir).exit_code == 0
    assert read_json(competition_dir / "folds" / "folds.json")["dedupe_sha256"] != meta["dedupe_sha256"]  # numbers are used
    write_duplicates(competition_dir, {group: list(reversed(ids)) for group, ids in reversed(GROUPS.items())})
    assert ens("folds", "--dedupe", "--force", "-w", competition_dir).exit_code == 0
    assert read_json(competition_dir / "folds" / "folds.json")["dedupe_sha256"] == meta["dedupe_sha256"]
    # Another audit finds other groups: the folds are still read as they are.
    write_duplicates(competition_dir, {1: ["0000", "0001"]})
    workspace = Workspace.load(competition_dir)
    assert read_folds(workspace, load_competition(workspace)).k == 3


def test_with_a_group_column_the_union_of_both_relations_shares_a_fold(competition_dir):
    add_group_column(competition_dir, "patient", lambda row: f"p{row // 4}")  # 9 patients of 4 rows
    # 0003-0004 joins patients p0 and p1; 0010-0030 joins p2 and p7.
    write_duplicates(competition_dir, {1: ["0003", "0004"], 2: ["0010", "0030"]})
    result = ens("folds", "--dedupe", "--strategy", "group", "-w", competition_dir)
    assert result.exit_code == 0, result.output
    fold_of = fold_by_id(competition_dir)
    for rows in (range(0, 8), [*range(8, 12), *range(28, 32)], *(range(start, start + 4) for start in (12, 16, 20, 24, 32))):
        assert len({fold_of[f"{row:04d}"] for row in rows}) == 1, list(rows)
    meta = read_json(competition_dir / "folds" / "folds.json")
    assert meta["groups_sha256"] is not None and "dedupe_sha256" in meta


def test_connected_rows_is_the_union_of_the_links():
    every_row = np.arange(6)
    component = connected_rows(6, [(every_row, np.array(["a", "a", "b", "c", "c", "d"])), (np.array([1, 2, 4]), np.array([5, 5, 9]))])
    # a joins 0-1, the duplicate group 5 joins 1-2 (so 0-1-2); c joins 3-4; 5 is alone.
    assert len(set(component[[0, 1, 2]])) == 1 and len(set(component[[3, 4]])) == 1
    assert len(set(component)) == 3


def test_dedupe_from_ens_toml_and_no_dedupe_overrides_it(competition_dir):
    config = competition_dir / "ens.toml"
    config.write_text(config.read_text().replace("[folds]\n", "[folds]\ndedupe = true\n"))
    one_line_error(ens("folds", "-w", competition_dir), "audit/duplicates.csv: not found; run `ens audit` first")
    assert ens("folds", "--no-dedupe", "-w", competition_dir).exit_code == 0
    assert "dedupe_sha256" not in read_json(competition_dir / "folds" / "folds.json")


@pytest.mark.parametrize(
    "text, fragments",
    [
        (None, ["audit/duplicates.csv: not found; run `ens audit` first"]),
        ("id,group,distance\n0000,1,2\nzzzz,1,2\n", ["duplicates.csv: id 'zzzz' (line 3) is not in", "train.csv"]),
        ("id,group,distance\n0000,one,2\n", ["duplicates.csv: group 'one' of id '0000' (line 2) is not an integer"]),
        ("image,cluster\n0000,1\n", ["duplicates.csv: columns must include id, group; got image, cluster"]),
    ],
)
def test_bad_duplicates_are_refused_in_one_line(competition_dir, text, fragments):
    if text is not None:
        (competition_dir / "audit").mkdir()
        (competition_dir / "audit" / "duplicates.csv").write_text(text)
    one_line_error(ens("folds", "--dedupe", "-w", competition_dir), *fragments)
    assert not (competition_dir / "folds" / "folds.csv").exists()


@pytest.mark.parametrize("strategy", ["stratified", "group"])
def test_folds_without_dedupe_are_byte_identical_to_before(competition_dir, strategy):
    if strategy == "group":
        add_group_column(competition_dir, "patient", lambda row: f"p{row // 3}")
    write_duplicates(competition_dir, GROUPS)  # present, but not asked for
    result = ens("folds", "--seed", "7", "--strategy", strategy, "-w", competition_dir)
    assert result.exit_code == 0, result.output
    assert sha256_file(competition_dir / "folds" / "folds.csv") == BEFORE_DEDUPE[strategy]
    meta = read_json(competition_dir / "folds" / "folds.json")
    assert meta["dedupe"] is False and not any(key.startswith("dedupe_") for key in meta)


def test_the_leaderboard_notes_folds_that_split_a_duplicate_group(competition_dir):
    assert ens("folds", "-w", competition_dir).exit_code == 0
    workspace = Workspace.load(competition_dir)
    assert duplicates_note(workspace) is None  # no audit: nothing to say
    fold_of = fold_by_id(competition_dir)
    in_fold = {fold: sorted(image_id for image_id, f in fold_of.items() if f == fold) for fold in range(3)}
    # Two groups across folds, one inside a fold.
    write_duplicates(competition_dir, {1: [in_fold[0][0], in_fold[1][0]], 2: [in_fold[1][1], in_fold[2][1], in_fold[2][2]], 3: in_fold[0][1:3]})
    note = "folds split 2 duplicate groups: OOF scores are optimistic; ens folds --dedupe"
    assert duplicates_note(workspace) == note
    for format_args in ([], ["--format", "json"]):
        result = ens("leaderboard", *format_args, "-w", competition_dir)
        assert result.exit_code == 0, result.output
        assert f"note: {note}" in result.stderr and note not in result.stdout
    assert json.loads(ens("leaderboard", "--format", "json", "-w", competition_dir).stdout) == []

    assert ens("folds", "--dedupe", "--force", "-w", competition_dir).exit_code == 0
    assert duplicates_note(workspace) is None
    result = ens("leaderboard", "-w", competition_dir)
    assert result.exit_code == 0 and "duplicate" not in result.output
