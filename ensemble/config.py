"""Settings: frozen dataclasses, read from the workspace's ens.toml and overridden by flags.

Defaults live here and nowhere else. The CLI passes `None` for a flag the user did not give,
and `override` drops those, so a flag's absence never hides a value from ens.toml.
"""

from __future__ import annotations

import dataclasses
import math
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
    # auto: read off train.csv (ensemble/tasks.py); single_label, multi_label or regression.
    task: str = "auto"
    label_separator: str = " "  # between the tags of a multi-label cell; " " means any whitespace
    metric: str = "auto"  # auto: the task's own (accuracy, f1_samples, rmse)
    submission: str = "auto"
    positive_class: str = ""

    def __post_init__(self):
        # str.split("") raises: an empty separator would fail mid-run instead of here.
        _check(self.label_separator != "", 'competition label_separator must not be empty; " " splits on any whitespace')


@dataclass(frozen=True)
class FoldSettings:
    k: int = 5
    strategy: str = "stratified"
    seed: int = 42
    # Keep each near-duplicate group of `ens audit` (audit/duplicates.csv) in one fold, whatever the strategy.
    dedupe: bool = False

    def __post_init__(self):
        _check(self.k >= 2, f"folds k must be at least 2, got {self.k}")
        _check(0 <= self.seed <= SEED_MAX, f"folds seed must be between 0 and {SEED_MAX}, got {self.seed}")


@dataclass(frozen=True)
class TrainSettings:
    model: str = "resnet10t"
    # auto: the training images' own side (their median), within AUTO_SIZE_RANGE; settled and
    # recorded when a run starts (training/preflight.py). Measured on two whole competitions of
    # 2,000 images (benchmarks/bench_tasks.py): a 56 px multi-label set and a 64 px counting set
    # trained at 32 px lost most of what their own size gives (fold 0: mean F1 0.43 vs 0.89, RMSE
    # 0.46 vs 0.24).
    size: int | str = dataclasses.field(default="auto", metadata={"auto": int, "toml": (str, int)})
    # One count, or one per stage of `sizes` ("2,3"); normalised to an int when all are equal.
    # 10 epochs of batches of 32: on the same whole competitions 6 epochs underfit (fold 0 at
    # their own size: mean F1 0.76 vs 0.89; RMSE 0.26 vs 0.24); docs/training.md.
    epochs: int | str = dataclasses.field(default=10, metadata={"toml": (int, str, list)})
    # Progressive resizing: "24,32" trains stages at growing sizes, the last being `size`, the
    # inference size. Empty: one stage at `size`.
    sizes: str = dataclasses.field(default="", metadata={"toml": (str, list)})
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 42
    device: str = "auto"
    # The training recipe (ensemble/training/augment.py, recipe.py, optim.py; docs/training.md).
    augment: str = "none"  # comma list of train-time transforms, or none
    augment_fill: str = "mean"  # what shift, scale and rotate bring in: the mean colour, or black
    ema: float = 0.0  # decay of the weights' moving average, evaluated and saved; 0 = off
    mixup: float = 0.0  # Beta(A, A) of mixup; 0 = off
    cutmix: float = 0.0  # Beta(A, A) of cutmix; 0 = off
    label_smoothing: float = 0.0
    class_weights: str = "none"  # none or balanced (per class; per tag's positives for multi-label)
    # auto: the task's (cross-entropy, binary cross-entropy per tag, mse); regression also huber, or
    # bce on the target scaled to 0..1 (training/losses.py).
    loss: str = "auto"
    optimizer: str = "adamw"  # adamw or sgd
    schedule: str = "onecycle"  # onecycle or cosine, over every step of every stage
    warmup: float = 0.2  # fraction of all steps spent warming the learning rate up
    clip_grad: float = 0.0  # max gradient norm; 0 = off

    # Models (docs/training.md#attention-and-pretrained-weights). An AUTO field takes "auto" or a value of
    # its type; resolved() settles it before training, and settings.json records the result.
    attention: str = "none"
    attention_in_blocks: bool = False
    pretrained: str = ""  # "": random weights; "timm": timm's pretrained tag; else a weights file
    train_blocks: int = -1  # -1: every backbone stage trains; 0: a linear probe
    freeze_bn: bool | str = dataclasses.field(default="auto", metadata={"auto": bool, "toml": (str, bool)})
    unfreeze_after: int | str = dataclasses.field(default="auto", metadata={"auto": int, "toml": (str, int)})
    backbone_lr_scale: float | str = dataclasses.field(default="auto", metadata={"auto": float, "toml": (str, float, int)})
    # The pretrained backbone's features computed once per image, a linear head per fold (training/features.py).
    frozen_features: bool = False
    # With frozen_features: the top N stages (and the classifier) train per fold on the frozen stages' maps; 0: a linear head.
    top_blocks: int = 0

    # Test-time augmentation of the cached OOF and test logits (ensemble/inference/tta.py).
    tta: str = "none"  # TTA views for OOF and test logits, e.g. "hflip,scale:1.1" (see tta.py)
    tta_merge: str = "mean"  # mean, gmean or max of the views' probabilities

    def __post_init__(self):
        normalise_stages(self)
        check_recipe(self)
        check_models(self)
        # Names (augment, optimizer, attention...) are checked against their registries at the
        # training boundary (training/preflight.py): the registries live with the code they name.
        # BatchNorm cannot train on a batch of one.
        _check(self.batch_size >= 2, f"train batch_size must be at least 2, got {self.batch_size}")
        _check(0 <= self.seed <= SEED_MAX, f"train seed must be between 0 and {SEED_MAX}, got {self.seed}")
        _check(0 < self.lr < math.inf, f"train lr must be a finite positive number, got {self.lr}")
        _check(0 <= self.weight_decay < math.inf, f"train weight_decay must be a finite number >= 0, got {self.weight_decay}")
        _check(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}",
        )

    @property
    def total_epochs(self) -> int:
        """Epochs over every stage: one count per size, or one count for every size."""
        epochs = [int(count) for count in str(self.epochs).split(",")]
        n_sizes = len(self.sizes.split(",")) if self.sizes else 1
        return sum(epochs) if len(epochs) > 1 else epochs[0] * n_sizes

    def resolved(self) -> "TrainSettings":
        """A copy with every "auto" settled: from scratch nothing changes; with pretrained
        weights the defaults measured in benchmarks/bench_models.py (benchmarks/RESULTS.md)."""
        pretrained = bool(self.pretrained)
        defaults = {
            "freeze_bn": False,
            "unfreeze_after": min(PRETRAINED_WARMUP_EPOCHS, self.total_epochs - 1) if pretrained else 0,
            "backbone_lr_scale": PRETRAINED_BACKBONE_LR_SCALE if pretrained else 1.0,
        }
        given = {name: getattr(self, name) for name in defaults if getattr(self, name) != "auto"}
        return dataclasses.replace(self, **{**defaults, **given})


# size = "auto": the median side of the training images, rounded to 8, within these bounds. Small
# images are enlarged to 56 px (40 px digits: OOF 0.837 at 40 px, 0.927 at 56; measured in
# docs/training.md#which-of-these-to-use); above 64 px a CPU step costs 4x the one at 32 px.
AUTO_SIZE_RANGE = (56, 64)


def auto_size(median_side: float) -> int:
    """The training size `size = "auto"` picks for images of this median side."""
    low, high = AUTO_SIZE_RANGE
    return int(min(high, max(low, 8 * round(median_side / 8))))


# Defaults for a run from pretrained weights, chosen by measurement
# (docs/training.md#attention-and-pretrained-weights): epochs of head-only warm-up, and the backbone's share of the lr. A
# one-epoch warm-up lost to the plain fine-tune on both benchmark datasets (4-epoch runs), so
# auto means none; --unfreeze-after still offers it.
PRETRAINED_WARMUP_EPOCHS = 0
PRETRAINED_BACKBONE_LR_SCALE = 1.0


def _int_list(value: Any, name: str) -> list[int]:
    parts = value if isinstance(value, list) else str(value).split(",")
    try:
        numbers = [int(str(part).strip()) for part in parts if str(part).strip()]
    except ValueError:
        numbers = []
    _check(bool(numbers), f"train {name}: cannot read {value!r}; expected a number or a comma list such as 24,32")
    return numbers


def normalise_stages(settings: "TrainSettings") -> None:
    """One spelling per schedule, so equal schedules are the same experiment.

    sizes "32" -> size 32, sizes ""; sizes "24,32" -> size 32 (the last); epochs "3,3" -> 3.
    """
    epochs = _int_list(settings.epochs, "epochs")
    _check(all(count >= 1 for count in epochs), f"train epochs must be at least 1, got {epochs}")
    if settings.sizes in ("", []) and settings.size == "auto":  # settled when a run starts
        _check(len(set(epochs)) == 1, f"train epochs: {len(epochs)} counts for one size; give one count, or one per size of `sizes`")
        object.__setattr__(settings, "epochs", epochs[0])
        object.__setattr__(settings, "sizes", "")
        return
    sizes = _int_list(settings.sizes, "sizes") if settings.sizes not in ("", []) else [settings.size]
    for size in sizes:
        _check(size >= 8, f"train size must be at least 8 pixels, got {size}")
    _check(sizes == sorted(sizes), f"train sizes must grow (the last is the inference size), got {sizes}")
    _check(
        len(epochs) in (1, len(sizes)),
        f"train epochs: {len(epochs)} counts for {len(sizes)} sizes; give one count, or one per size",
    )
    object.__setattr__(settings, "size", sizes[-1])
    object.__setattr__(settings, "sizes", ",".join(map(str, sizes)) if len(sizes) > 1 else "")
    object.__setattr__(settings, "epochs", epochs[0] if len(set(epochs)) == 1 else ",".join(map(str, epochs)))


def check_recipe(settings: "TrainSettings") -> None:
    """The recipe's numbers, by range."""
    _check(0 <= settings.ema < 1, f"train ema must be in 0..1 (0 = off), e.g. 0.999; got {settings.ema}")
    for name in ("mixup", "cutmix"):  # Beta(inf, inf) samples NaN
        _check(0 <= getattr(settings, name) < math.inf, f"train {name} must be a finite number >= 0 (0 = off), e.g. 0.2; got {getattr(settings, name)}")
    _check(0 <= settings.label_smoothing < 1, f"train label_smoothing must be in 0..1, e.g. 0.1; got {settings.label_smoothing}")
    _check(0 <= settings.warmup < 1, f"train warmup must be a fraction of the steps in 0..1, e.g. 0.2; got {settings.warmup}")
    _check(0 <= settings.clip_grad < math.inf, f"train clip_grad must be >= 0 (0 = off); got {settings.clip_grad}")


def check_models(settings: "TrainSettings") -> None:
    """The models settings (attention, pretrained weights, freezing), by type and range."""
    _check(settings.train_blocks >= -1, f"train train_blocks must be -1 (all), 0 (linear probe) or more, got {settings.train_blocks}")
    _check(settings.top_blocks >= 0, f"train top_blocks must be 0 (a linear head) or more, got {settings.top_blocks}")
    for field in dataclasses.fields(settings):
        if "auto" in field.metadata:
            value, kind = getattr(settings, field.name), field.metadata["auto"]
            _check(
                value == "auto" or type(value) is kind or (kind is float and type(value) is int),
                f"train {field.name} must be auto or {kind.__name__}, got {value!r}",
            )
    _check(settings.unfreeze_after == "auto" or settings.unfreeze_after >= 0, f"train unfreeze_after must be >= 0, got {settings.unfreeze_after}")
    _check(settings.backbone_lr_scale == "auto" or settings.backbone_lr_scale > 0, f"train backbone_lr_scale must be positive, got {settings.backbone_lr_scale}")


@dataclass(frozen=True)
class AutoSettings:
    """`ens auto`: a portfolio of experiments trained within a time budget (workflows/auto/)."""

    time_limit: str = "10m"  # wall time of the whole command: 90s, 10m, 1h
    name: str = "auto"  # the submission, and the prefix of every experiment it trains (NAME-<candidate>)
    pretrained_dir: str = ""  # weights files named after timm models (efficientnet_lite0.pth) join the portfolio
    # Comma list of timm models replacing the built-in portfolio (resnet10t, resnet18, efficientnet_b0,
    # convnext_atto, resnet10t with squeeze-excitation); each at the native size. Empty: the built-in one.
    models: str = ""
    # The share of the budget kept for TTA, blending and the report; measured finishing costs raise it.
    reserve: float = 0.12
    # Epochs per experiment: `epochs` when the budget allows, down to min_epochs to fit one in,
    # up to max_epochs when time is left over. 10: train-folds' default, measured on whole competitions.
    epochs: int = 10
    min_epochs: int = 3
    max_epochs: int = 30
    # The views tried on the first experiment's OOF; the ones that keep labels augment later
    # experiments and the exact ones make TTA members (workflows/auto/views.py). No shifts or zooms
    # by default: a model never trained on them fails them whether or not they keep labels.
    views: str = "hflip,vflip,rot90"

    def __post_init__(self):
        parse_duration(self.time_limit, "auto time_limit")
        _check(0 <= self.reserve < 0.9, f"auto reserve must be a share of the budget in 0..0.9, e.g. 0.12; got {self.reserve}")
        _check(
            1 <= self.min_epochs <= self.epochs <= self.max_epochs,
            f"auto epochs must satisfy 1 <= min_epochs <= epochs <= max_epochs; got {self.min_epochs}, {self.epochs}, {self.max_epochs}",
        )


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str, where: str = "--time-limit") -> float:
    """Seconds of a duration such as 90s, 10m, 1.5h (a bare number is seconds)."""
    value = str(text).strip().lower()
    unit = DURATION_UNITS.get(value[-1:], None)
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        seconds = math.nan
    _check(math.isfinite(seconds) and seconds > 0, f"{where}: cannot read {text!r}; expected a duration such as 90s, 10m or 1h")
    return seconds


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
        accepted = fields[key].metadata.get("toml", (expected,))
        _check(
            type(value) in accepted,
            f"{where}: {key} must be {' or '.join(kind.__name__ for kind in accepted)}, got {value!r}",
        )
        values[key] = value
    try:
        return cls(**values)
    except EnsError as error:  # a value out of range: say which file it came from
        raise EnsError(f"{where}: {error}") from None


SECTIONS = {"competition": CompetitionSettings, "folds": FoldSettings, "train": TrainSettings, "auto": AutoSettings}


@dataclass(frozen=True)
class Workspace:
    """A competition's working folder: ens.toml and the output folders folds/, models/, submissions/."""

    root: Path
    competition: CompetitionSettings
    folds: FoldSettings
    train: TrainSettings
    train_keys: frozenset[str] = frozenset()  # the [train] keys ens.toml sets to a value (not "auto"); the others are defaults
    auto: AutoSettings = AutoSettings()

    @classmethod
    def load(cls, root: str | Path = ".") -> "Workspace":
        root = Path(root).resolve()
        config_path = root / CONFIG_FILE
        _check(config_path.is_file(), f"{config_path}: not found; a workspace needs an ens.toml (see docs/configuration.md, or run `ens demo`)")
        try:
            document = tomllib.loads(config_path.read_text(encoding="utf-8-sig"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise EnsError(f"{config_path}: not valid TOML: {error}") from None
        for section in document:
            _check(section in SECTIONS, f"{config_path}: unknown section [{section}]; expected: {', '.join(SECTIONS)}")
            _check(isinstance(document[section], dict), f"{config_path}: {section} must be a [{section}] table")
        settings = {name: from_table(kind, document.get(name, {}), f"{config_path} [{name}]") for name, kind in SECTIONS.items()}
        # A key written as "auto" is today's rule, as if left out: an experiment begun under an
        # older rule resumes with its recorded value (identity.recorded_defaults).
        chosen = frozenset(key for key, value in document.get("train", {}).items() if value != "auto")
        return cls(root=root, **settings, train_keys=chosen)

    def path(self, relative: str) -> Path:
        """A path from ens.toml, relative to the workspace unless absolute; ~ and $VARS expanded, $$ is $."""
        return (self.root / expand_path(relative)).resolve()

    @property
    def folds_dir(self) -> Path:
        return self.root / "folds"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def submissions_dir(self) -> Path:
        return self.root / "submissions"


def expand_path(text: str) -> str:
    """~ at the start and $VARS expanded, `$$` a literal `$`: quote_path's text comes back as it was."""
    return "$".join(os.path.expandvars(part) for part in os.path.expanduser(text).split("$$"))


def quote_path(path: str) -> str:
    """`path` as ens.toml holds it, so that expand_path gives it back: `$` doubled, a leading ~ behind ./."""
    return ("./" if path.startswith("~") else "") + path.replace("$", "$$")
