"""Conditional VAE (Kingma & Welling 2014; Sohn et al. 2015): q(z | x, y) and p(x | z, y).

The encoder sees the image with the label as constant one-hot planes; the decoder gets ``cat(z, embed(y))``.
Loss (negative ELBO per image, summed over pixels, averaged over the batch):
``recon + beta_t * KL(q(z|x,y) || N(0, I))`` with ``beta_t = beta * min(1, images seen / (1000 kl_warmup_kimg))``
(KL warm-up avoids posterior collapse early on). ``recon`` is either
- ``"l1"``: sum |x - x_hat|, the Laplace negative log-likelihood with unit scale up to a constant (sharper
  than Gaussian/MSE on edges), or
- ``"gaussian"``: Gaussian NLL with one learnt global variance, so the recon/KL balance is learnt, not tuned.
GroupNorm everywhere: encode/reconstruct give the same result in train and eval mode and for a batch of one,
which the anomaly detector relies on.
"""

from __future__ import annotations

import itertools
import math
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from medfab.models import blocks
from medfab.models.base import GenerativeModel, ModelConfig, Phase, StepContext
from medfab.models.ema import make_ema
from medfab.models.optim import adam


class Encoder(nn.Module):
    """(x (B, C, S, S[, S]), y (B,)) -> (mu, logvar), each (B, latent_dim)."""

    def __init__(self, *, channels: int, num_classes: int, latent_dim: int, width: int, image_size: int,
                 spatial_dims: int, max_channels: int = 256):
        super().__init__()
        n = blocks.check_image_size(image_size) - 2
        ch = blocks.pyramid_channels(width, n, max_channels)
        c_in = [channels + num_classes] + ch[:-1]
        self.num_classes = num_classes
        downs = [blocks.Down(spatial_dims, a, b, norm_kind="group") for a, b in zip(c_in, ch)]
        self.trunk = nn.Sequential(*downs)
        self.head = nn.Linear(ch[-1] * 4**spatial_dims, 2 * latent_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(torch.cat([x, blocks.class_planes(y, self.num_classes, x)], 1))   # (B, F, 4, 4[, 4])
        mu, logvar = self.head(h.flatten(1)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)   # keeps exp(logvar) finite in float32


class Decoder(nn.Module):
    """(z (B, latent_dim), y (B,)) -> x_hat (B, C, S, S[, S]) in [-1, 1]."""

    def __init__(self, *, channels: int, num_classes: int, latent_dim: int, embed_dim: int, width: int,
                 image_size: int, spatial_dims: int, max_channels: int = 256):
        super().__init__()
        n = blocks.check_image_size(image_size) - 2
        ch = blocks.pyramid_channels(width, n, max_channels)[::-1]       # coarsest first
        self.seed_shape = (ch[0],) + (4,) * spatial_dims
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.fc = nn.Linear(latent_dim + embed_dim, ch[0] * 4**spatial_dims)
        ups = [blocks.Up(spatial_dims, a, b, norm_kind="group") for a, b in itertools.pairwise(ch)]
        self.body = nn.Sequential(nn.ReLU(inplace=True), *ups,
                                  blocks.conv_transpose(spatial_dims, ch[-1], channels, 4, 2, 1), nn.Tanh())
        # log sigma^2 of the Gaussian likelihood (used only with recon="gaussian"); starts at sigma = 0.1
        self.log_var_x = nn.Parameter(torch.tensor(math.log(0.01)))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, self.embed(y)], 1)).view(-1, *self.seed_shape)   # (B, F, 4, 4[, 4])
        return self.body(h)


class VAEConfig(ModelConfig):
    lr: float = Field(1e-3, gt=0)
    latent_dim: int = Field(128, ge=1)
    embed_dim: int = Field(32, ge=1)
    width: int = Field(32, ge=4)
    max_channels: int = Field(256, ge=8)
    beta: float = Field(1.0, ge=0)
    kl_warmup_kimg: float = Field(16.0, ge=0)     # beta ramps linearly from 0 over this many images seen (x1000)
    recon: Literal["l1", "gaussian"] = "l1"
    ema: bool = False                             # a VAE trains stably; EMA would decouple decode from encode
    ema_decay: float = Field(0.999, ge=0, lt=1)
    temperature: float = Field(1.0, gt=0)         # prior std at sampling; < 1 trades variety for sharpness
    legacy_steps: ClassVar[dict[str, str]] = {"kl_warmup_steps": "kl_warmup_kimg"}


class ConditionalVAE(GenerativeModel):
    Config = VAEConfig
    ddp_modules = ("E", "G")
    ema_pairs: ClassVar[dict[str, str]] = {"G_ema": "G"}   # only when config.ema (G_ema is None otherwise)
    config: VAEConfig

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        c = config
        common = {"channels": c.channels, "num_classes": c.num_classes, "latent_dim": c.latent_dim,
                  "width": c.width, "image_size": c.image_size, "spatial_dims": c.spatial_dims,
                  "max_channels": c.max_channels}
        self.E = Encoder(**common)
        self.G = Decoder(embed_dim=c.embed_dim, **common)
        self.G_ema = make_ema(self.G) if c.ema else None

    # --- the API the anomaly detector reuses -------------------------------------------------------
    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior q(z | x, y): (mu, logvar), each (B, latent_dim)."""
        blocks.check_labels(y, self.config.num_classes)
        return blocks.unwrap(self.E)(x, y)

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean image of p(x | z, y): (B, C, S, S[, S]) in [-1, 1]."""
        blocks.check_labels(y, self.config.num_classes)
        return (self.G_ema if self.config.ema else blocks.unwrap(self.G))(z, y)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction decode(mu(x, y), y)."""
        mu, _ = self.encode(x, y)
        return self.decode(mu, y)

    # --- training and sampling ----------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        params = list(self.E.parameters()) + list(self.G.parameters())
        return {"VAE": adam(params, lr=self.config.lr)}

    def beta_at(self, nimg: int) -> float:
        """beta after ``nimg`` images seen, this step's batch included (a pure function of images seen, so the
        schedule does not change with the batch size or the number of processes)."""
        c = self.config
        return c.beta if c.kl_warmup_kimg == 0 else c.beta * min(1.0, nimg / (1000 * c.kl_warmup_kimg))

    def loss_terms(self, x: torch.Tensor, x_hat: torch.Tensor, mu: torch.Tensor,
                   logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(recon, kl) per image averaged over the batch, both in nats summed over pixels / latents."""
        diff = (x - x_hat).flatten(1)
        if self.config.recon == "l1":
            recon = diff.abs().sum(1).mean()
        else:
            lv = blocks.unwrap(self.G).log_var_x
            recon = (0.5 * (diff.pow(2) * torch.exp(-lv) + lv + math.log(2 * math.pi))).sum(1).mean()
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(1).mean()   # Kingma & Welling, App. B
        return recon, kl

    def phases(self) -> list[Phase]:
        return [Phase("elbo", "VAE")]

    def phase_loss(self, phase: str, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        mu, logvar = self.E(x, y)
        mu, logvar = mu.float(), logvar.float()
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)          # reparameterisation trick
        x_hat = self.G(z, y)
        recon, kl = self.loss_terms(x, x_hat.float(), mu, logvar)
        beta = self.beta_at(ctx.nimg + ctx.batch_size)
        loss = recon + beta * kl
        return {"loss": loss, "recon": recon.detach(), "kl": kl.detach(), "beta": beta}     # logged as loss_elbo, ...

    @torch.no_grad()
    def generate(self, y: torch.Tensor, generator: torch.Generator | None = None, **sampler) -> torch.Tensor:
        self.sampler_settings(**sampler)                   # no sampler settings: rejects any
        device = next(self.parameters()).device
        z = blocks.randn((len(y), self.config.latent_dim), generator, device) * self.config.temperature
        return self.decode(z, y.to(device)).float().clamp(-1, 1)
