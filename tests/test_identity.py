"""An experiment's identity: settings.json keys that older versions did not write."""

from ensemble.artifacts import identity


def test_a_missing_key_stands_for_its_legacy_value(monkeypatch):
    monkeypatch.setattr(identity, "LEGACY", {"train.colour": "none", "train.sizes": lambda record: [record["train"]["size"]]})
    old = {"train": {"size": 32}}
    filled = identity.with_legacy_values(old)
    assert filled == {"train": {"size": 32, "colour": "none", "sizes": [32]}}
    assert old == {"train": {"size": 32}}, "the record read from disk is not modified"
    assert identity.differences(filled, {"train": {"size": 32, "colour": "none", "sizes": [32]}}) == []
    assert identity.differences(filled, {"train": {"size": 32, "colour": "red", "sizes": [32]}}) == ["train.colour: none -> red"]


def test_a_key_written_by_a_newer_run_is_kept(monkeypatch):
    monkeypatch.setattr(identity, "LEGACY", {"train.colour": "none"})
    assert identity.with_legacy_values({"train": {"colour": "red"}}) == {"train": {"colour": "red"}}



def test_differences_show_values_readably():
    trained = {"train": {"size": 32, "tta": "none"}}
    predicted = {"train": {"size": 32, "tta": "d4"}, "source": {"experiment": "r", "checkpoints_sha256": ["sha256:" + "a" * 64] * 3}}
    assert identity.differences(trained, predicted) == ["source: trained -> predicted from r", "train.tta: none -> d4"]
    assert identity.differences(predicted, trained)[0] == "source: predicted from r -> trained"
    other = {**predicted, "source": {**predicted["source"], "experiment": "q"}}
    assert identity.differences(predicted, other) == ["source.experiment: r -> q"]
    long = identity.differences({"k": {"a": 1, "b": "x" * 50}}, {"k": None})
    assert long == ['k: {"a": 1, "b": "' + "x" * 22 + '... -> none']
