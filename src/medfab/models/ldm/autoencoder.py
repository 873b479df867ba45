"""The KL-regularised autoencoder of latent diffusion (Rombach et al. 2022, §3.1 and App. G), 2D and 3D.

E: (B, C, S, S[, S]) -> posterior N(mu, diag exp(logvar)) over latents (B, z, S/f, S/f[, S/f]); G: latents ->
images. f = 2^levels (4 or 8). Trained with L1 reconstruction, a small KL weight (only to keep the latent
space smooth and bounded; "KL-reg." of the paper, weight ~1e-6) and, after a warm-up, a PatchGAN adversarial
loss for sharp texture (``models/patchgan.py``). No pretrained perceptual (LPIPS) network: medfab never
downloads weights at run time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from medfab.models import blocks
from medfab.models.diffusion.unet import Downsample, ResBlock, Upsample


def _widths(width: int, levels: int) -> list[int]:
    """Channels per resolution level, finest first: width, 2 width, 4 width, 4 width, ..."""
    return [width * min(2**i, 4) for i in range(levels + 1)]


class Encoder(nn.Module):
    def __init__(self, *, spatial_dims: int, channels: int, z_channels: int, width: int, levels: int):
        super().__init__()
        sd, ch = spatial_dims, _widths(width, levels)
        layers: list[nn.Module] = [blocks.conv(sd, channels, ch[0], 3, 1, 1)]
        for i in range(levels):
            layers += [ResBlock(sd, ch[i], ch[i + 1], 0, 0.0), Downsample(sd, ch[i + 1])]
        layers += [ResBlock(sd, ch[-1], ch[-1], 0, 0.0), blocks.norm("group", sd, ch[-1]), nn.SiLU(),
                   blocks.conv(sd, ch[-1], 2 * z_channels, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net(x).chunk(2, dim=1)                       # (B, z, S/f, S/f[, S/f]) each
        return mu, logvar.clamp(-30.0, 20.0)


class Decoder(nn.Module):
    def __init__(self, *, spatial_dims: int, channels: int, z_channels: int, width: int, levels: int):
        super().__init__()
        sd, ch = spatial_dims, _widths(width, levels)[::-1]             # coarsest first
        layers: list[nn.Module] = [blocks.conv(sd, z_channels, ch[0], 3, 1, 1),
                                   ResBlock(sd, ch[0], ch[0], 0, 0.0)]
        for i in range(levels):
            layers += [Upsample(sd, ch[i]), ResBlock(sd, ch[i], ch[i + 1], 0, 0.0)]
        layers += [blocks.norm("group", sd, ch[-1]), nn.SiLU(), blocks.conv(sd, ch[-1], channels, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Autoencoder(nn.Module):
    """E and G together (one optimiser, one DDP module)."""

    def __init__(self, *, spatial_dims: int, channels: int, z_channels: int, width: int, factor: int):
        super().__init__()
        levels = round(math.log2(factor))
        if 2**levels != factor:
            raise ValueError(f"factor {factor} is not a power of two")
        kw = {"spatial_dims": spatial_dims, "channels": channels, "z_channels": z_channels, "width": width,
              "levels": levels}
        self.E, self.G = Encoder(**kw), Decoder(**kw)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_hat, mu, logvar): a reconstruction from a posterior sample (reparameterised, global RNG)."""
        mu, logvar = self.E(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.G(z), mu, logvar


def kl_per_pixel(mu: torch.Tensor, logvar: torch.Tensor, pixels: int) -> torch.Tensor:
    """KL(N(mu, exp logvar) || N(0, I)) summed over latents, averaged over the batch, divided by image pixels
    (Kingma & Welling 2014, App. B): with the per-pixel L1, the weights mean what LDM's weights mean."""
    return (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).flatten(1).sum(1).mean() / pixels


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """PatchGAN hinge loss of the discriminator (as taming-transformers / LDM's autoencoder)."""
    return 0.5 * (F.relu(1 - real).mean() + F.relu(1 + fake).mean())
