"""A pretrained network split at a stage boundary: its frozen lower stages run once per image,
its top stages and classifier train on their output maps (training/features.py, --frozen-features
with --top-blocks N).

Fine-tuning the top of an ImageNet network adapts it to a new domain, which frozen features
cannot; running the frozen stages below it in every epoch of every fold costs what the whole
network costs. Cut where the frozen stages end, they run once.

Generic over timm backbones whose forward runs its stages one after the other (EfficientNets,
ResNets, ConvNeXts...): the cut is after the last frozen coarse group (timm's group_matcher, the
groups --train-blocks counts too). `lower` runs the net until that group's module has its output;
`top` runs the net with every frozen module short-circuited and that output put in its place.
Both are checked against the whole network on real images (`check`); a backbone that does not
split so is refused in one line.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from ensemble.errors import EnsError
from ensemble.nets.networks import backbone_groups, backbone_of


class _Reached(Exception):
    """Raised by the cut module's hook: its output is all `lower` needs."""

    def __init__(self, output: torch.Tensor):
        self.output = output


class Split:
    """`net` cut below its last `top_blocks` coarse groups (every parameter and BatchNorm as the
    caller set them: nets.set_stage)."""

    def __init__(self, net: nn.Module, top_blocks: int, model_name: str):
        stages = backbone_groups(net)[:-1]
        if not 0 < top_blocks < len(stages):
            raise EnsError(f"train top_blocks {top_blocks}: {model_name} has {len(stages)} stages; train 1 to {len(stages) - 1} of them on the frozen ones' maps")
        self.net = net
        backbone = backbone_of(net)
        lower = {name for group in stages[: len(stages) - top_blocks] for name in group}
        self.frozen = _covering(backbone, lower)
        last = _covering(backbone, set(stages[len(stages) - top_blocks - 1]))
        if len(last) != 1:
            raise EnsError(f"train top_blocks {top_blocks}: {model_name}'s stage below the trained ones is not one module; train fewer stages")
        self.cut = last[0]

    def lower(self, inputs: torch.Tensor) -> torch.Tensor:
        """The frozen stages' output maps for a batch of the net's inputs."""
        def reached(module, args, output):
            raise _Reached(output)

        handle = self.cut.register_forward_hook(reached)
        try:
            backbone_of(self.net).forward_features(inputs)
        except _Reached as stop:
            return stop.output
        finally:
            handle.remove()
        raise EnsError("the frozen stages never ran: the backbone does not split at its stages")

    def top(self, maps: torch.Tensor) -> torch.Tensor:
        """The net's logits for a batch of the frozen stages' maps."""
        with _short_circuited(self.frozen, self.cut, maps):
            return self.net(maps)

    def check(self, inputs: torch.Tensor, model_name: str) -> None:
        """Refuse, in one line, a backbone whose top on `lower`'s maps is not the whole network."""
        training = self.net.training
        self.net.eval()
        try:
            with torch.inference_mode():
                whole = self.net(inputs).float()
                split = self.top(self.lower(inputs)).float()
        except Exception as error:  # noqa: BLE001 - whatever a forward that cannot be cut raises, one line
            raise EnsError(f"train top_blocks: {model_name}'s backbone cannot be split at its stages ({(str(error).splitlines() or [type(error).__name__])[0]}); train without --top-blocks") from None
        finally:
            self.net.train(training)
        gap = float((whole - split).abs().max())
        if gap > 1e-3 * (1.0 + float(whole.abs().max())):
            raise EnsError(f"train top_blocks: {model_name}'s stages do not run one after the other (split logits differ by {gap:.3g}); train without --top-blocks")


def _covering(module: nn.Module, names: set[str], prefix: str = "") -> list[nn.Module]:
    """The fewest submodules whose parameters are exactly those named (a module is taken whole
    when every parameter of it is named, else its children are looked at)."""
    own = [prefix + name for name, _ in module.named_parameters()]
    if own and all(name in names for name in own):
        return [module]
    found = []
    for child_name, child in module.named_children():
        if any(prefix + child_name + "." + name in names for name, _ in child.named_parameters()):
            found += _covering(child, names, f"{prefix}{child_name}.")
    return found


@contextmanager
def _short_circuited(frozen: list[nn.Module], cut: nn.Module, maps: torch.Tensor):
    """Every frozen module passes its input through, and the cut module returns `maps`."""
    def passing(inputs, *args, **kwargs):
        return inputs

    def cached(*args, **kwargs):
        return maps

    for module in frozen:
        module.forward = passing
    cut.forward = cached
    try:
        yield
    finally:
        for module in {id(module): module for module in [*frozen, cut]}.values():
            del module.forward
