"""``diffusion``: a class-conditional EDM diffusion model in pixel space (Karras et al. 2022).

Ties together the network (``unet.py``), the noise process (``edm.py``) and the samplers (``samplers.py``):
- training: one phase, ``denoise``, minimising EDM's weighted denoising loss (eq. 2, 8); the label is replaced
  by the null class with probability ``label_dropout``, so the same network is also the unconditional model
  that classifier-free guidance needs (Ho & Salimans 2022, Algorithm 1);
- EMA: the loop averages ``net`` into ``net_ema`` with EDM's half-life in kimg and ramp-up
  (``ema_decay_at``); sampling always uses ``net_ema``;
- sampling: ``generate(y, generator, sampler=, steps=, guidance=, eta=/churn=)`` with
  D_w = D_uncond + w (D_cond - D_uncond) (w = 1: conditional, w = 0: unconditional).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, field_validator

from medfab.errors import MedfabError
from medfab.models import blocks
from medfab.models.base import GenerativeModel, ModelConfig, Phase, StepContext
from medfab.models.diffusion.augment import augment, augment_dim
from medfab.models.diffusion.edm import EDM
from medfab.models.diffusion.samplers import SAMPLERS
from medfab.models.diffusion.unet import UNet
from medfab.models.ema import make_ema

SamplerName = Literal["heun", "ddim", "dpmpp"]
# Which extra setting each sampler takes (and its default): Heun's churn (EDM Alg. 2), DDIM's eta.
_EXTRA = {"heun": ("churn", 0.0), "ddim": ("eta", 0.0), "dpmpp": None}


class DiffusionConfig(ModelConfig):
    # --- network (unet.py) ---
    base: int = Field(32, ge=8)                       # channels of the finest level
    mults: tuple[int, ...] = Field((1, 2, 2, 4), min_length=1)   # width multiplier per level, finest first
    num_res: int = Field(1, ge=1)                     # residual blocks per level (decoder: + 1)
    attn_resolutions: tuple[int, ...] = (8,)          # sides with self-attention (coarsest only: cheap)
    dropout: float = Field(0.1, ge=0, lt=1)           # in every residual block: regularises small classes
    # --- noise process (edm.py, EDM Table 1) ---
    sigma_data: float = Field(0.5, gt=0)
    P_mean: float = -1.2
    P_std: float = Field(1.2, gt=0)
    sigma_min: float = Field(0.002, gt=0)
    sigma_max: float = Field(80.0, gt=0)
    rho: float = Field(7.0, gt=0)
    # --- conditioning and EMA ---
    label_dropout: float = Field(0.1, ge=0, le=1)     # p(label -> null class): trains the unconditional model
    augment: float = Field(0.0, ge=0, le=1)           # p(flip/shift an image), told to the net (augment.py)
    ema_halflife_kimg: float = Field(10.0, gt=0)      # EMA half-life (EDM: 500; CPU runs are short)
    ema_rampup: float = Field(0.05, ge=0)             # half-life <= rampup * images seen, early on
    # --- default sampler settings (each can be overridden per call: medfab sample --sampler ...) ---
    sampler: SamplerName = "heun"
    steps: int = Field(32, ge=1, le=1000)
    guidance: float = Field(1.0, ge=0)
    churn: float = Field(0.0, ge=0)                   # Heun: EDM Alg. 2 S_churn (0 = deterministic)
    eta: float = Field(0.0, ge=0, le=1)               # DDIM: 0 deterministic, 1 ancestral

    @field_validator("mults", "attn_resolutions", mode="before")
    @classmethod
    def _tuple(cls, v: Any) -> Any:
        return tuple(v) if isinstance(v, list) else v


def build_unet(c: DiffusionConfig, *, in_channels: int, image_size: int) -> UNet:
    """The U-Net for config ``c`` on inputs (B, in_channels, image_size, ...); bad sizes -> MedfabError."""
    try:
        return UNet(spatial_dims=c.spatial_dims, in_channels=in_channels, out_channels=in_channels,
                    num_classes=c.num_classes, image_size=image_size, base=c.base, mults=c.mults,
                    num_res=c.num_res, attn_resolutions=c.attn_resolutions, dropout=c.dropout,
                    aug_dim=augment_dim(c.spatial_dims) if c.augment > 0 else 0)
    except ValueError as e:
        raise MedfabError(f"diffusion network: {e}", "use an image size that is a multiple of "
                          f"{2 ** (len(c.mults) - 1)}, or fewer levels in 'mults'") from None


def edm_of(c: DiffusionConfig) -> EDM:
    return EDM(sigma_data=c.sigma_data, P_mean=c.P_mean, P_std=c.P_std, sigma_min=c.sigma_min,
               sigma_max=c.sigma_max, rho=c.rho)


class EDMSampling:
    """Label dropout, sampler settings, guided denoiser, sampling loop (shared by diffusion and ldm)."""

    config: DiffusionConfig
    edm: EDM

    def drop_labels(self, y: torch.Tensor) -> torch.Tensor:
        """Classifier-free guidance training: y -> null class with probability ``label_dropout``."""
        drop = torch.rand(y.shape, device=y.device) < self.config.label_dropout
        return torch.where(drop, torch.full_like(y, self.config.num_classes), y)

    def sampler_settings(self, **sampler) -> dict[str, Any]:
        """The resolved settings: the config's defaults overridden by ``sampler`` (medfab sample's keys)."""
        c = self.config
        name = sampler.pop("sampler", None) or c.sampler
        if name not in SAMPLERS:
            raise MedfabError(f"unknown sampler '{name}'", f"choose one of: {', '.join(SAMPLERS)}")
        out: dict[str, Any] = {"sampler": name, "steps": int(_default(sampler.pop("steps", None), c.steps)),
                               "guidance": float(_default(sampler.pop("guidance", None), c.guidance))}
        extra = _EXTRA[name]
        if name == "heun" and sampler.get("churn") is None and sampler.get("eta") is not None:
            sampler["churn"] = sampler.pop("eta")                       # medfab sample --eta: Heun's S_churn
        if extra is not None:
            out[extra[0]] = float(_default(sampler.pop(extra[0], None), getattr(c, extra[0])))
        left = {k: v for k, v in sampler.items() if v is not None}
        if left:
            takes = f"'{name}' takes {extra[0]}" if extra else f"'{name}' takes neither eta nor churn"
            raise MedfabError(f"sampler setting(s) {', '.join(left)} do not apply to sampler '{name}'",
                              f"{takes}; settings: sampler, steps, guidance, eta (ddim), churn (heun)")
        if (not 1 <= out["steps"] <= 1000 or out["guidance"] < 0 or not 0 <= out.get("eta", 0) <= 1
                or out.get("churn", 0) < 0):
            raise MedfabError(f"bad sampler settings {out}",
                              "steps in 1..1000, guidance >= 0, eta in [0, 1], churn >= 0")
        return out

    def guided_denoiser(self, net, y: torch.Tensor, guidance: float):
        """D_w(x; sigma) = D(x; sigma, null) + w (D(x; sigma, y) - D(x; sigma, null)) (Ho & Salimans 2022).

        w = 1 and w = 0 cost one network evaluation (conditional / unconditional alone).
        """
        null = torch.full_like(y, self.config.num_classes)

        def D(x: torch.Tensor, sigma: float) -> torch.Tensor:
            if guidance == 1:
                return self.edm.denoise(net, x, sigma, y)
            d_u = self.edm.denoise(net, x, sigma, null)
            return d_u if guidance == 0 else d_u + guidance * (self.edm.denoise(net, x, sigma, y) - d_u)

        return D

    def sample(self, net, y: torch.Tensor, shape: tuple[int, ...], generator, **sampler) -> torch.Tensor:
        """Runs the chosen sampler from x_0 = sigma_max n, n ~ N(0, I) of shape (B, *shape)."""
        s = self.sampler_settings(**sampler)
        device = next(net.parameters()).device
        sigmas = self.edm.sigma_steps(s["steps"])
        x = blocks.randn((len(y), *shape), generator, device) * float(sigmas[0])
        extra = {k: v for k, v in s.items() if k in ("eta", "churn")}
        return SAMPLERS[s["sampler"]](self.guided_denoiser(net, y.to(device), s["guidance"]), x, sigmas,
                                      generator, **extra)


def _default(v, d):
    return d if v is None else v


class Diffusion(EDMSampling, GenerativeModel):
    Config = DiffusionConfig
    ddp_modules = ("net",)
    ema_pairs: ClassVar[dict[str, str]] = {"net_ema": "net"}
    config: DiffusionConfig

    def __init__(self, config: DiffusionConfig):
        super().__init__(config)
        self.net = build_unet(config, in_channels=config.channels, image_size=config.image_size)
        self.net_ema = make_ema(self.net)
        self.edm = edm_of(config)

    def phases(self) -> list[Phase]:
        return [Phase("denoise", "net")]

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"net": torch.optim.Adam(self.net.parameters(), lr=self.config.lr, betas=(0.9, 0.999))}

    def ema_decay_at(self, ctx: StepContext) -> float:
        """beta = 0.5^(batch / half-life), half-life = min(halflife_kimg, rampup * kimg seen) (EDM App. C)."""
        c = self.config
        ema_nimg = min(c.ema_halflife_kimg * 1000, c.ema_rampup * ctx.nimg) if c.ema_rampup else \
            c.ema_halflife_kimg * 1000
        return 0.5 ** (ctx.batch_size / max(ema_nimg, 1e-8))

    def phase_loss(self, phase: str, x: torch.Tensor, y: torch.Tensor,
                   ctx: StepContext) -> dict[str, torch.Tensor]:
        kw = {}
        if self.config.augment > 0:
            x, kw["aug"] = augment(x, self.config.augment)
        loss = self.edm.loss(self.net, x, self.drop_labels(y), **kw).mean()
        return {"loss": loss}

    @torch.inference_mode()
    def generate(self, y: torch.Tensor, generator=None, **sampler) -> torch.Tensor:
        blocks.check_labels(y, self.config.num_classes)
        c = self.config
        shape = (c.channels,) + (c.image_size,) * c.spatial_dims
        x = self.sample(self.net_ema, y, shape, generator, **sampler)
        return x.float().clamp(-1, 1)

