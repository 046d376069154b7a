"""ens auto's candidates: diverse models and sizes around the images' own size. Pure, torch-free.

Diversity is what moves a blend's score at a few minutes of CPU (issue 17: several models,
sizes and enough epochs beat every regulariser tried on one experiment), so the built-in
portfolio spans families (plain ResNets, an EfficientNet, a ConvNeXt-style net, an attention
variant), two sizes and two seeds. Each candidate's `value` is a prior for ordering only: how
much it is expected to add to a blend, first of a family highest. The plan (plan.py) weighs
it against the time the probe measured for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ensemble.errors import EnsError

# Weights files the pretrained candidates read, by suffix (nets/weights.py reads them all).
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
# ImageNet features need pixels: measured on 64 px icons, frozen features scored 0.64 at 128 px
# and 0.73 at 224 px (issue 17); fine-tuning at 224 px costs about 20x 48 px on a CPU.
PRETRAINED_SIZE = 96
# Frozen features are computed once, so they can afford more than ImageNet's own size. Measured on
# the emoji competition (benchmarks/emoji_competition.py, 2,000 + 1,000 images of 64 px,
# efficientnet-lite0): OOF 0.636 at 64 px, 0.696 at 128 px, 0.7185 at 224 px (35 s for every
# image on 2 cores), 0.7325 at 288 px (67 s); on 400 icons of the same kind 0.59, 0.595, 0.61 at
# 160, 224, 288 px. Blended with the 64 px resnet10t: OOF 0.7665 with 224 px, 0.7720 with 288 px.
FROZEN_SIZE = 288
# Fine-tuning the top stages on the frozen ones' maps (training/features.py, --top-blocks) adapts
# ImageNet features to the competition's domain. Measured with efficientnet-lite0 at 224 px, 10
# epochs, 5 folds, 2 cores (benchmarks/RESULTS.md), OOF / hidden / time:
#   icons-like set (400 + 170): linear head at 288 px 0.61 / 0.61 / 0:14; top 1 stage 0.66 / 0.618 / 0:41;
#     top 2 stages 0.7025 / 0.665 / 1:28;
#   emoji (2,000 + 1,000): linear head 0.7325 / 0.734 / 1:10; top 1 0.7755 / 0.773 / 3:11; top 2 0.794 / 0.806 / 8:11.
# Two candidates, so that value per second ranks the cheap one early where the dear one does not
# fit: (top blocks, prior value). Their priors are the highest, as they are the best single members.
TOP_SIZE = 224
TOP_CANDIDATES = ((1, 1.5), (2, 2.0))


@dataclass(frozen=True)
class Candidate:
    """One experiment auto may train: `name` is its suffix (models/AUTO-NAME).

    value: the prior expected gain for ordering (0..1.5); why: what it adds, printed."""

    name: str
    model: str
    size: int
    value: float
    why: str
    seed: int = 42
    attention: str = "none"
    pretrained: str = ""
    frozen: bool = False  # frozen features: the backbone run once, a linear head per fold (training/features.py)
    top_blocks: int = 0  # with frozen: the top stages trained per fold on the frozen ones' maps (0: a linear head)

    @property
    def speed_key(self) -> str:
        """Candidates that train at the same pace share one probe: seeds do not change it."""
        key = f"{self.model}@{self.size}" + (f"+{self.attention}" if self.attention != "none" else "") + ("+pretrained" if self.pretrained else "")
        return key + ("+frozen" if self.frozen else "") + (f"+top{self.top_blocks}" if self.frozen and self.top_blocks > 0 else "")


def round8(side: float) -> int:
    return max(16, int(8 * round(side / 8)))


def other_size(size: int) -> int:
    """The second size of the portfolio: 64 px below it, else three quarters of the size (cheaper).
    Smaller is not cheaper in skill: 40 px digits at 40 px scored 0.84 OOF, at 48 px 0.90, at 56 px
    0.93 (docs/training.md#which-of-these-to-use)."""
    return 64 if size < 64 else round8(size * 0.75)


def built_in(size: int) -> list[Candidate]:
    second = other_size(size)
    return [
        Candidate(f"resnet10t-{size}", "resnet10t", size, 1.0, "the cheapest strong base; its OOF decides which views keep labels"),
        Candidate(f"resnet18-{size}", "resnet18", size, 0.9, "a deeper ResNet"),
        Candidate(f"efficientnet_b0-{size}", "efficientnet_b0", size, 0.8, "another family: depthwise convolutions with squeeze-excitation"),
        # From scratch on a few thousand images the ConvNeXt learns least of the built-in families
        # (digits demo 0.975 OOF against resnet10t's 0.992; digit competition 0.22, abandoned;
        # Fashion-MNIST 0.80 against 0.87): fast, it still joins when there is time, after the others.
        Candidate(f"convnext_atto-{size}", "convnext_atto", size, 0.4, "a ConvNeXt-style net: patchify stem, large kernels"),
        Candidate(f"resnet10t-se-{size}", "resnet10t", size, 0.6, "an attention variant (squeeze-excitation on the features)", attention="se"),
        Candidate(f"resnet10t-{second}", "resnet10t", second, 0.6, f"another size ({second} px beside {size} px)"),
        Candidate(f"resnet18-{size}-seed2", "resnet18", size, 0.45, "a second seed of the deeper ResNet", seed=43),
        Candidate(f"resnet10t-{size}-seed2", "resnet10t", size, 0.4, "a second seed of the base", seed=43),
    ]


def chosen_models(models: list[str], size: int) -> list[Candidate]:
    """The models asked for ([auto] models), each at the native size, the first as the base."""
    return [
        Candidate(f"{model}-{size}", model, size, round(1.0 - 0.05 * index, 2), "the base; its OOF decides which views keep labels" if index == 0 else "asked for in [auto] models")
        for index, model in enumerate(models)
    ]


def pretrained_candidates(directory: Path) -> list[Candidate]:
    """Four candidates per weights file named after a timm model (efficientnet_lite0.pth): its
    frozen features at FROZEN_SIZE, its top one and two stages trained on the frozen ones' maps at
    TOP_SIZE, and the network fine-tuned at PRETRAINED_SIZE."""
    if not directory.is_dir():
        raise EnsError(f"{directory}: --pretrained-dir is not a folder; give a folder of weights files named after timm models")
    files = sorted(path for path in directory.iterdir() if path.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise EnsError(f"{directory}: holds no weights file ({', '.join(WEIGHT_SUFFIXES)}) named after a timm model, e.g. efficientnet_lite0.pth")
    candidates = []
    for path in files:
        candidates += [
            Candidate(
                f"{path.stem}-frozen{FROZEN_SIZE}", path.stem, FROZEN_SIZE, 1.3,
                f"pretrained features ({path.name}) at {FROZEN_SIZE} px, computed once; a linear head per fold", pretrained=str(path), frozen=True,
            ),
            *[
                Candidate(
                    f"{path.stem}-top{blocks}-{TOP_SIZE}", path.stem, TOP_SIZE, value,
                    f"pretrained ({path.name}): its top {blocks} stage{'s' if blocks > 1 else ''} trained per fold at {TOP_SIZE} px on the frozen stages' maps, computed once",
                    pretrained=str(path), frozen=True, top_blocks=blocks,
                )
                for blocks, value in TOP_CANDIDATES
            ],
            Candidate(f"{path.stem}-pre{PRETRAINED_SIZE}", path.stem, PRETRAINED_SIZE, 1.2, f"pretrained weights ({path.name}) fine-tuned at {PRETRAINED_SIZE} px", pretrained=str(path)),
        ]
    return candidates


def portfolio(size: int, models: list[str] | None = None, pretrained_dir: Path | None = None) -> list[Candidate]:
    """Every candidate, the base first: `models` replace the built-in list; pretrained ones join after the base."""
    candidates = chosen_models(models, size) if models else built_in(size)
    extra = pretrained_candidates(pretrained_dir) if pretrained_dir else []
    return candidates[:1] + extra + candidates[1:]
