"""Settings: frozen dataclasses, read from the workspace's ens.toml and overridden by flags.

Defaults live here and nowhere else. The CLI passes `None` for a flag the user did not give,
and `override` drops those, so a flag's absence never hides a value from ens.toml.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ensemble.errors import EnsError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_FILE = "ens.toml"


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise EnsError(message)


# numpy's and scikit-learn's seeds are 32-bit.
SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class CompetitionSettings:
    """Where the competition's files are and how to read them (paths relative to the workspace)."""

    train_csv: str = "data/train.csv"
    test_csv: str = "data/test.csv"
    sample_submission: str = "data/sample_submission.csv"
    train_images: str = "data/train"
    test_images: str = "data/test"
    id_column: str = "id"
    label_column: str = "label"
    image_suffix: str = ".png"
    group_column: str = ""
    metric: str = "accuracy"
    submission: str = "auto"
    positive_class: str = ""


@dataclass(frozen=True)
class FoldSettings:
    k: int = 5
    strategy: str = "stratified"
    seed: int = 42

    def __post_init__(self):
        _check(self.k >= 2, f"folds k must be at least 2, got {self.k}")
        _check(0 <= self.seed <= SEED_MAX, f"folds seed must be between 0 and {SEED_MAX}, got {self.seed}")


@dataclass(frozen=True)
class TrainSettings:
    model: str = "resnet10t"
    size: int = 32
    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 42
    device: str = "auto"

    def __post_init__(self):
        _check(self.size >= 8, f"train size must be at least 8 pixels, got {self.size}")
        _check(self.epochs >= 1, f"train epochs must be at least 1, got {self.epochs}")
        # BatchNorm cannot train on a batch of one.
        _check(self.batch_size >= 2, f"train batch_size must be at least 2, got {self.batch_size}")
        _check(0 <= self.seed <= SEED_MAX, f"train seed must be between 0 and {SEED_MAX}, got {self.seed}")
        _check(self.lr > 0, f"train lr must be positive, got {self.lr}")
        _check(self.weight_decay >= 0, f"train weight_decay must be >= 0, got {self.weight_decay}")
        _check(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}",
        )


S = TypeVar("S")


def override(settings: S, **flags: Any) -> S:
    """A copy of `settings` with every flag that is not None put in."""
    given = {name: value for name, value in flags.items() if value is not None}
    return dataclasses.replace(settings, **given)


def from_table(cls: type[S], table: dict[str, Any], where: str) -> S:
    """Build a settings dataclass from a TOML table, refusing unknown keys and wrong types."""
    fields = {field.name: field for field in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        _check(key in fields, f"{where}: unknown key {key!r}; expected one of: {', '.join(fields)}")
        expected = type(fields[key].default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        _check(
            type(value) is expected,
            f"{where}: {key} must be {expected.__name__}, got {value!r}",
        )
        values[key] = value
    try:
        return cls(**values)
    except EnsError as error:  # a value out of range: say which file it came from
        raise EnsError(f"{where}: {error}") from None


SECTIONS = {"competition": CompetitionSettings, "folds": FoldSettings, "train": TrainSettings}


@dataclass(frozen=True)
class Workspace:
    """A competition's working folder: ens.toml and the output folders folds/, models/, submissions/."""

    root: Path
    competition: CompetitionSettings
    folds: FoldSettings
    train: TrainSettings

    @classmethod
    def load(cls, root: str | Path = ".") -> "Workspace":
        root = Path(root).resolve()
        config_path = root / CONFIG_FILE
        _check(
            config_path.is_file(),
            f"{config_path}: not found; a workspace needs an ens.toml (see README, or run `ens demo`)",
        )
        try:
            document = tomllib.loads(config_path.read_text(encoding="utf-8-sig"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise EnsError(f"{config_path}: not valid TOML: {error}") from None
        for section in document:
            _check(
                section in SECTIONS,
                f"{config_path}: unknown section [{section}]; expected: {', '.join(SECTIONS)}",
            )
            _check(
                isinstance(document[section], dict),
                f"{config_path}: {section} must be a [{section}] table",
            )
        settings = {
            name: from_table(kind, document.get(name, {}), f"{config_path} [{name}]")
            for name, kind in SECTIONS.items()
        }
        return cls(root=root, **settings)

    def path(self, relative: str) -> Path:
        """A path from ens.toml, relative to the workspace unless absolute; ~ and $VARS expanded."""
        return (self.root / os.path.expandvars(os.path.expanduser(relative))).resolve()

    @property
    def folds_dir(self) -> Path:
        return self.root / "folds"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def submissions_dir(self) -> Path:
        return self.root / "submissions"


def to_toml(sections: dict[str, Any]) -> str:
    """Write settings dataclasses (or plain dicts) as TOML tables; enough for ens.toml files."""
    lines = []
    for name, settings in sections.items():
        table = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else settings
        lines.append(f"[{name}]")
        for key, value in table.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
