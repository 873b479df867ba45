"""``ldm``: latent diffusion (Rombach et al. 2022): EDM diffusion in the latent space of a KL autoencoder.

One loop step runs three phases, each active in its own range of images seen (``ctx.nimg``), so the stage
is a pure function of nimg and a resumed run repeats an uninterrupted one exactly:

    nimg < ae_kimg               ae:      L1 + kl_weight KL (+ adv_weight GAN loss once nimg >= disc_kimg)
    disc_kimg <= nimg < ae_kimg  disc:    PatchGAN hinge loss on real vs reconstructed images
    nimg >= ae_kimg              denoise: EDM loss on latents z = latent_scale * mu(x) of the frozen encoder

An inactive phase returns a zero loss connected to no parameter, so its optimiser sees no gradients and does
not move (Adam skips parameters without .grad). ``latent_scale`` = 1 / std of the first denoise batch's latents
(LDM's "scale_factor", §4.3.2 / App. G), a buffer saved with the checkpoint, so the diffusion model sees
unit-variance latents as EDM's sigma_data = 0.5 ... 1 assumes.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.distributed as dist
from pydantic import Field

from medfab.errors import MedfabError
from medfab.models import blocks
from medfab.models.base import GenerativeModel, Phase, StepContext
from medfab.models.diffusion.augment import augment
from medfab.models.diffusion.model import DiffusionConfig, EDMSampling, build_unet, edm_of
from medfab.models.ema import make_ema
from medfab.models.ldm.autoencoder import Autoencoder, hinge_d_loss, kl_per_pixel
from medfab.models.patchgan import PatchGAN


class LDMConfig(DiffusionConfig):
    # --- autoencoder stage ---
    factor: Literal[4, 8] = 4                     # downsampling per side: 64^2 -> 16^2 (8: 128^2 -> 16^2)
    z_channels: int = Field(4, ge=1)              # latent channels (LDM's f=4 and f=8 models use 3-4)
    ae_width: int = Field(32, ge=8)               # channels of the autoencoder's finest level
    ae_lr: float = Field(2e-4, gt=0)              # Adam (0.5, 0.9) for autoencoder and discriminator
    ae_kimg: float = Field(20.0, ge=0)            # images (thousands) the autoencoder trains before diffusion
    disc_kimg: float = Field(10.0, ge=0)          # the adversarial loss starts here (after L1 warm-up)
    kl_weight: float = Field(1e-6, ge=0)          # LDM's KL-reg weight
    adv_weight: float = Field(0.1, ge=0)          # weight of the generator's adversarial loss vs per-pixel L1
    disc_width: int = Field(32, ge=8)
    disc_layers: int = Field(3, ge=1)
    # --- diffusion in latent space: same fields as `diffusion`, defaults for 16^2 x 4 latents ---
    base: int = Field(64, ge=8)
    mults: tuple[int, ...] = Field((1, 2, 2), min_length=1)
    attn_resolutions: tuple[int, ...] = (8, 4)
    sigma_data: float = Field(1.0, gt=0)          # latents are scaled to unit std
    lr: float = Field(2e-4, gt=0)


class LatentDiffusion(EDMSampling, GenerativeModel):
    Config = LDMConfig
    ddp_modules = ("AE", "D", "net")
    ema_pairs: ClassVar[dict[str, str]] = {"net_ema": "net"}
    config: LDMConfig

    def __init__(self, config: LDMConfig):
        super().__init__(config)
        c = config
        if c.image_size % c.factor:
            raise MedfabError(f"image_size {c.image_size} is not a multiple of the ldm factor {c.factor}",
                              "use a power-of-two image size >= 32, or factor=4")
        self.AE = Autoencoder(spatial_dims=c.spatial_dims, channels=c.channels, z_channels=c.z_channels,
                              width=c.ae_width, factor=c.factor)
        self.D = PatchGAN(c.spatial_dims, c.channels, width=c.disc_width, n_layers=c.disc_layers,
                          norm="group")
        self.net = build_unet(c, in_channels=c.z_channels, image_size=c.image_size // c.factor)
        self.net_ema = make_ema(self.net)
        self.edm = edm_of(c)
        self.register_buffer("latent_scale", torch.zeros(()))          # 0 = not yet estimated
        self._scale_known = False

    def phases(self) -> list[Phase]:
        return [Phase("ae", "AE"), Phase("disc", "D"), Phase("denoise", "net")]

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {"AE": torch.optim.Adam(self.AE.parameters(), lr=c.ae_lr, betas=(0.5, 0.9)),
                "D": torch.optim.Adam(self.D.parameters(), lr=c.ae_lr, betas=(0.5, 0.9)),
                "net": torch.optim.Adam(self.net.parameters(), lr=c.lr)}

    def stage(self, nimg: int) -> str:
        """"ae" or "denoise": the stage training is in after ``nimg`` images."""
        return "ae" if nimg < self.config.ae_kimg * 1000 else "denoise"

    def ema_decay_at(self, ctx: StepContext) -> float:
        """EDM's half-life EMA (as ``diffusion``), its ramp-up counted from the start of the denoise stage."""
        c = self.config
        seen = max(ctx.nimg - c.ae_kimg * 1000, 0)
        ema_nimg = min(c.ema_halflife_kimg * 1000, c.ema_rampup * seen) if c.ema_rampup else \
            c.ema_halflife_kimg * 1000
        return 0.5 ** (ctx.batch_size / max(ema_nimg, 1e-8))

    # --- the three phases ------------------------------------------------------------------------------
    def phase_loss(self, phase: str, x: torch.Tensor, y: torch.Tensor,
                   ctx: StepContext) -> dict[str, torch.Tensor]:
        # Every phase returns the same keys in every stage (the loop's log window sums them by position).
        if phase == "ae":
            return self._ae_loss(x, ctx) if self.stage(ctx.nimg) == "ae" else _idle(x, "l1", "kl", "g_adv")
        if phase == "disc":
            adv = self.stage(ctx.nimg) == "ae" and ctx.nimg >= self.config.disc_kimg * 1000
            return self._disc_loss(x, ctx) if adv else _idle(x)
        if phase == "denoise":
            return self._denoise_loss(x, y) if self.stage(ctx.nimg) == "denoise" else _idle(x)
        raise ValueError(f"unknown phase '{phase}'")

    def _ae_loss(self, x: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        c = self.config
        x_hat, mu, logvar = self.AE(x)
        ctx.cache["x_hat"] = x_hat.detach()
        l1 = (x_hat.float() - x).abs().mean()
        kl = kl_per_pixel(mu.float(), logvar.float(), x[0].numel())
        loss = l1 + c.kl_weight * kl
        g_adv = torch.zeros((), device=x.device)
        if ctx.nimg >= c.disc_kimg * 1000 and c.adv_weight > 0:
            with blocks.frozen(self.D):
                g_adv = -self.D(x_hat).float().mean()                   # hinge generator loss
            loss = loss + c.adv_weight * g_adv
        return {"loss": loss, "l1": l1.detach(), "kl": kl.detach(), "g_adv": g_adv.detach()}

    def _disc_loss(self, x: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        x_hat = ctx.cache.get("x_hat")
        if x_hat is None:                                               # cache per phase (DDP + accumulation)
            with torch.no_grad():
                x_hat = self.AE(x)[0]
        loss = hinge_d_loss(self.D(x).float(), self.D(x_hat.detach()).float())
        return {"loss": loss}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Unscaled latents mu(x) (B, z, S/f, ...) of the frozen encoder."""
        return blocks.unwrap(self.AE).E(x)[0].float()

    def _denoise_loss(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        kw = {}
        if self.config.augment > 0:                                     # augment the image, then encode it
            x, kw["aug"] = augment(x, self.config.augment)
        z = self.encode(x)
        if not self._scale_known:                                       # host sync only until it is known
            self._scale_known = float(self.latent_scale) > 0 or self._estimate_scale(z)
        loss = self.edm.loss(self.net, z * self.latent_scale, self.drop_labels(y), **kw).mean()
        return {"loss": loss}

    def _estimate_scale(self, z: torch.Tensor) -> bool:
        """latent_scale = 1 / std(z) of this batch (all ranks); False (unset) if z is not finite."""
        var = z.var().reshape(1)
        if dist.is_available() and dist.is_initialized():               # one scale for every rank
            dist.all_reduce(var)
            var /= dist.get_world_size()
        scale = float(var.rsqrt())
        if math.isfinite(scale) and scale > 0:
            self.latent_scale.fill_(scale)
            return True
        return False                                                    # a NaN batch: the loop stops anyway

    # --- sampling --------------------------------------------------------------------------------------
    @torch.inference_mode()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images from *scaled* latents: G(z / latent_scale)."""
        scale = float(self.latent_scale) or 1.0                         # before the denoise stage: unscaled
        return blocks.unwrap(self.AE).G(z / scale)

    @torch.inference_mode()
    def generate(self, y: torch.Tensor, generator=None, **sampler) -> torch.Tensor:
        blocks.check_labels(y, self.config.num_classes)
        c = self.config
        shape = (c.z_channels,) + (c.image_size // c.factor,) * c.spatial_dims
        z = self.sample(self.net_ema, y, shape, generator, **sampler)
        return self.decode(z).float().clamp(-1, 1)


def _idle(x: torch.Tensor, *logged: str) -> dict[str, torch.Tensor]:
    """A zero loss outside its stage: backward reaches no parameter, so the optimiser step changes nothing."""
    zero = torch.zeros((), device=x.device)
    return {"loss": zero.clone().requires_grad_(True), **dict.fromkeys(logged, zero)}


