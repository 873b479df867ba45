"""The denoiser network F_theta of the diffusion models: a compact class-conditional U-Net for 2D and 3D.

A DDPM++/ADM-style U-Net (Song et al. 2021; Dhariwal & Nichol 2021) cut down to what 64^2 medical slices
need on a CPU: residual blocks (GroupNorm -> SiLU -> conv, twice), one embedding of the noise level and the
class added into every block, self-attention only at the coarsest resolutions, skip connections from every
encoder block to the decoder. Every layer takes ``spatial_dims``, so slices (B, C, H, W) and volumes
(B, C, D, H, W) share this one code path.

The network only sees the preconditioned input c_in * x and c_noise (``edm.py``); it knows nothing of sigma.
Class ``num_classes`` is the *null* class of classifier-free guidance (Ho & Salimans 2022).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medfab.models import blocks


def _zero(module: nn.Module) -> nn.Module:
    """Zero-initialised last layer of a residual branch: every block starts as the identity (ADM, §3)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class FourierEmbedding(nn.Module):
    """c_noise (B,) -> (B, dim): [cos 2 pi f c, sin 2 pi f c] with fixed random f ~ N(0, scale^2) (NCSN++).

    Random Fourier features resolve c_noise = ln(sigma) / 4 in [-1.6, 1.1] finely; positional (transformer)
    frequencies would barely change over that short range.
    """

    def __init__(self, dim: int, scale: float = 16.0):
        super().__init__()
        self.register_buffer("freqs", torch.randn(dim // 2) * scale)

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        h = c_noise.float()[:, None] * (2 * math.pi * self.freqs)[None]       # (B, dim/2)
        return torch.cat([h.cos(), h.sin()], dim=1)


class ResBlock(nn.Module):
    """x + conv(SiLU(GN(conv(SiLU(GN(x))) + W emb))) with a 1x1 skip when the width changes; then, optionally,
    self-attention."""

    def __init__(self, spatial_dims: int, c_in: int, c_out: int, emb_dim: int, dropout: float,
                 attention: bool = False):
        super().__init__()
        self.norm1 = blocks.norm("group", spatial_dims, c_in)
        self.conv1 = blocks.conv(spatial_dims, c_in, c_out, 3, 1, 1)
        self.emb = nn.Linear(emb_dim, c_out) if emb_dim else None         # emb_dim = 0: no conditioning
        self.norm2 = blocks.norm("group", spatial_dims, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(blocks.conv(spatial_dims, c_out, c_out, 3, 1, 1))
        self.skip = blocks.conv(spatial_dims, c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.attn = Attention(spatial_dims, c_out) if attention else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.emb is not None:
            h = h + self.emb(emb).view(*emb.shape[:1], -1, *(1,) * (x.dim() - 2))    # (B, c_out, 1, 1[, 1])
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.attn(self.skip(x) + h)


class Attention(nn.Module):
    """Multi-head self-attention over all positions of a (coarse) feature map, as a residual branch."""

    def __init__(self, spatial_dims: int, channels: int, head_dim: int = 32):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = blocks.norm("group", spatial_dims, channels)
        self.qkv = blocks.conv(spatial_dims, channels, 3 * channels, 1)
        self.proj = _zero(blocks.conv(spatial_dims, channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, *spatial = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, -1).unbind(1)
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(h.transpose(-1, -2).reshape(B, C, *spatial))     # h: (B, heads, N, C/heads)


class Downsample(nn.Module):
    def __init__(self, spatial_dims: int, channels: int):
        super().__init__()
        self.conv = blocks.conv(spatial_dims, channels, channels, 3, 2, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then conv 3x3: no checkerboard (Odena et al. 2016), unlike a transposed conv."""

    def __init__(self, spatial_dims: int, channels: int):
        super().__init__()
        self.conv = blocks.conv(spatial_dims, channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UNet(nn.Module):
    """F_theta(c_in x, c_noise, y): (B, C, S, S[, S]) -> (B, C_out, S, S[, S]).

    ``mults`` gives the width of each resolution level (x ``base``), finest first; ``attn_resolutions`` the
    sides (e.g. 8 for 8x8) whose blocks get self-attention; ``num_res`` residual blocks per level.
    """

    def __init__(self, *, spatial_dims: int, in_channels: int, out_channels: int, num_classes: int,
                 image_size: int, base: int = 32, mults: Sequence[int] = (1, 2, 2, 4), num_res: int = 1,
                 attn_resolutions: Sequence[int] = (8,), dropout: float = 0.1, aug_dim: int = 0):
        super().__init__()
        if image_size % 2 ** (len(mults) - 1):
            raise ValueError(f"image_size {image_size} is not divisible by 2^{len(mults) - 1} "
                             f"(one halving per level of mults={tuple(mults)})")
        sd, emb_dim = spatial_dims, 4 * base
        self.num_classes = num_classes
        self.noise_embed = nn.Sequential(FourierEmbedding(base), nn.Linear(base, emb_dim), nn.SiLU(),
                                         nn.Linear(emb_dim, emb_dim))
        self.class_embed = nn.Embedding(num_classes + 1, emb_dim)              # + 1: the null class
        self.aug_embed = nn.Linear(aug_dim, emb_dim, bias=False) if aug_dim else None   # augment.py labels
        self.conv_in = blocks.conv(sd, in_channels, base, 3, 1, 1)

        self.down = nn.ModuleList()
        skips, c, res = [base], base, image_size                             # widths of the skip tensors
        for level, m in enumerate(mults):
            for _ in range(num_res):
                self.down.append(ResBlock(sd, c, base * m, emb_dim, dropout, res in attn_resolutions))
                c = base * m
                skips.append(c)
            if level < len(mults) - 1:
                self.down.append(Downsample(sd, c))
                skips.append(c)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(sd, c, c, emb_dim, dropout, attention=True),
                                  ResBlock(sd, c, c, emb_dim, dropout)])
        self.up = nn.ModuleList()
        for level, m in reversed(list(enumerate(mults))):
            for _ in range(num_res + 1):
                attn = res in attn_resolutions
                self.up.append(ResBlock(sd, c + skips.pop(), base * m, emb_dim, dropout, attn))
                c = base * m
            if level > 0:
                self.up.append(Upsample(sd, c))
                res *= 2
        self.norm_out = blocks.norm("group", sd, c)
        self.conv_out = _zero(blocks.conv(sd, c, out_channels, 3, 1, 1))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, y: torch.Tensor,
                aug: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.noise_embed(c_noise) + self.class_embed(y)                  # (B, emb_dim)
        if self.aug_embed is not None and aug is not None:                     # None at sampling: not augmented
            emb = emb + self.aug_embed(aug)
        emb = F.silu(emb)
        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = layer(h, emb)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = torch.cat([h, hs.pop()], dim=1)
            h = layer(h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))
