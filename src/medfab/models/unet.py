"""The pix2pix U-Net generator (Isola et al. 2017, §3.2.1 and App. 6.1.1), for 2D and 3D.

Same layers as junyanz/pytorch-CycleGAN-and-pix2pix ``UnetGenerator``, written as a loop instead of nested
blocks: ``num_downs`` stride-2 convs take the input down to 1x1, the decoder mirrors them, and the decoder
at each level sees ``cat(encoder features, upsampled features)``.
"""

from __future__ import annotations

import torch
from torch import nn

from medfab.models import blocks


class UNet(nn.Module):
    """(B, c_in, S, S[, S]) -> (B, c_out, S, S[, S]) in [-1, 1], S = 2**num_downs."""

    def __init__(self, spatial_dims: int, c_in: int, c_out: int, *, num_downs: int, width: int = 64,
                 max_channels: int = 512, norm: str = "batch", dropout: float = 0.5):
        super().__init__()
        ch = blocks.pyramid_channels(width, num_downs, max_channels)  # w, 2w, 4w, 8w, 8w, ... finest first
        bias = norm != "batch"   # BN's shift makes a conv bias redundant (as in the reference)
        n = num_downs
        self.downs = nn.ModuleList()
        for i in range(n):
            layers: list[nn.Module] = [
                blocks.conv(spatial_dims, c_in if i == 0 else ch[i - 1], ch[i], 4, 2, 1, bias=bias)]
            if 0 < i < n - 1:      # no norm on the raw input nor at the 1x1 bottleneck
                layers.append(blocks.norm(norm, spatial_dims, ch[i]))
            if i < n - 1:          # the skip carries the activated features, as in the reference
                layers.append(nn.LeakyReLU(0.2, inplace=True))
            self.downs.append(nn.Sequential(*layers))
        self.ups = nn.ModuleList()
        for i in range(n):
            c_up_in = ch[i] if i == n - 1 else 2 * ch[i]                 # skip concatenation doubles it
            if i == 0:
                layers = [nn.ReLU(inplace=True), blocks.conv_transpose(spatial_dims, c_up_in, c_out, 4, 2, 1),
                          nn.Tanh()]
            else:
                layers = [nn.ReLU(inplace=True),
                          blocks.conv_transpose(spatial_dims, c_up_in, ch[i - 1], 4, 2, 1, bias=bias),
                          blocks.norm(norm, spatial_dims, ch[i - 1])]
                # the reference's dropout blocks: the 8w-wide levels just above the bottleneck
                if dropout > 0 and 4 <= i <= n - 2:
                    layers.append(nn.Dropout(dropout))
            self.ups.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for down in self.downs:
            h = down(h)
            skips.append(h)                                              # level i: (B, ch[i], S / 2**(i+1))
        h = self.ups[-1](skips[-1])
        for i in range(len(self.ups) - 2, -1, -1):
            h = self.ups[i](torch.cat([skips[i], h], 1))
        return h
