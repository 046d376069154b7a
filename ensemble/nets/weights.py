"""Pretrained backbone weights: from a local file (safetensors or a torch state dict), or timm's tag.

A file is checked against the plain timm model, its original classifier included (1,000
ImageNet classes for most). Keys are matched by name; a file from another codebase, whose
names differ but whose tensors line up in order and shape with the plain model, is mapped by
order (the mapping is returned, so the caller can log it). Then the original classifier is
dropped: the net gets a new one for the competition's classes. Only the parts ens adds (the
attention blocks, the new classifier) may be missing; any other missing, extra or mis-shaped
tensor is refused with one line that names the first one.

Torch files are read with `weights_only=True`: no pickled code runs.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ensemble.errors import EnsError
from ensemble.io import sha256_file

TIMM = "timm"  # --pretrained timm: timm's own pretrained tag (downloads; for users online)
# BatchNorm's step counter changes no output; files from other codebases often lack it.
COUNTER = "num_batches_tracked"


@dataclass(frozen=True)
class Mapping:
    """How a file's tensors were matched to the plain model.

    how: "by name" or "by order and shape"; pairs: (file key, model key) for every tensor
    loaded; dropped: file keys left out (the original classifier).
    """

    source: str
    how: str
    pairs: list[tuple[str, str]]
    dropped: list[str]

    def summary(self) -> str:
        renamed = [f"{a} -> {b}" for a, b in self.pairs if a != b]
        example = f" (e.g. {', '.join(renamed[:2])})" if renamed else ""
        dropped = f"; dropped the original classifier {', '.join(self.dropped)}" if self.dropped else ""
        return f"{len(self.pairs)} tensors from {self.source} matched {self.how}{example}{dropped}"


def weights_identity(source: str, model_name: str) -> str:
    """What settings.json records: 'random', timm's tag, or the file's content hash (a moved file still matches)."""
    if not source:
        return "random"
    if source == TIMM:
        from timm.models import get_pretrained_cfg

        config = get_pretrained_cfg(model_name)
        return f"timm:{model_name}.{config.tag if config else ''}"
    if not Path(source).is_file():
        raise EnsError(f"--pretrained {source}: file not found")
    return "sha256:" + sha256_file(Path(source))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file or a torch state dict (also inside {'state_dict': ...} or {'model': ...})."""
    if not path.is_file():
        raise EnsError(f"--pretrained {path}: file not found")
    try:
        if _is_safetensors(path):
            from safetensors.torch import load_file

            tensors = load_file(str(path))
        else:
            with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
                warnings.simplefilter("ignore")
                tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a file of any other kind: say what it is and what is accepted, in one line
        raise EnsError(f"--pretrained {path}: cannot read weights: {describe_file(path, error)}; {ACCEPTED}") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(tensors, dict) and isinstance(tensors.get(wrapper), dict):
            tensors = tensors[wrapper]
    if not isinstance(tensors, dict) or not all(isinstance(value, torch.Tensor) for value in tensors.values()):
        raise EnsError(f"--pretrained {path}: expected a state dict (tensor names -> tensors), got {type(tensors).__name__}")
    # NaN or inf weights train to NaN logits that would be blamed on the learning rate.
    damaged = next((key for key, value in tensors.items() if value.is_floating_point() and not bool(torch.isfinite(value).all())), None)
    if damaged is not None:
        raise EnsError(
            f"--pretrained {path}: tensor {damaged!r} holds NaN or infinite values: the weights file is damaged "
            "(or saved from a run that diverged); use another file"
        )
    return dict(tensors)


ACCEPTED = "expected a state dict saved with torch.save(model.state_dict(), FILE), or a .safetensors file"


def describe_file(path: Path, error: Exception) -> str:
    """What a file torch.load refused looks like, from its first bytes (torch's own message is
    a paragraph about weights_only, or a bare KeyError such as '101')."""
    with path.open("rb") as handle:
        head = handle.read(256)
    if not head:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04"):
        if isinstance(error, pickle.UnpicklingError):
            return "a torch file holding Python objects besides tensors (a whole model saved with torch.save(model)?), which are never unpickled"
        reason = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        return f"a zip archive torch cannot read ({reason[:120]})"
    if head[:1] == b"\x80":
        return "a Python pickle, not a torch or safetensors file; pickled objects are never loaded"
    try:
        text = head.decode("utf-8", errors="strict" if len(head) < 256 else "ignore")
    except UnicodeDecodeError:
        return "a binary file of unknown format"
    if not all(char.isprintable() or char.isspace() for char in text):
        return "a binary file of unknown format"
    first = next((line for line in text.splitlines() if line.strip()), "")
    return f"a text file (it starts {first[:40]!r})"


def _is_safetensors(path: Path) -> bool:
    """safetensors files start with an 8-byte header length and a JSON header ('{')."""
    with path.open("rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def match(tensors: dict[str, torch.Tensor], plain: dict[str, torch.Tensor], classifier: set[str], source: str) -> Mapping:
    """Match a file's tensors to the plain model's state dict; refuse what does not fit."""
    body = [key for key in plain if key not in classifier]
    if any(key in tensors for key in body):
        return _match_by_name(tensors, plain, classifier, source)
    return _match_by_order(tensors, plain, classifier, source)


def _match_by_name(tensors, plain, classifier, source) -> Mapping:
    for key, tensor in tensors.items():
        if key not in plain:
            raise EnsError(f"--pretrained {source}: tensor {key!r} is not in the timm model (first extra tensor)")
        if key not in classifier and tensor.shape != plain[key].shape:
            raise EnsError(
                f"--pretrained {source}: tensor {key!r} has shape {tuple(tensor.shape)}, the model expects {tuple(plain[key].shape)}"
            )
    for key in plain:
        if key not in tensors and key not in classifier and not key.endswith(COUNTER):
            raise EnsError(f"--pretrained {source}: tensor {key!r} of the timm model is missing from the file")
    pairs = [(key, key) for key in tensors if key not in classifier]
    return Mapping(source, "by name", pairs, [key for key in tensors if key in classifier])


def _match_by_order(tensors, plain, classifier, source) -> Mapping:
    file_keys = [key for key in tensors if not key.endswith(COUNTER)]
    model_keys = [key for key in plain if not key.endswith(COUNTER)]
    if len(file_keys) == len(model_keys) - len(classifier):  # a file saved without its classifier
        model_keys = [key for key in model_keys if key not in classifier]
    for index, (file_key, model_key) in enumerate(zip(file_keys, model_keys)):
        if tensors[file_key].shape != plain[model_key].shape:
            raise EnsError(
                f"--pretrained {source}: names differ from timm's and tensor {index} {file_key!r} "
                f"{tuple(tensors[file_key].shape)} does not line up with {model_key!r} {tuple(plain[model_key].shape)}"
            )
    if len(file_keys) != len(model_keys):
        first = file_keys[len(model_keys)] if len(file_keys) > len(model_keys) else model_keys[len(file_keys)]
        raise EnsError(
            f"--pretrained {source}: names differ from timm's and the file has {len(file_keys)} tensors, "
            f"the model {len(model_keys)} (first unmatched: {first!r})"
        )
    pairs = [(a, b) for a, b in zip(file_keys, model_keys) if b not in classifier]
    return Mapping(source, "by order and shape", pairs, [a for a, b in zip(file_keys, model_keys) if b in classifier])


def is_added(key: str, added_prefixes: tuple[str, ...]) -> bool:
    return key.startswith(added_prefixes)


def load_pretrained(backbone: nn.Module, plain: nn.Module, source: str, added_prefixes: tuple[str, ...]) -> Mapping:
    """Put weights from `source` (a file path, or 'timm') into `backbone`, in place.

    backbone: the timm model inside ens's net (its classifier sized for the competition,
    possibly with attention inside its blocks); plain: the same architecture as timm builds
    it, with its original classifier; added_prefixes: state-dict prefixes of ens's own parts.
    """
    classifier = {key for key in plain.state_dict() if _in_classifier(plain, key)}
    if source == TIMM:
        tensors, label = plain.state_dict(), f"timm's {plain.pretrained_cfg.get('architecture')}.{plain.pretrained_cfg.get('tag')}"
    else:
        tensors, label = read_state_dict(Path(source)), source
    mapping = match(tensors, plain.state_dict(), classifier, label)
    loaded = {model_key: tensors[file_key] for file_key, model_key in mapping.pairs}
    result = backbone.load_state_dict(loaded, strict=False)
    unexpected = list(result.unexpected_keys)
    missing = [
        key for key in result.missing_keys
        if not (is_added(key, added_prefixes) or _in_classifier(backbone, key) or key.endswith(COUNTER))
    ]
    if unexpected or missing:  # the plain model and ens's backbone disagree: a bug, said plainly
        raise EnsError(f"--pretrained {label}: tensor {(unexpected + missing)[0]!r} does not fit ens's network")
    return mapping


def _in_classifier(model: nn.Module, key: str) -> bool:
    """Whether a state-dict key belongs to the model's classifier (timm's pretrained_cfg names it)."""
    names = model.pretrained_cfg.get("classifier", "fc")
    names = (names,) if isinstance(names, str) else tuple(names)
    return any(key.startswith(name + ".") for name in names)
