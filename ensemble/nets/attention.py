"""Attention blocks: a registry of constructors with one signature, as timm's layers have.

Every member is called `(channels, rd_ratio=..., act_layer=..., gate_layer=...)` and returns an
nn.Module that maps (n, channels, h, w) to the same shape. SE, ECA and CBAM are timm's own
layers; the residual attention module is ours (attention_layers.py), in the same shape.

- `se`: squeeze-and-excitation (Hu et al., 2018, arXiv:1709.01507): global average pool, a
  bottleneck MLP, sigmoid channel gates.
- `eca`: efficient channel attention (Wang et al., 2020, arXiv:1910.03151): a 1-D convolution
  across the pooled channels instead of the MLP.
- `cbam`: channel attention from average- and max-pooled descriptors through one shared MLP,
  then spatial attention from a 7x7 convolution over channel-wise average and max maps
  (Woo et al., 2018, arXiv:1807.06521).
- `residual`: bottom-up top-down mask M and output (1 + M) * trunk (Wang et al., 2017,
  arXiv:1704.06904).

Every block starts as the identity (exactly for se, eca and cbam; within 0.25 % for residual).
A plain sigmoid gate starts at 0.5: inside a pretrained ResNet that halves every residual
branch at the first step and undoes what the weights knew. So the gates here are 2*sigmoid(z)
over a zero-initialised last layer: 1 at the start, still free to range over (0, 2).

The constructors import torch only when called: the CLI lists `ATTENTION.names()` in its help
text, and `ens blend`/`ens leaderboard` never import torch.
"""

from __future__ import annotations

from ensemble.registry import Registry

ATTENTION: Registry = Registry("attention block")


def doubled_sigmoid_gate():
    """The gate class: 2*sigmoid(z), so that z = 0 passes its input through unchanged."""
    from ensemble.nets.attention_layers import DoubledSigmoid

    return DoubledSigmoid


def start_as_identity(block):
    """Set the tensors a block names in `ens_identity_start` (name -> value), in place; returns the block.

    Called when a block is built, and again by nets/networks.py after a timm model has re-initialised
    every convolution in its blocks (timm's ResNet does), which would undo it.
    """
    import torch

    with torch.no_grad():
        for name, value in block.ens_identity_start.items():
            block.get_parameter(name).fill_(value)
    return block


def _added(block, identity_start: dict[str, float]):
    """Tag a block as ens's own (nets/networks.py keeps it trainable, nets/weights.py lets it be missing) and start it as the identity."""
    block.ens_added = True
    block.ens_identity_start = identity_start
    return start_as_identity(block)


@ATTENTION.register("none")
def no_attention(channels: int, rd_ratio: float = 1 / 16, act_layer=None, gate_layer=None):
    """No block: the backbone's features pass through (no parameters)."""
    from torch import nn

    return nn.Identity()


@ATTENTION.register("se")
def squeeze_excite(channels: int, rd_ratio: float = 1 / 16, act_layer=None, gate_layer=None):
    from timm.layers import SEModule
    from torch import nn

    block = SEModule(channels, rd_ratio=rd_ratio, act_layer=act_layer or nn.ReLU, gate_layer=gate_layer or doubled_sigmoid_gate())
    return _added(block, {"fc2.weight": 0.0, "fc2.bias": 0.0})


@ATTENTION.register("eca")
def efficient_channel(channels: int, rd_ratio: float = 1 / 16, act_layer=None, gate_layer=None):
    """rd_ratio and act_layer do not apply (ECA has no bottleneck); accepted for the common signature."""
    from timm.layers import EcaModule

    return _added(EcaModule(channels, gate_layer=gate_layer or doubled_sigmoid_gate()), {"conv.weight": 0.0})


@ATTENTION.register("cbam")
def cbam(channels: int, rd_ratio: float = 1 / 16, act_layer=None, gate_layer=None):
    from timm.layers.cbam import CbamModule
    from torch import nn

    block = CbamModule(channels, rd_ratio=rd_ratio, act_layer=act_layer or nn.ReLU, gate_layer=gate_layer or doubled_sigmoid_gate())
    # The spatial map goes through conv + BatchNorm; a zero BatchNorm output makes its gate 1.
    return _added(block, {"channel.fc2.weight": 0.0, "spatial.conv.bn.weight": 0.0, "spatial.conv.bn.bias": 0.0})


@ATTENTION.register("residual")
def residual(channels: int, rd_ratio: float = 1 / 4, act_layer=None, gate_layer=None):
    from torch import nn

    from ensemble.nets.attention_layers import MASK_START, ResidualAttention

    block = ResidualAttention(channels, rd_ratio=rd_ratio, act_layer=act_layer or nn.ReLU, gate_layer=gate_layer or nn.Sigmoid)
    # Each residual unit's last BatchNorm at zero: the units start as the identity; the mask near 0.
    units = {f"{unit}.branch.7.weight": 0.0 for unit in ("trunk", "mask_down", "mask_up")}
    return _added(block, {**units, "mask_out.5.weight": 0.0, "mask_out.5.bias": MASK_START})
