"""Conditional WGAN-GP (Gulrajani et al. 2017, Algorithm 1) with a projection critic.

G is the DCGAN generator (label embedding concatenated to z). The critic is the projection discriminator
without batch norm (a per-sample gradient penalty is wrong under batch statistics, paper §4) and without
spectral norm (the penalty already enforces the 1-Lipschitz constraint).

Phases: the critic ("D") is updated on every loop step, on that step's batch; the generator ("G") on every
``n_critic``-th step (``Phase(interval=n_critic)``), so the loop's batches feed Algorithm 1's inner critic loop.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from medfab.models import blocks
from medfab.models.base import Phase, StepContext
from medfab.models.dcgan import GANBase, GANConfig, ProjectionDiscriminator
from medfab.models.ema import make_ema
from medfab.models.optim import adam


class WGANGPConfig(GANConfig):
    lr: float = Field(1e-4, gt=0)                   # paper's alpha
    beta1: float = Field(0.0, ge=0, lt=1)           # paper's Adam(0, 0.9)
    beta2: float = Field(0.9, ge=0, lt=1)
    n_critic: int = Field(5, ge=1)
    gp_weight: float = Field(10.0, ge=0)            # lambda
    drift: float = Field(1e-3, ge=0)                # eps * E[D(x)^2] keeps scores near 0 (Karras 2018)
    g_norm: Literal["batch", "instance", "group", "none"] = "batch"
    critic_norm: Literal["instance", "group", "none"] = "none"


class WGANGP(GANBase):
    Config = WGANGPConfig
    config: WGANGPConfig

    def __init__(self, config: WGANGPConfig):
        super().__init__(config)
        c = config
        self.G = self._make_generator()
        self.D = ProjectionDiscriminator(num_classes=c.num_classes, width=c.d_width, image_size=c.image_size,
                                         channels=c.channels, spatial_dims=c.spatial_dims,
                                         max_channels=c.max_channels, norm=c.critic_norm, sn=False)
        self.G_ema = make_ema(self.G) if c.ema else None

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = (self.config.beta1, self.config.beta2)
        return {"G": adam(self.G.parameters(), lr=self.config.lr, betas=betas),
                "D": adam(self.D.parameters(), lr=self.config.lr, betas=betas)}

    def phases(self) -> list[Phase]:
        return [Phase("D", "D"), Phase("G", "G", interval=self.config.n_critic)]

    def phase_loss(self, phase: str, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        c, b = self.config, x.shape[0]
        if phase == "G":
            with blocks.frozen(self.D):
                g_loss = -self.D(self._augment(self.G(self._sample_z(b, x.device), y)), y).float().mean()
            return {"loss": g_loss}                                     # logged as loss_G
        # Critic. Augment first, then interpolate: the penalty is taken where the critic actually looks.
        with torch.no_grad():
            fake = self.G(self._sample_z(b, x.device), y)               # (B, C, S, S)
            both = self._augment(torch.cat([x, fake.to(x.dtype)]))      # (2B, C, S, S)
            eps = torch.rand((b,) + (1,) * (x.dim() - 1), device=x.device)
            x_hat = eps * both[:b] + (1 - eps) * both[b:]
        x_hat.requires_grad_(True)
        scores = self.D(torch.cat([both, x_hat]), torch.cat([y, y, y])).float()   # (3B,) real | fake | interp.
        d_real, d_fake = scores[:b], scores[b:2 * b]
        (grad,) = torch.autograd.grad(scores[2 * b:].sum(), x_hat, create_graph=True)
        gp = (grad.float().flatten(1).norm(dim=1) - 1).pow(2).mean()    # eq. 3's penalty, lambda = gp_weight
        w_dist = d_real.mean() - d_fake.mean()
        d_loss = -w_dist + c.gp_weight * gp + c.drift * d_real.pow(2).mean()
        return {"loss": d_loss, "gp": gp.detach(), "w_dist": w_dist.detach()}   # logged as loss_D, gp, w_dist
