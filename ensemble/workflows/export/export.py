"""`ens export NAME --out DIR`: a blend as a self-contained folder for an offline machine (a
code competition's notebook), read back by bundle.py.

The bundle is written into a temporary folder beside DIR and renamed onto it only once it is
whole and has predicted the competition's test images: from its own files, through
`ens predict --bundle`'s code. That run measures the images per second its README states, and
it is compared with the blend's own test outputs (from the cached logits): the largest
difference is reported, and with --half (fp16 weights) a changed label or tag refuses the
export unless --force.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

import ensemble
from ensemble.artifacts.store import open_experiment
from ensemble.blend.members import load_members, split_member
from ensemble.blend.run import test_probabilities
from ensemble.blend.saved import check_inputs_unchanged, open_blend
from ensemble.config import Workspace
from ensemble.data.competition import Competition, load_competition
from ensemble.data.reading_rules import TestList, rules_of, shape_of
from ensemble.data.submission import KINDS
from ensemble.errors import EnsError
from ensemble.inference.checkpoints import checkpoint_owner, fold_checkpoints, settings_of
from ensemble.io import atomic_path, read_json, sha256_file, write_bytes, write_json, write_text
from ensemble.workflows.export import bundle as bundle_module
from ensemble.workflows.export.readme import readme_text
from ensemble.workflows.export.wheel import wheel_bytes
from ensemble.workflows.predict_blend import used_members

# The submission kind that writes each task kind's decisions: what --half must not change.
DECISIONS = {"single_label": "labels", "multi_label": "tags"}


@dataclass(frozen=True)
class ExportResult:
    """weights_bytes: the weight files as written; float32_bytes: as float32 (equal without
    --half); max_difference: the largest output difference from the blend's own test outputs;
    changed: test images whose label or tags differ; the speed measured on the competition's
    test images (n_test) by the bundle itself."""

    path: Path
    zip_path: Path | None
    members: list[str]
    half: bool
    weights_bytes: int
    float32_bytes: int
    max_difference: float
    changed: int
    n_test: int
    load_seconds: float
    predict_seconds: float

    @property
    def images_per_second(self) -> float:
        return self.n_test / self.predict_seconds if self.predict_seconds > 0 else float("inf")


def layout_name(state_dict: dict) -> str:
    import torch

    from ensemble.nets.devices import memory_format

    return "channels_last" if memory_format(torch.device("cpu"), state_dict) == torch.channels_last else "contiguous"


def weights_file(state_dict: dict, half: bool) -> tuple[bytes, int]:
    """(safetensors bytes, the float32 size in bytes). Tensors are copied contiguous (safetensors
    keeps no strides: the layout is recorded beside them) and unshared."""
    from safetensors.torch import save

    tensors, full = {}, 0
    for key, tensor in state_dict.items():
        tensor = tensor.detach().clone().contiguous()
        full += tensor.numel() * (4 if tensor.is_floating_point() else tensor.element_size())
        tensors[key] = tensor.half() if half and tensor.is_floating_point() else tensor
    return save(tensors), full


def write_weights(workspace: Workspace, competition: Competition, names: list[str], used: list[bool], staging: Path, half: bool) -> tuple[dict, list[dict], dict, int, int]:
    """(weights: owner -> rebuild record and fold files, members, versions by owner, bytes
    written, float32 bytes). A member the blend does not read (weight zero) travels without weights."""
    weights, members, versions = {}, [], {}
    written = full = 0
    for name, needed in zip(names, used):
        experiment_name, view = split_member(name)
        experiment = open_experiment(workspace.models_dir, experiment_name)
        settings = settings_of(experiment)
        owner = checkpoint_owner(workspace.models_dir, experiment)
        members.append({"name": name, "weights": owner.name if needed else None, "view": view, "batch_size": settings["train"]["batch_size"],
                        "tta": settings["train"]["tta"], "tta_merge": settings["train"]["tta_merge"]})
        if not needed or owner.name in weights:
            continue
        versions[owner.name] = read_json(owner.settings_path).get("versions", {})
        checkpoints, size = fold_checkpoints(owner, list(range(settings["k"])), settings, competition.classes)
        folds = []
        for fold, checkpoint in checkpoints.items():
            relative = f"weights/{owner.name}/fold{fold}.safetensors"
            data, float32_bytes = weights_file(checkpoint["state_dict"], half)
            write_bytes(staging / relative, data)
            written, full = written + len(data), full + float32_bytes
            folds.append({"file": relative, "target_scale": checkpoint.get("target_scale"), "layout": layout_name(checkpoint["state_dict"])})
        first = checkpoints[0]
        weights[owner.name] = {"model": first["model"], "classes": list(first["classes"]), "size": size, "net_options": first.get("net_options", {}), "folds": folds}
    return weights, members, versions, written, full


def requirements_text(versions: dict, document: dict) -> str:
    """The libraries the fold models were trained with (settings.json "versions"); those not
    recorded at training, at the exporting machine's versions."""
    import safetensors
    import sklearn

    lines = ["# the versions the members were trained with (settings.json), then the exporting machine's"]
    pinned: dict[str, str] = {}
    for owner, recorded_versions in versions.items():
        for library in ("torch", "timm"):
            if library in recorded_versions:
                pinned.setdefault(library, recorded_versions[library].split("+")[0])
    pinned.setdefault("safetensors", safetensors.__version__)
    pinned.setdefault("scikit-learn", sklearn.__version__)
    if any(meta and meta.get("learner") == "lgbm" for meta in meta_records(document)):
        import lightgbm

        pinned["lightgbm"] = lightgbm.__version__
    lines += [f"{library}=={version}" for library, version in pinned.items()]
    return "\n".join(lines) + "\n"


def meta_records(document: dict) -> list:
    meta = document["fitted"]["state"].get("meta")
    return meta if isinstance(meta, list) else [meta]


def manifest(staging: Path) -> dict:
    files = sorted(path for path in staging.rglob("*") if path.is_file() and path.name != bundle_module.MANIFEST)
    return {"files": {path.relative_to(staging).as_posix(): sha256_file(path) for path in files}}


def decided(rules: dict, probs: np.ndarray):
    """What the submission decides (labels, tags), or None for a regression's values."""
    kind = DECISIONS.get(rules["task"])
    if kind is None:
        return None
    return np.asarray(next(iter(KINDS.get(kind)(shape_of(rules), probs).values())), dtype=object)


def check_targets(out: Path, make_zip: bool, force: bool) -> Path | None:
    zip_path = out.with_name(out.name + ".zip") if make_zip else None
    for path in (out, zip_path):
        if path is not None and path.exists() and not force:
            raise EnsError(f"{path}: already exists; use --force to replace it")
    return zip_path


def export_blend(
    workspace: Workspace, name: str, out: Path, half: bool = False, make_zip: bool = False, force: bool = False,
    device_name: str | None = None, progress: Callable | None = None,
) -> ExportResult:
    from ensemble.nets.devices import resolve_device

    document, blender = open_blend(workspace, name)
    out = Path(out).expanduser().resolve()
    zip_path = check_targets(out, make_zip, force)
    check_inputs_unchanged(workspace, document)
    competition = load_competition(workspace, check_images=False)
    names = [member["name"] for member in document["members"]]
    rules = rules_of(competition)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        weights, members, versions, written, full = write_weights(workspace, competition, names, used_members(blender, len(names)), staging, half)
        blend_record = {key: document.get(key) for key in ("name", "method", "task", "metric", "oof_score", "fitted", "tuned_biases", "thresholds")}
        write_json(staging / bundle_module.DOCUMENT, {
            "format": bundle_module.FORMAT, "ens": ensemble.__version__, "half": half, "blend": blend_record,
            "members": members, "weights": weights, "rules": rules, "versions": versions,
        })
        wheel_name, wheel = wheel_bytes()
        write_bytes(staging / wheel_name, wheel)
        write_text(staging / "requirements.txt", requirements_text(versions, document))
        write_json(staging / bundle_module.MANIFEST, manifest(staging))

        # The bundle predicts the competition's test images from its own files, as it will offline.
        test_list = TestList(workspace.path(competition.settings.test_csv), competition.test_ids, competition.test_image_paths())
        device = resolve_device(device_name or workspace.train.device)
        probs, load_seconds, predict_seconds = bundle_module.bundle_outputs(bundle_module.open_bundle(staging), test_list, device, progress)
        reference = test_probabilities(blender, workspace, competition, load_members(workspace.models_dir, competition, names))
        max_difference = float(np.abs(probs - reference).max())
        labels, reference_labels = decided(rules, probs), decided(rules, reference)
        changed = 0 if labels is None else int((labels != reference_labels).sum())
        if half and changed and not force:
            raise EnsError(
                f"--half changes the predicted {DECISIONS[rules['task']]} of {changed} of {len(labels)} test images "
                f"(largest probability difference {max_difference:.2g}); export without --half, or use --force to keep fp16"
            )
        result = ExportResult(out, zip_path, names, half, written, full, max_difference, changed, len(test_list.ids), load_seconds, predict_seconds)
        write_text(staging / "README.md", readme_text(name, document, rules, members, weights, result, wheel_name, device.type))
        write_json(staging / bundle_module.MANIFEST, manifest(staging))
        replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if zip_path is not None:
        write_zip(out, zip_path)
    return result


def replace_folder(staging: Path, out: Path) -> None:
    """staging renamed onto out; an old out (--force) is moved aside first and removed after."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old.", suffix=".tmp"))
        os.replace(out, old / out.name)
    os.replace(staging, out)
    os.chmod(out, 0o755)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_zip(folder: Path, zip_path: Path) -> None:
    """The bundle as one zip (a Kaggle dataset upload), its files under the folder's name. Stored, not
    deflated: weights barely compress."""
    with atomic_path(zip_path) as temporary:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
