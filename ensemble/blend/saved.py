"""A written blend read back: submissions/NAME.json and the fitted blender it records, refused
when its files disagree with it or its members' cached logits changed since it was fitted.
`ens predict --blend`, `ens export` and a teaching blend (teacher.py) open blends this way."""

from __future__ import annotations

from ensemble.blend import recorded
from ensemble.blend.base import Blender
from ensemble.blend.members import split_member
from ensemble.config import Workspace
from ensemble.errors import EnsError
from ensemble.io import group_complete, read_json, sha256_file


def open_blend(workspace: Workspace, name: str) -> tuple[dict, Blender]:
    """NAME.json and the fitted blender it records; refused when its submission files do not
    agree with it, or when it was written before blends recorded their parameters."""
    json_path = workspace.submissions_dir / f"{name}.json"
    if not json_path.is_file():
        raise EnsError(f"{json_path}: no blend {name!r}; run `ens blend -n {name}` first")
    if not group_complete(json_path):
        raise EnsError(f"{json_path}: {name}'s files do not agree with it (a write cut short, or a file edited since); run `ens blend -n {name} --force` again")
    document = read_json(json_path)
    return document, recorded.restore(document, json_path)


def check_inputs_unchanged(workspace: Workspace, document: dict) -> None:
    """Refuse a blend whose members' cached logits changed since it was fitted: its weights
    were fitted to other models."""
    for member, files in document.get("inputs_sha256", {}).items():
        for relative, digest in files.items():
            path = workspace.models_dir / split_member(member)[0] / relative
            if not path.is_file() or sha256_file(path) != digest:
                raise EnsError(
                    f"{path}: not the file blend {document['name']} was fitted on (trained or predicted again since); "
                    f"run `ens blend -n {document['name']} --force` with its options again"
                )
