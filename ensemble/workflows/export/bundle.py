"""An exported bundle read back: its files checked against the manifest, its fold models
rebuilt from safetensors, and the blend applied to a test list (`ens predict --bundle`).

A bundle (written by export.py) is a folder:
    bundle.json         the blend's record (blend/recorded.py), its members, what rebuilding
                        each fold model needs, the competition's reading rules, the versions
    weights/EXP/foldK.safetensors   each fold's weights (fp16 with --half); no pickles
    ens-VERSION-py3-none-any.whl    ens itself; requirements.txt; README.md
    manifest.json       the sha256 of every other file, written last
No workspace is read: the same code as `ens predict --blend` (predict_blend.blend_new_images)
runs on the bundle's copies of the fold models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ensemble.blend import recorded
from ensemble.blend.base import Blender
from ensemble.data.reading_rules import read_test_list, submission_text
from ensemble.errors import EnsError
from ensemble.inference import tta
from ensemble.inference.fold_models import MemberModels, fold_model
from ensemble.io import read_json, sha256_file, write_text
from ensemble.tasks import get as get_task
from ensemble.workflows.predict_blend import BlendPrediction, blend_new_images, check_out

FORMAT = 1
DOCUMENT, MANIFEST = "bundle.json", "manifest.json"


@dataclass(frozen=True)
class Bundle:
    root: Path
    document: dict
    blender: Blender


def verify(root: Path) -> dict:
    """manifest.json's {relative path: sha256}, every file checked: one line naming the first damaged or missing one."""
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise EnsError(f"{root}: not an ens bundle (no {MANIFEST}); make one with `ens export NAME --out DIR`")
    files = read_json(manifest_path).get("files", {})
    for relative, digest in files.items():
        path = root / relative
        if not path.is_file():
            raise EnsError(f"{path}: missing from the bundle ({MANIFEST} lists it); copy the whole bundle again")
        if sha256_file(path) != digest:
            raise EnsError(f"{path}: damaged: its sha256 is not the one {MANIFEST} records; copy or export the bundle again")
    if DOCUMENT not in files:
        raise EnsError(f"{manifest_path}: does not list {DOCUMENT}; export the bundle again")
    return files


def open_bundle(root: Path) -> Bundle:
    root = Path(root).expanduser().resolve()
    verify(root)
    document = read_json(root / DOCUMENT)
    if document.get("format") != FORMAT:
        raise EnsError(f"{root / DOCUMENT}: bundle format {document.get('format')!r}; this ens reads format {FORMAT}")
    return Bundle(root, document, recorded.restore(document["blend"], root / DOCUMENT))


def layout_of(name: str, device):
    """The fold's recorded training layout on the CPU (the float sums it was trained and cached with); channels_last on a GPU."""
    import torch

    if device.type == "cuda":
        return torch.channels_last
    return {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}[name]


def bundle_members(bundle: Bundle, device) -> list[MemberModels | None]:
    """Each member's fold models, weights read from safetensors as float32 (an fp16 bundle's
    too); None for a member the blend does not read (exported without weights)."""
    from safetensors.torch import load_file

    task = get_task(bundle.document["rules"]["task"])
    members = []
    for member in bundle.document["members"]:
        if member["weights"] is None:
            members.append(None)
            continue
        weights = bundle.document["weights"][member["weights"]]
        rebuild = {key: weights[key] for key in ("model", "classes", "size", "net_options")}
        folds = []
        for fold in weights["folds"]:
            path = bundle.root / fold["file"]
            state_dict = {key: tensor.float() if tensor.is_floating_point() else tensor for key, tensor in load_file(path).items()}
            folds.append(fold_model({**rebuild, "target_scale": fold["target_scale"]}, state_dict, path, device, member["batch_size"], layout_of(fold["layout"], device)))
        policy = tta.parse_policy(member["tta"], member["tta_merge"], task)
        members.append(MemberModels(member["name"], weights["size"], policy, member["view"], folds))
    return members


def predict_bundle(
    root: Path, test_csv: Path, test_images: Path, out: Path, device_name: str | None = None, force: bool = False, progress: Callable | None = None,
    amp: bool = False,
) -> BlendPrediction:
    """A CSV shaped like the competition's sample submission for the ids of test_csv, in its order.
    amp: CUDA autocast (fold_models.predict_members)."""
    from ensemble.nets.devices import resolve_device

    bundle = open_bundle(root)
    out = check_out(out, force)
    rules = bundle.document["rules"]
    test_list = read_test_list(rules, test_csv, test_images)
    probs, load_seconds, predict_seconds = bundle_outputs(bundle, test_list, resolve_device(device_name or "auto"), progress, amp)
    write_text(out, submission_text(rules, test_list.ids, probs))
    return BlendPrediction(out, len(test_list.ids), rules["submission"]["kind"], [member["name"] for member in bundle.document["members"]], predict_seconds)


def bundle_outputs(bundle: Bundle, test_list, device, progress: Callable | None = None, amp: bool = False):
    """(float64 (n, n_columns) outputs, seconds loading the fold models, seconds predicting and blending)."""
    started = time.perf_counter()
    members = bundle_members(bundle, device)
    loaded = time.perf_counter()
    probs = blend_new_images(bundle.blender, members, bundle.document["rules"], test_list, progress, amp)
    return probs, loaded - started, time.perf_counter() - loaded
