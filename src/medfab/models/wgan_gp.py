"""Conditional WGAN-GP (Gulrajani et al. 2017, Algorithm 1) with a projection critic.

G is the DCGAN generator (label embedding concatenated to z). The critic is the projection discriminator
without batch norm (a per-sample gradient penalty is wrong under batch statistics, paper §4) and without
spectral norm (the penalty already enforces the 1-Lipschitz constraint).

Each :meth:`WGANGP.train_step` does one critic update on its batch; the generator is updated on every
``n_critic``-th step, so the loop's batches feed Algorithm 1's inner critic loop. ``g_loss`` reports the
latest generator update between those steps.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from medfab.models import blocks
from medfab.models.dcgan import GANBase, GANConfig, ProjectionDiscriminator
from medfab.models.ema import make_ema


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
        self._last_g_loss = 0.0

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = (self.config.beta1, self.config.beta2)
        return {"G": torch.optim.Adam(self.G.parameters(), lr=self.config.lr, betas=betas),
                "D": torch.optim.Adam(self.D.parameters(), lr=self.config.lr, betas=betas)}

    def train_step(self, x, y, step, optimizers):
        c, b = self.config, x.shape[0]
        # Critic step. Augment first, then interpolate: the penalty is taken where the critic actually looks.
        with torch.no_grad():
            fake = self.G(self._sample_z(b, x.device), y)               # (B, C, S, S)
            both = self._augment(torch.cat([x, fake]))                  # (2B, C, S, S)
            eps = torch.rand((b,) + (1,) * (x.dim() - 1), device=x.device)
            x_hat = eps * both[:b] + (1 - eps) * both[b:]
        x_hat.requires_grad_(True)
        scores = self.D(torch.cat([both, x_hat]), torch.cat([y, y, y]))  # (3B,) real | fake | interpolates
        d_real, d_fake = scores[:b], scores[b:2 * b]
        (grad,) = torch.autograd.grad(scores[2 * b:].sum(), x_hat, create_graph=True)
        gp = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
        w_dist = d_real.mean() - d_fake.mean()
        d_loss = -w_dist + c.gp_weight * gp + c.drift * d_real.pow(2).mean()
        out = {"d_loss": d_loss.item(), "gp": gp.item(), "w_dist": w_dist.item()}
        if not blocks.finite(d_loss):
            return out | {"g_loss": self._last_g_loss}
        optimizers["D"].zero_grad(set_to_none=True)
        d_loss.backward()
        optimizers["D"].step()

        if step % c.n_critic == c.n_critic - 1:
            with blocks.frozen(self.D):
                g_loss = -self.D(self._augment(self.G(self._sample_z(b, x.device), y)), y).mean()
            self._last_g_loss = g_loss.item()
            if blocks.finite(g_loss):
                optimizers["G"].zero_grad(set_to_none=True)
                g_loss.backward()
                optimizers["G"].step()
                self._after_g_step(step // c.n_critic)
        return out | {"g_loss": self._last_g_loss}
