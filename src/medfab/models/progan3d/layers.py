"""The layers of Progressive GAN (Karras et al. 2018, "Progressive Growing of GANs", §4), for 2D and 3D.

- Equalised learning rate (§4.1): weights are drawn from N(0, 1) and scaled at run time by He's constant
  ``c = gain / sqrt(fan_in)``, so Adam's per-parameter step moves every layer at the same relative speed.
- Pixel-wise feature vector normalisation (§4.2, eq. 2): ``b = a / sqrt(mean_j a_j^2 + eps)`` over channels.
- Minibatch standard deviation (§3): the std of each feature over a group of samples, averaged into one
  scalar per group and appended as an extra feature map, so D can see a lack of variety (mode collapse).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class EqualizedConv(nn.Module):
    """Conv (``spatial_dims`` = 2 or 3), stride 1, 'same' padding, with the run-time weight scale of §4.1."""

    def __init__(self, spatial_dims: int, c_in: int, c_out: int, kernel_size: int, *, gain: float = math.sqrt(2)):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        self.spatial_dims, self.padding = spatial_dims, kernel_size // 2
        self.weight = nn.Parameter(torch.randn(c_out, c_in, *(kernel_size,) * spatial_dims))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = gain / math.sqrt(c_in * kernel_size**spatial_dims)     # He's constant: gain / sqrt(fan_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = F.conv2d if self.spatial_dims == 2 else F.conv3d
        return conv(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    """Fully connected layer with the run-time weight scale of §4.1."""

    def __init__(self, c_in: int, c_out: int, *, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = gain / math.sqrt(c_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Eq. 2 of §4.2: each position's feature vector divided by its RMS over channels (dim 1)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def group_size(batch: int, wanted: int) -> int:
    """The largest group size <= ``wanted`` that divides ``batch`` (Karras requires divisibility)."""
    return max(g for g in range(1, min(wanted, batch) + 1) if batch % g == 0)


def minibatch_stddev(x: torch.Tensor, group: int = 4, eps: float = 1e-8) -> torch.Tensor:
    """(B, C, *S) -> (B, C + 1, *S): append the mean std over a group of ``group`` samples (§3).

    As the reference implementation: sample ``i`` is in group ``i % (B / G)``; per group, the std of every
    feature and position over its G members, averaged over features and positions, is one scalar.
    """
    b = x.shape[0]
    g = group_size(b, group)
    y = x.reshape(g, b // g, *x.shape[1:]).float()                # (G, M, C, *S)
    y = y - y.mean(dim=0)
    std = (y.pow(2).mean(dim=0) + eps).sqrt()                     # (M, C, *S)
    s = std.flatten(1).mean(dim=1).to(x.dtype)                    # (M,)
    s = s.view(-1, 1, *(1,) * (x.dim() - 2)).repeat(g, 1, *x.shape[2:])   # (B, 1, *S)
    return torch.cat([x, s], dim=1)


def downsample(x: torch.Tensor) -> torch.Tensor:
    """Halve every spatial side by 2^d box averaging (ProGAN's ``downscale``)."""
    return F.avg_pool2d(x, 2) if x.dim() == 4 else F.avg_pool3d(x, 2)


def upsample(x: torch.Tensor) -> torch.Tensor:
    """Double every spatial side by nearest-neighbour repetition (ProGAN's ``upscale``)."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


def resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Box-downsample (or nearest-upsample) a cube/square batch to side ``size`` by powers of two."""
    while x.shape[-1] > size:
        x = downsample(x)
    while x.shape[-1] < size:
        x = upsample(x)
    return x
