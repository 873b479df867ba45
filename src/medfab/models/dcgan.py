"""Conditional DCGAN: label embedding concatenated to z in G, projection discriminator in D.

Networks follow the PyTorch DCGAN example (Radford et al. 2016): G is a stack of 4x4 transposed convs with
BatchNorm + ReLU from a 4x4 seed to the image, D the mirror image with LeakyReLU. Conditioning:
G gets ``cat(z, embed(y))``; D is a projection discriminator (Miyato & Koyama 2018, eq. 3):
``D(x, y) = psi(phi(x)) + <embed(y), sum_space phi(x)>``.
Small-data tools: DiffAugment on D's input, spectral norm in D, optional R1 penalty, EMA of G.
"""

from __future__ import annotations

import itertools
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from medfab.models import blocks
from medfab.models.base import GenerativeModel, Phase, SmallDataConfig, StepContext
from medfab.models.diffaug import diff_augment, parse_policy
from medfab.models.ema import make_ema
from medfab.models.optim import adam


class DCGenerator(nn.Module):
    """(z (B, z_dim), y (B,)) -> image (B, C, S, S[, S]) in [-1, 1]."""

    def __init__(self, *, z_dim: int, num_classes: int, embed_dim: int, width: int, image_size: int,
                 channels: int, spatial_dims: int, max_channels: int = 512, norm: str = "batch"):
        super().__init__()
        n = blocks.check_image_size(image_size) - 2                       # upsamplings from 4 to image_size
        ch = blocks.pyramid_channels(width, n, max_channels)[::-1]        # coarsest first: 8w, 4w, 2w, w @ 64
        self.spatial_dims = spatial_dims
        self.embed = nn.Embedding(num_classes, embed_dim)
        layers: list[nn.Module] = [
            blocks.conv_transpose(spatial_dims, z_dim + embed_dim, ch[0], 4, 1, 0, bias=norm == "none"),
            blocks.norm(norm, spatial_dims, ch[0]), nn.ReLU(inplace=True)]                 # 1 -> 4
        # 4 -> S/2
        layers += [blocks.Up(spatial_dims, a, b, norm_kind=norm) for a, b in itertools.pairwise(ch)]
        layers += [blocks.conv_transpose(spatial_dims, ch[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.cat([z, self.embed(y)], 1)                              # (B, z_dim + embed_dim)
        return self.net(h.view(*h.shape, *([1] * self.spatial_dims)))    # (B, C, S, S[, S])


class ProjectionDiscriminator(nn.Module):
    """(x (B, C, S, S[, S]), y (B,)) -> logits (B,): DCGAN trunk + class projection on pooled features."""

    def __init__(self, *, num_classes: int, width: int, image_size: int, channels: int, spatial_dims: int,
                 max_channels: int = 512, norm: str = "none", sn: bool = True):
        super().__init__()
        n = blocks.check_image_size(image_size) - 2                       # downsamplings from S to 4
        ch = blocks.pyramid_channels(width, n, max_channels)              # w, 2w, 4w, 8w @ 64
        # The first block has no norm, as in DCGAN: normalising the raw image discards its intensity.
        layers = [blocks.Down(spatial_dims, channels, ch[0], norm_kind="none", sn=sn)]
        layers += [blocks.Down(spatial_dims, a, b, norm_kind=norm, sn=sn) for a, b in itertools.pairwise(ch)]
        self.trunk = nn.Sequential(*layers)                                # (B, ch[-1], 4, 4[, 4])
        self.psi = blocks.conv(spatial_dims, ch[-1], 1, 4, 1, 0, sn=sn)   # the unconditional DCGAN head
        self.embed = nn.Embedding(num_classes, ch[-1])
        if sn:
            self.embed = torch.nn.utils.parametrizations.spectral_norm(self.embed)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)                                                 # (B, F, 4, 4[, 4])
        out = self.psi(h).flatten(1).squeeze(1)                           # (B,)
        return out + (self.embed(y) * h.flatten(2).sum(2)).sum(1)        # + <e_y, sum_space phi(x)>


class GANConfig(SmallDataConfig):
    """Fields shared by the two unconditional-noise GANs (dcgan, wgan-gp)."""

    z_dim: int = Field(128, ge=1)
    embed_dim: int = Field(32, ge=1)             # class embedding concatenated to z
    g_width: int = Field(32, ge=4)               # ngf: G's finest width (the DCGAN example uses 64)
    d_width: int = Field(32, ge=4)               # ndf
    max_channels: int = Field(512, ge=8)


class DCGANConfig(GANConfig):
    loss: Literal["hinge", "ns"] = "hinge"       # hinge (with SN) or non-saturating BCE (the DCGAN paper)
    beta1: float = Field(0.5, ge=0, lt=1)        # Adam betas of the DCGAN paper
    beta2: float = Field(0.999, ge=0, lt=1)
    g_norm: Literal["batch", "instance", "group", "none"] = "batch"
    d_norm: Literal["batch", "instance", "group", "none"] = "none"   # SN replaces BN in D by default
    d_spectral_norm: bool = True                 # Lipschitz-bounds D: the guard against overfitting 52 images
    r1_gamma: float = Field(0.0, ge=0)           # R1 penalty on real images (0 = off; SN is on instead)


class GANBase(GenerativeModel):
    """Sampling, EMA and augmentation shared by DCGAN and WGAN-GP (both: G(z, y), D(x, y))."""

    ddp_modules = ("G", "D")
    ema_pairs: ClassVar[dict[str, str]] = {"G_ema": "G"}   # updated by the loop after each G step
    config: GANConfig

    def __init__(self, config: GANConfig):
        super().__init__(config)
        self.policy = parse_policy(config.diffaug)

    def _make_generator(self) -> DCGenerator:
        c = self.config
        return DCGenerator(z_dim=c.z_dim, num_classes=c.num_classes, embed_dim=c.embed_dim, width=c.g_width,
                           image_size=c.image_size, channels=c.channels, spatial_dims=c.spatial_dims,
                           max_channels=c.max_channels, norm=getattr(c, "g_norm", "batch"))

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.policy)

    def _sample_z(self, b: int, device, generator=None) -> torch.Tensor:
        return blocks.randn((b, self.config.z_dim), generator, device)

    @torch.no_grad()
    def generate(self, y: torch.Tensor, generator: torch.Generator | None = None, **sampler) -> torch.Tensor:
        self.sampler_settings(**sampler)                   # no sampler settings: rejects any
        blocks.check_labels(y, self.config.num_classes)
        net = self.G_ema if self.config.ema else blocks.unwrap(self.G)
        was_training = net.training
        net.eval()
        device = next(net.parameters()).device
        x = net(self._sample_z(len(y), device, generator), y.to(device))   # (B, C, S, S[, S])
        net.train(was_training)
        return x.float().clamp(-1, 1)   # float32 even under autocast


class DCGAN(GANBase):
    Config = DCGANConfig
    config: DCGANConfig

    def __init__(self, config: DCGANConfig):
        super().__init__(config)
        c = config
        self.G = self._make_generator()
        self.D = ProjectionDiscriminator(num_classes=c.num_classes, width=c.d_width, image_size=c.image_size,
                                         channels=c.channels, spatial_dims=c.spatial_dims,
                                         max_channels=c.max_channels, norm=c.d_norm, sn=c.d_spectral_norm)
        self.G_ema = make_ema(self.G) if c.ema else None

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = (self.config.beta1, self.config.beta2)
        return {"G": adam(self.G.parameters(), lr=self.config.lr, betas=betas),
                "D": adam(self.D.parameters(), lr=self.config.lr, betas=betas)}

    def _d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "hinge":
            return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        return F.softplus(-real).mean() + F.softplus(fake).mean()       # BCE(real=1) + BCE(fake=0)

    def phases(self) -> list[Phase]:
        return [Phase("D", "D"), Phase("G", "G")]

    def phase_loss(self, phase: str, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        c, b = self.config, x.shape[0]
        if phase == "D":
            # Logged: loss_D (with r1), d_loss, d_real, d_fake, r1. One G forward serves both phases (as in the
            # DCGAN reference): detached here, attached in phase G.
            fake = ctx.cache["fake"] = self.G(self._sample_z(b, x.device), y)   # (B, C, S, S)
            # Real and fake in one D forward (D has no batch norm by default, so they cannot leak).
            x_real = x.detach().requires_grad_(c.r1_gamma > 0)
            if c.d_norm == "batch":
                logits = torch.cat([self.D(self._augment(x_real), y), self.D(self._augment(fake.detach()), y)])
            else:
                logits = self.D(self._augment(torch.cat([x_real, fake.detach()])), torch.cat([y, y]))   # (2B,)
            logits = logits.float()
            d_loss = self._d_loss(logits[:b], logits[b:])
            out = {"d_loss": d_loss.detach(), "d_real": logits[:b].detach().mean(),
                   "d_fake": logits[b:].detach().mean()}
            if c.r1_gamma > 0:
                # R1 (Mescheder et al. 2018, eq. 9): gamma/2 * E ||grad_x D(x)||^2 on real images
                (g,) = torch.autograd.grad(logits[:b].sum(), x_real, create_graph=True)
                r1 = g.float().pow(2).flatten(1).sum(1).mean() * (c.r1_gamma / 2)
                return {"loss": d_loss + r1, **out, "r1": r1.detach()}
            return {"loss": d_loss, **out}
        fake = ctx.cache.pop("fake", None)
        if fake is None:                          # no shared cache (DDP with gradient accumulation)
            fake = self.G(self._sample_z(b, x.device), y)
        with blocks.frozen(self.D):               # no weight gradients for D in G's backward
            g_logits = self.D(self._augment(fake), y).float()
        g_loss = -g_logits.mean() if c.loss == "hinge" else F.softplus(-g_logits).mean()
        return {"loss": g_loss}                   # logged as loss_G
