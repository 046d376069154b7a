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

The constructors import torch only when called: cli.py lists `ATTENTION.names()` in its help
text, and `ens blend`/`ens leaderboard` never import torch.
"""

from __future__ import annotations

from ensemble.registry import Registry

ATTENTION: Registry = Registry("attention block")


def doubled_sigmoid_gate():
    """The gate class: 2*sigmoid(z), so that z = 0 passes its input through unchanged."""
    from ensemble.attention_layers import DoubledSigmoid

    return DoubledSigmoid


def _mark_added(module):
    """Tag a block as ens's own, so nets.py keeps it trainable and weights.py lets it be missing."""
    module.ens_added = True
    return module


@ATTENTION.register("none")
def no_attention(channels: int, rd_ratio: float = 1 / 16, act_layer=None, gate_layer=None):
    """No block: the backbone's features pass through (no parameters)."""
    from torch import nn

    return nn.Identity()


@ATTENTION.register("se")
def squeeze_excite(channels: int, rd_ratio: float = 1 / 16, act_layer=None, gate_layer=None):
    from torch import nn
    from timm.layers import SEModule

    block = SEModule(channels, rd_ratio=rd_ratio, act_layer=act_layer or nn.ReLU, gate_layer=gate_layer or doubled_sigmoid_gate())
    nn.init.zeros_(block.fc2.weight)
    nn.init.zeros_(block.fc2.bias)
    return _mark_added(block)


@ATTENTION.register("eca")
def efficient_channel(channels: int, rd_ratio: float = 1 / 16, act_layer=None, gate_layer=None):
    """rd_ratio and act_layer do not apply (ECA has no bottleneck); accepted for the common signature."""
    from torch import nn
    from timm.layers import EcaModule

    block = EcaModule(channels, gate_layer=gate_layer or doubled_sigmoid_gate())
    nn.init.zeros_(block.conv.weight)
    return _mark_added(block)


@ATTENTION.register("cbam")
def cbam(channels: int, rd_ratio: float = 1 / 16, act_layer=None, gate_layer=None):
    from torch import nn
    from timm.layers.cbam import CbamModule

    block = CbamModule(channels, rd_ratio=rd_ratio, act_layer=act_layer or nn.ReLU, gate_layer=gate_layer or doubled_sigmoid_gate())
    nn.init.zeros_(block.channel.fc2.weight)
    # The spatial map goes through conv + BatchNorm; a zero BatchNorm output makes its gate 1.
    nn.init.zeros_(block.spatial.conv.bn.weight)
    nn.init.zeros_(block.spatial.conv.bn.bias)
    return _mark_added(block)


@ATTENTION.register("residual")
def residual(channels: int, rd_ratio: float = 1 / 4, act_layer=None, gate_layer=None):
    from torch import nn

    from ensemble.attention_layers import ResidualAttention

    return _mark_added(ResidualAttention(channels, rd_ratio=rd_ratio, act_layer=act_layer or nn.ReLU, gate_layer=gate_layer or nn.Sigmoid))
