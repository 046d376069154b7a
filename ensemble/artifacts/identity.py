"""An experiment's identity: the settings.json record a run writes, and comparing two of them.

Every setting that changes the logits is in the record. A key missing from an older record
stands for what ens did before the key existed (LEGACY), so experiments trained before an
upgrade keep resuming and blending. Resuming with settings that differ is refused (artifacts/writer.py, for training/experiment.py and predict).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

from ensemble import __version__
from ensemble.config import TrainSettings
from ensemble.data.competition import Competition
from ensemble.data.folds import Folds
from ensemble.stages import legacy_stages, plan_stages, stage_record

# Recorded in settings.json but free to change when a run is resumed: they change neither
# the weights nor the logits (scores are recomputed with the current metric).
NOT_IDENTITY = {
    "name",  # a copied or renamed experiment folder resumes
    "device",
    "versions",
    "competition.train_csv",  # its content hash is compared instead
    "competition.test_csv",  # the test ids' hash is compared instead
    "competition.sample_submission",
    "competition.metric",
    "competition.task",  # "auto" or a kind: the resolved kind, `task`, is compared instead
    "competition.submission",
    "competition.positive_class",
    "competition.group_column",  # the folds file's hash is compared instead
    "train.pretrained",  # the weights file's path: train.weights (its content hash) is compared instead
    "images_sha256",  # compared by images_changed: older records, without it, are not checked
}

# What a key missing from an older settings.json stands for: the value that reproduces what
# ens did before the key existed (a constant, or a function of the old record), so that
# experiments trained before an upgrade keep resuming and blending. Keys are dotted paths.
LEGACY: dict[str, Any] = {
    # Before issue 20: no experiment learnt from a blend.
    "teacher": None,
    # Before issue 18: every competition was single-label, its cells' labels whole.
    "task": "single_label",
    "competition.label_separator": " ",
    "train.loss": "cross_entropy",  # a record names its loss, "auto" settled; every older one was single-label
    "train.sizes": "",  # one stage at train.size
    "train.stages": legacy_stages,
    "train.augment": "none",
    "train.augment_fill": lambda record: legacy_augment_fill(record["train"]["augment"]),
    "train.ema": 0.0,
    "train.mixup": 0.0,
    "train.cutmix": 0.0,
    "train.label_smoothing": 0.0,
    "train.class_weights": "none",
    "train.optimizer": "adamw",
    "train.schedule": "onecycle",
    "train.warmup": 0.2,
    "train.clip_grad": 0.0,
    # Before issue 11: no attention, random weights, nothing frozen, one learning rate.
    "train.attention": "none",
    "train.attention_in_blocks": False,
    "train.pretrained": "",
    "train.weights": "random",
    "train.train_blocks": -1,
    "train.freeze_bn": False,
    "train.unfreeze_after": 0,
    "train.backbone_lr_scale": 1.0,
    "train.frozen_features": False,  # before issue 17's frozen-features candidate: every fold ran the backbone
    "train.top_blocks": 0,  # before the top stages trained on the frozen stages' maps: a frozen-features fold trained a linear head
    # Before issue 7: no test-time augmentation.
    "train.tta": "none",
    "train.tta_merge": "mean",
}


# The transforms that brought black in from outside the image before train.augment_fill existed.
FILLING_TRANSFORMS = ("shift", "scale", "rotate")


def legacy_augment_fill(augment: str) -> str:
    """What an older experiment filled with: black where its spec warps; otherwise nothing was
    ever filled, its logits are those of "mean", and it resumes under today's default."""
    warps = any(part.split(":")[0].strip() in FILLING_TRANSFORMS for part in augment.split(","))
    return "black" if warps else "mean"


def describe_run(
    competition: Competition,
    folds: Folds,
    name: str,
    settings: TrainSettings,
    weights: str,
    versions: dict,
    images: dict[str, str],
    teacher: dict | None = None,
) -> dict:
    """settings.json: everything that decides an experiment's numbers, plus a few notes.

    weights: what the pretrained weights are ('random', timm's tag, or a file's content hash);
    versions: the libraries' versions; both given by the training side, which imports them.
    images: the content keys of the train and test images (data/content.py); teacher: a
    student's teacher ({"pseudo": ..., "distill": ...}, workflows/teach.py), None for none.
    """
    train = dataclasses.asdict(settings)
    train["weights"] = weights
    return {
        "name": name,
        "train": {key: value for key, value in train.items() if key != "device"} | {"stages": stage_record(plan_stages(settings))},
        "device": settings.device,
        "competition": dataclasses.asdict(competition.settings),
        "task": competition.task.name,
        "classes": list(competition.classes),
        "train_sha256": competition.train_hash,
        "test_ids_sha256": competition.test_ids_hash,
        "images_sha256": images,
        "k": folds.k,
        "folds_sha256": folds.sha256,
        "teacher": teacher,
        "versions": {"ens": __version__, **versions},
    }


def with_legacy_values(record: dict) -> dict:
    """A copy of an older settings.json record with every LEGACY key it lacks filled in."""
    record = copy.deepcopy(record)
    for dotted, value in LEGACY.items():
        *parents, key = dotted.split(".")
        table = record
        for parent in parents:
            table = table.setdefault(parent, {})
        if key not in table:
            table[key] = value(record) if callable(value) else value
    return record


def _lookup(record: dict, dotted: str):
    table = record
    for part in dotted.split("."):
        if not isinstance(table, dict) or part not in table:
            return None
        table = table[part]
    return table


# LEGACY keys that no flag sets: they follow from other settings.
DERIVED = {"train.stages", "train.weights"}


def legacy_flags(existing: dict, record: dict) -> list[str]:
    """The flags that resume an older experiment as it was: for each train key its
    settings.json lacked (LEGACY stands in) whose value differs from `record`'s, e.g.
    '--augment-fill black'."""
    filled = with_legacy_values(existing)
    return [
        f"--{dotted.split('.')[-1].replace('_', '-')} {_lookup(filled, dotted)}"
        for dotted in LEGACY
        if dotted.startswith("train.") and dotted not in DERIVED
        and _lookup(existing, dotted) is None and _lookup(filled, dotted) != _lookup(record, dotted)
    ]


def recorded_defaults(existing: dict, record: dict, given: set[str] | frozenset[str]) -> dict[str, tuple[Any, Any]]:
    """The train settings an existing experiment keeps because nobody set them: every key of
    `record`'s train table whose value differs from the one settings.json recorded and that
    is not in `given` (set in ens.toml or by a flag): {key: (recorded, today's default)}. A
    default changed by an upgrade thus never refuses an unfinished experiment: it resumes as
    it began, and only new experiments get the new default."""
    old, new = with_legacy_values(existing).get("train", {}), record["train"]
    fields = {field.name for field in dataclasses.fields(TrainSettings)}
    return {
        key: (old[key], new[key])
        for key in sorted(fields & set(old) & set(new))
        if old[key] != new[key] and key not in given and f"train.{key}" not in NOT_IDENTITY
    }


def images_changed(old: dict, images: dict[str, str]) -> list[str]:
    """Which image lists ('train', 'test') hold other pixels than `old` recorded; none for a
    record made before the images' keys were recorded."""
    recorded = old.get("images_sha256") or {}
    return [which for which in ("train", "test") if which in recorded and recorded[which] != images.get(which)]


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """'key: old -> new' for every identity setting that differs."""
    changed = []
    for key in sorted(set(old) | set(new)):
        if f"{prefix}{key}" in NOT_IDENTITY:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}: {shown(f'{prefix}{key}', a)} -> {shown(f'{prefix}{key}', b)}")
    return changed


def shown(key: str, value: Any, width: int = 40) -> str:
    """A recorded value as a difference shows it: `source` as where the logits came from, a
    table or list as JSON, long text cut with '...' (never a dict's repr cut mid-key)."""
    if key == "source":
        return f"predicted from {value['experiment']}" if isinstance(value, dict) and "experiment" in value else "trained"
    if key == "teacher":  # the flags that taught it, and which written blend (its JSON's hash)
        taught = [f"--{way} {record['blend']} (its JSON {record['blend_sha256'][:8]})" for way, record in (value or {}).items() if record]
        return " ".join(taught) or "no teacher"
    if value is None:
        return "none"
    text = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= width else text[: width - 3] + "..."
