"""The attention layers timm does not have: the residual attention module and the identity-start gate.

Residual attention (Wang et al., 2017, "Residual Attention Network for Image Classification",
arXiv:1704.06904): a trunk branch T(x) of residual units, and a mask branch that pools down
and interpolates back up (bottom-up top-down, here one level) to a sigmoid mask M(x) of the
same shape; the output is (1 + M) * T. A mask near zero passes the trunk through, so a bad
mask cannot erase features, which is why the paper can stack many of these modules. The
paper's gains come from stacking them through a network built around them; one module on a
pretrained backbone's last feature map is a much smaller change, and on our small benchmarks
it did not beat the plain head (docs/training.md#attention-and-pretrained-weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import make_divisible
from torch import nn

# The mask's last bias: sigmoid(-6) = 0.0025, so the module starts within 0.25 % of the identity.
MASK_START = -6.0


class DoubledSigmoid(nn.Module):
    """2*sigmoid(z): 1 at z = 0, so a gate over a zero-initialised layer starts as the identity."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * torch.sigmoid(x)


class ResidualUnit(nn.Module):
    """x + bottleneck(x); attention.py starts its last BatchNorm at zero, so the unit starts as the identity."""

    def __init__(self, channels: int, mid_channels: int, act_layer: type[nn.Module]):
        super().__init__()
        self.branch = nn.Sequential(
            nn.Conv2d(channels, mid_channels, 1, bias=False),
            nn.BatchNorm2d(mid_channels),
            act_layer(),
            nn.Conv2d(mid_channels, mid_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            act_layer(),
            nn.Conv2d(mid_channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class ResidualAttention(nn.Module):
    """(n, channels, h, w) -> same shape: (1 + M(x)) * T(x).

    rd_ratio sets the bottleneck width of the residual units and the mask's 1x1 convolutions.
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1 / 4,
        act_layer: type[nn.Module] = nn.ReLU,
        gate_layer: type[nn.Module] = nn.Sigmoid,
    ):
        super().__init__()
        mid_channels = make_divisible(channels * rd_ratio, 8, round_limit=0.0)
        self.trunk = ResidualUnit(channels, mid_channels, act_layer)
        self.mask_down = ResidualUnit(channels, mid_channels, act_layer)
        self.mask_up = ResidualUnit(channels, mid_channels, act_layer)
        self.mask_out = nn.Sequential(
            nn.BatchNorm2d(channels),
            act_layer(),
            nn.Conv2d(channels, mid_channels, 1),
            nn.BatchNorm2d(mid_channels),
            act_layer(),
            nn.Conv2d(mid_channels, channels, 1),
        )
        self.gate = gate_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        trunk = self.trunk(x)
        # Bottom-up: pool to half size (a 1x1 map stays 1x1); top-down: back to the input's size.
        mask = self.mask_down(F.max_pool2d(x, kernel_size=3, stride=2, padding=1))
        mask = F.interpolate(self.mask_up(mask), size=x.shape[-2:], mode="bilinear", align_corners=False)
        # The skip from the input keeps full-resolution detail in the mask, as the paper's skips do.
        mask = self.gate(self.mask_out(mask + x))
        return (1 + mask) * trunk

