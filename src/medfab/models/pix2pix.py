"""Two-stage class-conditional pix2pix: a learnt coarse-map prior (stage A) + a U-Net renderer (stage B).

pix2pix (Isola et al. 2017) translates an input image into an output image; to *fabricate* a new image it
needs a new input. Here the input is a coarse structure map: the image area-downsampled to ``map_size``
(e.g. 16x16), which keeps the head outline, ventricles and overall intensity but no fine texture.
- Stage A (``A``): a small conditional VAE on those maps learns p(map | class); sampling draws a NEW map
  from noise, so the output is not a copy of a training image's layout.
- Stage B (``G``, ``D``): the pix2pix U-Net renders ``cat(upsampled map, class one-hot planes, noise)`` into
  the full-resolution image, trained on pairs (coarse(x), x) with the non-saturating GAN loss
  + l1_weight * L1;
  the PatchGAN sees ``cat(map, image, class planes)``.
Both stages train in the same loop step, as three phases (A, D, G). A fraction ``map_mix`` of the maps given to stage B
are stage A's reconstructions instead of the exact coarse images, so B also learns to render A's (slightly
smoother) maps, the kind it gets at sampling time. See docs/models.md for the design and its
memorisation check.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from medfab.errors import MedfabError
from medfab.models import blocks
from medfab.models.base import GenerativeModel, Phase, SmallDataConfig, StepContext
from medfab.models.diffaug import diff_augment, parse_policy
from medfab.models.ema import make_ema
from medfab.models.optim import adam
from medfab.models.patchgan import PatchGAN
from medfab.models.unet import UNet
from medfab.models.vae import Decoder, Encoder


class MapPrior(nn.Module):
    """Stage A: conditional VAE on coarse maps. forward(m, y) -> (m_hat, mu, logvar); ``dec`` samples."""

    def __init__(self, *, channels: int, num_classes: int, map_size: int, latent_dim: int, width: int,
                 spatial_dims: int):
        super().__init__()
        common = {"channels": channels, "num_classes": num_classes, "latent_dim": latent_dim, "width": width,
                      "image_size": map_size, "spatial_dims": spatial_dims}
        self.enc = Encoder(**common)
        self.dec = Decoder(embed_dim=16, **common)

    def forward(self, m: torch.Tensor, y: torch.Tensor):
        mu, logvar = self.enc(m, y)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.dec(z, y), mu, logvar


class Pix2PixConfig(SmallDataConfig):
    # stage A: the map prior
    map_size: int = Field(16, ge=16)               # side of the coarse structure map
    map_latent_dim: int = Field(32, ge=1)
    map_width: int = Field(32, ge=4)
    map_beta: float = Field(1.0, ge=0)
    map_kl_warmup_kimg: float = Field(16.0, ge=0)  # stage A's beta ramps from 0 over this many images seen (x1000)
    map_lr: float = Field(1e-3, gt=0)
    map_mix: float = Field(0.5, ge=0, le=1)        # share of B's input maps taken from A's reconstructions
    # stage B: pix2pix
    g_width: int = Field(32, ge=4)                 # ngf (the paper uses 64; 32 is plenty for 52 images)
    d_width: int = Field(32, ge=4)                 # ndf
    d_layers: int = Field(3, ge=1, le=6)           # PatchGAN depth (3 = 70x70 patches)
    g_norm: Literal["batch", "instance", "group"] = "batch"
    d_norm: Literal["batch", "instance", "group", "none"] = "none"
    d_spectral_norm: bool = True                   # instead of D's batch norm: the small-data guard
    dropout: float = Field(0.5, ge=0, lt=1)        # U-Net decoder dropout (training only)
    noise_channels: int = Field(1, ge=0)           # N(0, 1) planes given to G: variety at a fixed map
    l1_weight: float = Field(20.0, ge=0)           # the paper's 100 is for exact inputs; maps are coarse
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    legacy_steps: ClassVar[dict[str, str]] = {"map_kl_warmup_steps": "map_kl_warmup_kimg"}

    @model_validator(mode="after")
    def _map_smaller(self):
        if self.map_size * 2 > self.image_size:
            raise MedfabError(
                f"map_size {self.map_size} must be at most half of image_size {self.image_size}",
                "a map as fine as the image would let stage A copy training images; lower map_size")
        return self


class Pix2Pix(GenerativeModel):
    Config = Pix2PixConfig
    ddp_modules = ("A", "G", "D")
    ema_pairs: ClassVar[dict[str, str]] = {"G_ema": "G"}   # updated by the loop after each G step
    config: Pix2PixConfig

    def __init__(self, config: Pix2PixConfig):
        super().__init__(config)
        c = config
        blocks.check_image_size(c.map_size)
        self.policy = parse_policy(c.diffaug)
        self.A = MapPrior(channels=c.channels, num_classes=c.num_classes, map_size=c.map_size,
                          latent_dim=c.map_latent_dim, width=c.map_width, spatial_dims=c.spatial_dims)
        self.G = UNet(c.spatial_dims, c.channels + c.num_classes + c.noise_channels, c.channels,
                      num_downs=blocks.check_image_size(c.image_size), width=c.g_width,
                      max_channels=8 * c.g_width,
                      norm=c.g_norm,
                      dropout=c.dropout)
        self.D = PatchGAN(c.spatial_dims, 2 * c.channels + c.num_classes, width=c.d_width,
                          n_layers=c.d_layers,
                          norm=c.d_norm, sn=c.d_spectral_norm)
        self.G_ema = make_ema(self.G) if c.ema else None

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {"A": adam(self.A.parameters(), lr=c.map_lr),
                "G": adam(self.G.parameters(), lr=c.lr, betas=(c.beta1, c.beta2)),
                "D": adam(self.D.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))}

    # --- maps -----------------------------------------------------------------------------------------
    def coarse(self, x: torch.Tensor) -> torch.Tensor:
        """The structure map of an image: area average to map_size, (B, C, m, m[, m])."""
        pool = F.adaptive_avg_pool2d if x.dim() == 4 else F.adaptive_avg_pool3d
        return pool(x, self.config.map_size)

    def _upsample(self, m: torch.Tensor) -> torch.Tensor:
        mode = "bilinear" if m.dim() == 4 else "trilinear"
        size = (self.config.image_size,) * (m.dim() - 2)
        return F.interpolate(m, size=size, mode=mode, align_corners=False)

    def _g_input(self, m_up: torch.Tensor, y: torch.Tensor, generator=None,
                 planes: torch.Tensor | None = None) -> torch.Tensor:
        """cat(map, class planes, noise): (B, C + K + noise_channels, S, S[, S])."""
        shape = (m_up.shape[0], self.config.noise_channels, *m_up.shape[2:])
        noise = blocks.randn(shape, generator, m_up.device)
        if planes is None:
            planes = blocks.class_planes(y, self.config.num_classes, m_up)
        return torch.cat([m_up, planes, noise], 1)

    def _d_input(self, m_up: torch.Tensor, img: torch.Tensor, planes: torch.Tensor) -> torch.Tensor:
        """cat(map, image, class planes), ``planes`` from :func:`blocks.class_planes` (an expanded view).

        One augmentation for map and image together, so the pair stays aligned; class planes stay exact.
        Without augmentation it is a single concatenation (D sees three inputs per step: a third of the copies).
        """
        if not self.policy:
            return torch.cat([m_up, img, planes], 1)                      # cat promotes mixed dtypes
        pair = diff_augment(torch.cat([m_up, img], 1), self.policy)
        return torch.cat([pair, planes], 1)

    # --- training: phases A (map prior), D, G -------------------------------------------------------------
    def phases(self) -> list[Phase]:
        return [Phase("A", "A"), Phase("D", "D"), Phase("G", "G")]

    def _b_inputs(self, x: torch.Tensor, y: torch.Tensor,
                  ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(upsampled map, G's input, class planes) of stage B, built once per step and shared by D and G through
        ``ctx.cache``; a map_mix share of the maps are stage A's reconstructions."""
        if "m_up" in ctx.cache:
            return ctx.cache["m_up"], ctx.cache["g_in"], ctx.cache["planes"]
        m = ctx.cache.get("m")                                            # phase A's coarse maps, if it ran
        if m is None:
            m = self.coarse(x)                                            # (B, C, m, m)
        m_hat = ctx.cache.get("m_hat")
        if m_hat is None:                                                 # no shared cache (DDP + accumulation)
            with torch.no_grad():
                m_hat = self.A(m, y)[0]
        use_a = (torch.rand(x.shape[0], device=x.device) < self.config.map_mix).view(-1, *([1] * (x.dim() - 1)))
        m_up = self._upsample(torch.where(use_a, m_hat.to(m.dtype), m))  # (B, C, S, S)
        planes = blocks.class_planes(y, self.config.num_classes, m_up)   # (B, K, S, S), a view: no copy
        g_in = self._g_input(m_up, y, planes=planes)
        ctx.cache.update(m_up=m_up, g_in=g_in, planes=planes)
        return m_up, g_in, planes

    def phase_loss(self, phase: str, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        c, b = self.config, x.shape[0]
        if phase == "A":
            # Stage A: ELBO on coarse maps (L1 recon summed over map pixels + warmed-up beta * KL).
            m = self.coarse(x)                                            # (B, C, m, m)
            m_hat, mu, logvar = self.A(m, y)
            mu, logvar = mu.float(), logvar.float()
            ctx.cache.update(m=m, m_hat=m_hat.detach())                  # stage B's maps: no second pooling
            a_recon = (m - m_hat.float()).abs().flatten(1).sum(1).mean()
            a_kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(1).mean()
            seen = ctx.nimg + ctx.batch_size                             # a pure function of images seen
            warm = 1.0 if c.map_kl_warmup_kimg == 0 else min(1.0, seen / (1000 * c.map_kl_warmup_kimg))
            return {"loss": a_recon + c.map_beta * warm * a_kl, "a_kl": a_kl.detach()}    # logged: loss_A, a_kl
        m_up, g_in, planes = self._b_inputs(x, y, ctx)
        if phase == "D":
            # Real and fake pairs in one forward (no batch norm in D by default); one G forward for both phases.
            fake = ctx.cache["fake"] = self.G(g_in)                       # (B, C, S, S)
            if c.d_norm == "batch":
                logits = torch.cat([self.D(self._d_input(m_up, x, planes)),
                                    self.D(self._d_input(m_up, fake.detach(), planes))])
            else:
                pairs = self._d_input(torch.cat([m_up, m_up]), torch.cat([x, fake.detach().to(x.dtype)]),
                                      blocks.class_planes(torch.cat([y, y]), c.num_classes, m_up))
                logits = self.D(pairs)                                    # (2B, 1, s, s)
            logits = logits.float()
            d_loss = F.softplus(-logits[:b]).mean() + F.softplus(logits[b:]).mean()   # BCE(real=1) + BCE(fake=0)
            return {"loss": d_loss, "d_real": logits[:b].detach().mean(), "d_fake": logits[b:].detach().mean()}
        # G: fool D + stay close to the real image (L1 mean over pixels, as in the reference).
        fake = ctx.cache.pop("fake", None)
        if fake is None:
            fake = self.G(g_in)
        with blocks.frozen(self.D):
            g_adv = F.softplus(-self.D(self._d_input(m_up, fake, planes)).float()).mean()
        g_l1 = (fake.float() - x).abs().mean()
        return {"loss": g_adv + c.l1_weight * g_l1, "g_adv": g_adv.detach(), "g_l1": g_l1.detach()}

    # --- sampling -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_maps(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Stage A alone: new coarse maps (B, C, m, m[, m]) of classes ``y``."""
        blocks.check_labels(y, self.config.num_classes)
        dec = blocks.unwrap(self.A).dec
        device = next(dec.parameters()).device
        z = blocks.randn((len(y), self.config.map_latent_dim), generator, device)
        return dec(z, y.to(device))

    @torch.no_grad()
    def render(self, m: torch.Tensor, y: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Stage B alone: full-resolution images from maps (B, C, m, m[, m])."""
        net = self.G_ema if self.config.ema else blocks.unwrap(self.G)
        was_training = net.training
        net.eval()
        device = next(net.parameters()).device
        x = net(self._g_input(self._upsample(m.to(device)), y.to(device), generator))
        net.train(was_training)
        return x.float().clamp(-1, 1)   # float32 even under autocast

    @torch.no_grad()
    def generate(self, y: torch.Tensor, generator: torch.Generator | None = None, **sampler) -> torch.Tensor:
        self.sampler_settings(**sampler)                   # no sampler settings: rejects any
        return self.render(self.sample_maps(y, generator), y, generator)
