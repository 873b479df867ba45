"""A tiny conditional GAN (linear G and D) used by the training/sampling tests; not a medfab model."""

from __future__ import annotations

import os
import signal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from medfab.models.base import GenerativeModel, ModelConfig, Phase


class TinyConfig(ModelConfig):
    z_dim: int = Field(4, ge=1)
    nan_at_step: int = -1        # make the loss NaN from this step on (tests the non-finite stop)
    signal_at_step: int = -1     # send this process SIGINT during this step (tests interruption)
    oom_at_step: int = -1        # raise an out-of-memory RuntimeError (tests the friendly error)


class TinyGAN(GenerativeModel):
    Config = TinyConfig
    ddp_modules = ("G", "D")

    def __init__(self, config: TinyConfig):
        super().__init__(config)
        c = config
        self.numel = c.channels * c.image_size ** c.spatial_dims
        self.G = nn.Linear(c.z_dim + c.num_classes, self.numel)
        self.D = nn.Linear(self.numel + c.num_classes, 1)

    def configure_optimizers(self):
        lr = self.config.lr
        return {"G": torch.optim.Adam(self.G.parameters(), lr=lr, betas=(0.5, 0.99)),
                "D": torch.optim.Adam(self.D.parameters(), lr=lr, betas=(0.5, 0.99))}

    def _g(self, z, y):
        c = self.config
        h = torch.tanh(self.G(torch.cat([z, F.one_hot(y, c.num_classes).float()], 1)))
        return h.view(len(y), c.channels, *[c.image_size] * c.spatial_dims)   # (B, C, H, W)

    def _d(self, x, y):
        return self.D(torch.cat([x.flatten(1), F.one_hot(y, self.config.num_classes).float()], 1))

    def phases(self):
        return [Phase("D", "D"), Phase("G", "G")]

    def phase_loss(self, phase, x, y, ctx):
        if phase == "D":
            if ctx.step == self.config.signal_at_step:
                os.kill(os.getpid(), signal.SIGINT)
            if ctx.step == self.config.oom_at_step:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            z = torch.randn(len(y), self.config.z_dim, device=x.device)
            fake = ctx.cache["fake"] = self._g(z, y)                     # reused by the G phase
            d_loss = F.softplus(self._d(fake.detach(), y)).mean() + F.softplus(-self._d(x, y)).mean()
            return {"loss": d_loss, "loss_D": d_loss.detach()}
        fake = ctx.cache.pop("fake", None)
        if fake is None:                                                  # DDP with accumulation: no shared cache
            fake = self._g(torch.randn(len(y), self.config.z_dim, device=x.device), y)
        g_loss = F.softplus(-self._d(fake, y)).mean()
        if 0 <= self.config.nan_at_step <= ctx.step:
            g_loss = g_loss * float("nan")
        return {"loss": g_loss, "loss_G": g_loss.detach()}

    @torch.no_grad()
    def generate(self, y, generator=None, **sampler):
        from medfab.models import blocks

        self.sampler_settings(**sampler)
        z = blocks.randn((len(y), self.config.z_dim), generator, y.device)   # a Generator or a per-image stack
        return self._g(z, y)


def register_tiny(monkeypatch) -> None:
    """Make ``build_model("tiny", ...)`` (and so ``load_run``) know TinyGAN, for this test only."""
    from medfab.models import registry

    real = registry._table
    monkeypatch.setattr(registry, "_table", lambda: {**real(), "tiny": TinyGAN})


def tiny_data(counts=(12, 4), size: int = 8, spatial_dims: int = 2, seed: int = 0):
    """A TensorSet with ``counts[k]`` random images of class k, in [-1, 1]."""
    import numpy as np

    from medfab.data.tensors import TensorSet

    rng = np.random.default_rng(seed)
    n = sum(counts)
    x = rng.uniform(-1, 1, (n, 1, *[size] * spatial_dims)).astype(np.float32)
    y = np.concatenate([np.full(c, k) for k, c in enumerate(counts)]).astype(np.int64)
    classes = [f"c{k}" for k in range(len(counts))]
    return TensorSet(x, y, classes, [f"img{i}" for i in range(n)])


def tiny_model(data, seed: int = 0, **fields) -> TinyGAN:
    torch.manual_seed(seed)
    return TinyGAN(TinyConfig(name="tiny", image_size=data.x.shape[-1], num_classes=len(data.classes),
                              spatial_dims=data.x.ndim - 2, **{"batch_size": 4, **fields}))
