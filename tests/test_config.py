import pytest

from ensemble.config import FoldSettings, TrainSettings, Workspace, override
from ensemble.errors import EnsError


def test_flags_override_toml_and_none_keeps_it(competition_dir):
    workspace = Workspace.load(competition_dir)
    assert workspace.folds.k == 3 and workspace.train.model == "test_resnet"
    changed = override(workspace.train, epochs=4, model=None)
    assert changed.epochs == 4 and changed.model == "test_resnet"
    assert workspace.train.epochs == 1  # settings are frozen copies
    assert FoldSettings().k == 5 and TrainSettings().device == "auto"


@pytest.mark.parametrize(
    "toml, fragments",
    [
        ("[competition]\nid_colum = 'x'\n", ["[competition]", "unknown key 'id_colum'"]),
        ("[trian]\n", ["unknown section [trian]"]),
        ("[train]\nepochs = 'three'\n", ["ens.toml [train]", "epochs: cannot read", "'three'"]),
        ("[train]\nepochs = 2.5\n", ["epochs must be int or str or list", "2.5"]),
        ("[train]\nsizes = '32,24'\n", ["ens.toml [train]: train sizes must grow"]),
        ("[train]\nsizes = [24, 32]\nepochs = '1,2,3'\n", ["3 counts for 2 sizes"]),
        ("[train]\nsize = 2\n", ["ens.toml [train]: train size must be at least 8"]),
        ("[folds]\nk = 1\n", ["ens.toml [folds]: folds k must be at least 2"]),
        ("[folds]\nseed = 5000000000\n", ["ens.toml [folds]: folds seed must be between 0 and 4294967295"]),
        ("[train\n", ["not valid TOML"]),
        ("[train]\nmixup = inf\n", ["train mixup must be a finite number >= 0", "got inf"]),
        ("[train]\ncutmix = nan\n", ["train cutmix must be a finite number >= 0", "got nan"]),
        ("[train]\nlr = inf\n", ["train lr must be a finite positive number, got inf"]),
        ("[train]\nclip_grad = inf\n", ["train clip_grad must be >= 0"]),
    ],
)
def test_bad_config_is_refused(tmp_path, toml, fragments):
    (tmp_path / "ens.toml").write_text(toml)
    with pytest.raises(EnsError) as error:
        Workspace.load(tmp_path)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_integer_accepted_for_float_setting(tmp_path):
    (tmp_path / "ens.toml").write_text("[train]\nlr = 1\n")
    assert Workspace.load(tmp_path).train.lr == 1.0


def test_toml_with_byte_order_mark_and_home_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "ens.toml").write_bytes(b"\xef\xbb\xbf[competition]\ntrain_csv = '~/data/t.csv'\n")
    workspace = Workspace.load(tmp_path)
    assert workspace.path(workspace.competition.train_csv) == tmp_path / "data" / "t.csv"


def test_texts_for_users_point_at_the_docs(tmp_path):
    from ensemble.config import CompetitionSettings, FoldSettings, Workspace
    from ensemble.errors import EnsError
    from ensemble.init.toml import config_text

    assert "see docs/configuration.md" in config_text("data/train.csv", CompetitionSettings(), FoldSettings(), {})
    try:
        Workspace.load(tmp_path)
    except EnsError as error:
        assert "(see docs/configuration.md, or run `ens demo`)" in str(error)
    else:
        raise AssertionError("a folder without ens.toml is not a workspace")
