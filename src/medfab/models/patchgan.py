"""The pix2pix PatchGAN discriminator (Isola et al. 2017, §3.2.2), for 2D and 3D.

Same layers as junyanz ``NLayerDiscriminator``: ``n_layers`` stride-2 convs, one stride-1 conv, then a
1-channel conv; every output logit judges one receptive-field patch (70x70 for n_layers=3).
"""

from __future__ import annotations

import torch
from torch import nn

from medfab.models import blocks


class PatchGAN(nn.Module):
    """(B, c_in, S, S[, S]) -> patch logits (B, 1, s, s[, s])."""

    def __init__(self, spatial_dims: int, c_in: int, *, width: int = 64, n_layers: int = 3,
                 norm: str = "batch", sn: bool = False):
        super().__init__()
        bias = norm != "batch"
        layers: list[nn.Module] = [blocks.conv(spatial_dims, c_in, width, 4, 2, 1, sn=sn),
                                   nn.LeakyReLU(0.2, inplace=True)]
        c = width
        for k in range(1, n_layers + 1):
            c_next = width * min(2**k, 8)
            stride = 2 if k < n_layers else 1
            layers += [blocks.conv(spatial_dims, c, c_next, 4, stride, 1, bias=bias, sn=sn),
                       blocks.norm(norm, spatial_dims, c_next), nn.LeakyReLU(0.2, inplace=True)]
            c = c_next
        layers.append(blocks.conv(spatial_dims, c, 1, 4, 1, 1, sn=sn))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
