"""The commented ens.toml that `ens init` writes: each inferred value says why it was chosen.

The [train] settings are written commented out at their defaults, so the file shows every knob
without fixing any of them.
"""

from __future__ import annotations

import dataclasses

from ensemble.config import CompetitionSettings, FoldSettings, TrainSettings
from ensemble.io import toml_value

# What each key means, for keys init did not infer (the inferred ones say why instead).
MEANING = {
    "group_column": "column in the train CSV for --strategy group; \"\" for none",
    "positive_class": "the class a single probability column is about, when auto cannot tell",
    "label_separator": "between the tags of a multi-label cell; \" \" is any whitespace",
    "strategy": "stratified or group",
    "seed": "shuffle seed",
    "dedupe": "keep `ens audit`'s near-duplicate groups in one fold",
    "model": "any timm model name",
    "size": "images are resized to size x size",
    "epochs": "passes over each fold's training rows",
    "batch_size": "images per step",
    "lr": "peak learning rate, one-cycle schedule",
    "weight_decay": "AdamW",
    "device": "auto, cpu, cuda or cuda:N",
}
COLUMN = 46  # where comments start, as in docs/configuration.md's example


def line(key: str, value, comment: str, commented_out: bool = False) -> str:
    text = f"{'# ' if commented_out else ''}{key} = {toml_value(value)}"
    return f"{text.ljust(COLUMN - 1)} # {comment}" if comment else text


def config_text(source: str, competition: CompetitionSettings, folds: FoldSettings, why: dict[str, str]) -> str:
    """ens.toml text. why: reason per key ('label_column', 'k', ...) for the values init chose."""
    lines = [
        f"# Written by `ens init` from {source}.",
        "# Every value below can be edited; see docs/configuration.md.",
        "",
        "[competition]",
    ]
    for key, value in dataclasses.asdict(competition).items():
        lines.append(line(key, value, why.get(key) or MEANING.get(key, "")))
    lines += ["", "[folds]                                       # defaults of `ens folds`"]
    for key, value in dataclasses.asdict(folds).items():
        lines.append(line(key, value, why.get(key) or MEANING.get(key, "")))
    lines += ["", "[train]                                       # defaults of `ens train-folds`; uncomment to change"]
    for key, value in dataclasses.asdict(TrainSettings()).items():
        lines.append(line(key, value, MEANING.get(key, ""), commented_out=True))
    return "\n".join(lines) + "\n"
