"""Progressive GAN generator and discriminator (Karras et al. 2018, Table 2), grown from 4^d to ``image_size``^d.

Both networks hold every level's block from the start; ``forward(..., level, alpha)`` uses levels 0..level
and blends the newest one in (§3, Fig. 2): G returns ``lerp(upsample(toRGB_{L-1}(h_{L-1})), toRGB_L(h_L),
alpha)``; D starts from ``lerp(fromRGB_{L-1}(downsample(x)), block_L(fromRGB_L(x)), alpha)``. Blocks can be
run under ``torch.utils.checkpoint`` (activations recomputed in backward) to trade compute for memory, which
is what 64^3 and 128^3 volumes need. Written once for 2D and 3D (``spatial_dims``).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from medfab.models.progan3d.layers import (
    EqualizedConv,
    EqualizedLinear,
    downsample,
    minibatch_stddev,
    pixel_norm,
    upsample,
)


def level_channels(start_size: int, final_size: int, fmap_base: int, fmap_max: int) -> list[int]:
    """Feature maps per level: ``min(fmap_max, fmap_base / resolution)`` (Karras's ``nf``), at least 4."""
    n = round(math.log2(final_size / start_size)) + 1
    return [max(4, min(fmap_max, fmap_base // (start_size * 2**i))) for i in range(n)]


def _act(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.leaky_relu(x, 0.2)


class _GBlock(nn.Module):
    """(upsample ->) conv3 -> LReLU -> PN -> conv3 -> LReLU -> PN."""

    def __init__(self, spatial_dims: int, c_in: int, c_out: int, *, up: bool):
        super().__init__()
        self.up = up
        self.conv0 = EqualizedConv(spatial_dims, c_in, c_out, 3)
        self.conv1 = EqualizedConv(spatial_dims, c_out, c_out, 3)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.up:
            h = upsample(h)
        h = pixel_norm(_act(self.conv0(h)))
        return pixel_norm(_act(self.conv1(h)))


class Generator(nn.Module):
    """(z (B, z_dim), y (B,)) -> (B, C, R, R[, R]) at the stage's resolution R; linear output (no tanh)."""

    def __init__(self, *, z_dim: int, num_classes: int, channels: int, spatial_dims: int, widths: list[int],
                 start_size: int, grad_checkpoint: bool = False):
        super().__init__()
        self.z_dim, self.num_classes, self.spatial_dims = z_dim, num_classes, spatial_dims
        self.start_size, self.grad_checkpoint = start_size, grad_checkpoint
        cond = num_classes if num_classes > 1 else 0          # one class: unconditional, as for healthy brains
        # Level 0: the latent (PN'd, §4.2) -> dense to a start_size^d map -> conv3 (Table 2's first block).
        self.dense = EqualizedLinear(z_dim + cond, widths[0] * start_size**spatial_dims,
                                     gain=math.sqrt(2) / start_size ** (spatial_dims / 2))
        self.conv0 = EqualizedConv(spatial_dims, widths[0], widths[0], 3)
        self.blocks = nn.ModuleList(_GBlock(spatial_dims, a, b, up=True) for a, b in itertools.pairwise(widths))
        self.to_rgb = nn.ModuleList(EqualizedConv(spatial_dims, w, channels, 1, gain=1.0) for w in widths)

    def _run(self, block: nn.Module, h: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpoint and torch.is_grad_enabled() and h.requires_grad:
            return checkpoint(block, h, use_reentrant=False)
        return block(h)

    def forward(self, z: torch.Tensor, y: torch.Tensor, level: int, alpha: float) -> torch.Tensor:
        z = pixel_norm(z)
        if self.num_classes > 1:
            z = torch.cat([z, nn.functional.one_hot(y, self.num_classes).to(z.dtype)], dim=1)
        h = self.dense(z).view(-1, self.to_rgb[0].weight.shape[1], *(self.start_size,) * self.spatial_dims)
        h = pixel_norm(_act(h))
        h = pixel_norm(_act(self.conv0(h)))                                    # (B, F0, 4, 4[, 4])
        prev = h
        for block in self.blocks[:level]:
            prev, h = h, self._run(block, h)
        out = self.to_rgb[level](h)                                            # (B, C, R, R[, R])
        if level > 0 and alpha < 1.0:
            out = torch.lerp(upsample(self.to_rgb[level - 1](prev)), out, alpha)
        return out


class _DBlock(nn.Module):
    """conv3 -> LReLU -> conv3 -> LReLU -> downsample (Table 2)."""

    def __init__(self, spatial_dims: int, c_in: int, c_out: int):
        super().__init__()
        self.conv0 = EqualizedConv(spatial_dims, c_in, c_in, 3)
        self.conv1 = EqualizedConv(spatial_dims, c_in, c_out, 3)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return downsample(_act(self.conv1(_act(self.conv0(h)))))


class Discriminator(nn.Module):
    """(x (B, C, R, R[, R]), y (B,)) -> critic scores (B,); projection term (Miyato 2018) when conditional."""

    def __init__(self, *, num_classes: int, channels: int, spatial_dims: int, widths: list[int], start_size: int,
                 mbstd_group: int = 4, grad_checkpoint: bool = False):
        super().__init__()
        self.num_classes, self.mbstd_group, self.grad_checkpoint = num_classes, mbstd_group, grad_checkpoint
        self.from_rgb = nn.ModuleList(EqualizedConv(spatial_dims, channels, w, 1) for w in widths)
        self.blocks = nn.ModuleList(_DBlock(spatial_dims, b, a) for a, b in itertools.pairwise(widths))
        self.conv = EqualizedConv(spatial_dims, widths[0] + 1, widths[0], 3)   # + 1: the minibatch-std map
        self.dense = EqualizedLinear(widths[0] * start_size**spatial_dims, widths[0])
        self.out = EqualizedLinear(widths[0], 1, gain=1.0)
        self.embed = nn.Embedding(num_classes, widths[0]) if num_classes > 1 else None

    def _run(self, block: nn.Module, h: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpoint and torch.is_grad_enabled() and h.requires_grad:
            return checkpoint(block, h, use_reentrant=False)
        return block(h)

    def forward(self, x: torch.Tensor, y: torch.Tensor, level: int, alpha: float, chunks: int = 1) -> torch.Tensor:
        """``chunks``: x is that many equal batches side by side (real | fake | ...); the minibatch std is
        taken within each, so one call scores them all as separate calls would."""
        h = _act(self.from_rgb[level](x))
        if level > 0:
            h = self._run(self.blocks[level - 1], h)
            if alpha < 1.0:
                h = torch.lerp(_act(self.from_rgb[level - 1](downsample(x))), h, alpha)
            for block in reversed(self.blocks[:level - 1]):
                h = self._run(block, h)                                        # ... -> (B, F0, 4, 4[, 4])
        h = torch.cat([minibatch_stddev(part, self.mbstd_group) for part in h.chunk(chunks)])
        h = _act(self.conv(h))
        h = _act(self.dense(h.flatten(1)))                                     # (B, F0)
        score = self.out(h).squeeze(1)                                         # (B,)
        if self.embed is not None:
            score = score + (self.embed(y) * h).sum(dim=1)
        return score
