"""Progressive GAN for volumes (Karras et al. 2018; as Nobrainer's ProgressiveGAN3D): WGAN-GP with drift.

Loss (Karras 2018 §A.1, after Gulrajani et al. 2017 eq. 3):
    L_D = E[D(G(z))] - E[D(x)] + lambda * E[(||grad_x_hat D(x_hat)||_2 - 1)^2] + eps_drift * E[D(x)^2]
    L_G = -E[D(G(z))]
with x_hat = eps * x + (1 - eps) * G(z), eps ~ U[0, 1], lambda = 10, eps_drift = 1e-3, Adam(lr 1e-3, 0, 0.99).

Growth: the stage (level, fade-in alpha) is ``schedule(ctx.nimg)``, a pure function of images seen
(schedule.py). The loop's global batch is fixed: choose it for the final stage. Each step the real batch, given
at the final resolution, is box-downsampled to the stage's resolution and, while a level fades in, blended
with its 2x-coarser version (``lerp(upsample(downsample(x)), x, alpha)``, as the reference code does to the
reals), so D sees reals and fakes made the same way. Micro-batching (``--batch-gpu``) and gradient
checkpointing (``--set grad_checkpoint=true``) bound memory at 64^3 and 128^3.

Image + segmentation: the data's extra channels (one per tissue class, in [-1, 1]) are just more channels
to G and D; the writers take the argmax of those channels at sampling (medfab.sampling.writers).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field, model_validator

from medfab.errors import MedfabError
from medfab.models import blocks
from medfab.models.base import GenerativeModel, ModelConfig, Phase, StepContext
from medfab.models.ema import make_ema
from medfab.models.progan3d import memory
from medfab.models.progan3d.layers import downsample, resize_to, upsample
from medfab.models.progan3d.networks import Discriminator, Generator, level_channels
from medfab.models.progan3d.schedule import GrowthSchedule, Stage


class ProGAN3DConfig(ModelConfig):
    spatial_dims: int = Field(3, ge=2, le=3)
    image_size: int = Field(64, ge=8)               # final side; start_size * 2**k
    batch_size: int = Field(8, ge=1)                # global batch, chosen for the final (largest) stage
    lr: float = Field(1e-3, gt=0)                   # Karras 2018 §A.1: Adam(0.001, 0, 0.99, 1e-8)
    beta1: float = Field(0.0, ge=0, lt=1)
    beta2: float = Field(0.99, ge=0, lt=1)
    z_dim: int = Field(128, ge=1)
    start_size: int = Field(4, ge=2)                # side at level 0
    fmap_base: int = Field(1024, ge=8)              # feature maps at resolution R: min(fmap_max, fmap_base / R)
    fmap_max: int = Field(128, ge=4)
    fade_kimg: float = Field(3.0, ge=0)             # images (thousands) over which a new level fades in
    stable_kimg: float = Field(3.0, ge=0)           # images (thousands) each level trains at alpha = 1
    n_critic: int = Field(1, ge=1)                  # critic steps per generator step (Karras: 1)
    gp_weight: float = Field(10.0, ge=0)            # lambda
    drift: float = Field(1e-3, ge=0)                # eps_drift: keeps D's scores near 0
    mbstd_group: int = Field(4, ge=1)               # minibatch-stddev group size (§3)
    ema: bool = True                                # sample from an EMA of G (Karras §A.1: 0.999)
    ema_decay: float = Field(0.999, ge=0, lt=1)
    grad_checkpoint: bool = False                   # recompute block activations in backward (less memory)
    report_memory: bool = True                      # print the peak memory at every stage change

    @model_validator(mode="after")
    def _sizes(self) -> ProGAN3DConfig:
        if not (self.start_size & (self.start_size - 1) == 0 and self.image_size & (self.image_size - 1) == 0
                and self.image_size >= self.start_size):
            raise ValueError(f"image_size {self.image_size} and start_size {self.start_size} must be powers of "
                             "two with image_size >= start_size (e.g. --size 32, 64 or 128)")
        return self


class ProGAN3D(GenerativeModel):
    Config = ProGAN3DConfig
    config: ProGAN3DConfig
    ddp_modules = ("G", "D")
    ema_pairs: ClassVar[dict[str, str]] = {"G_ema": "G"}

    def __init__(self, config: ProGAN3DConfig):
        super().__init__(config)
        c = config
        self.schedule = GrowthSchedule(c.start_size, c.image_size, c.fade_kimg, c.stable_kimg)
        self.widths = level_channels(c.start_size, c.image_size, c.fmap_base, c.fmap_max)
        common = {"num_classes": c.num_classes, "channels": c.channels, "spatial_dims": c.spatial_dims,
                      "widths": self.widths, "start_size": c.start_size, "grad_checkpoint": c.grad_checkpoint}
        self.G = Generator(z_dim=c.z_dim, **common)
        self.D = Discriminator(mbstd_group=c.mbstd_group, **common)
        self.G_ema = make_ema(self.G) if c.ema else None
        # Images seen at the last training step: saved with the weights, so a checkpoint samples at the
        # stage it was trained to (a pure function of ctx.nimg, so resume stays exact).
        self.register_buffer("nimg", torch.zeros((), dtype=torch.int64))
        self._announced: tuple[int, bool] | None = None
        self.stage_memory: dict[str, float] = {}                 # "16^3 fade-in" -> peak bytes (this process)

    # --- the engine contract -------------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        return [Phase("D", "D"), Phase("G", "G", interval=self.config.n_critic)]

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = (self.config.beta1, self.config.beta2)
        return {"G": torch.optim.Adam(self.G.parameters(), lr=self.config.lr, betas=betas, eps=1e-8),
                "D": torch.optim.Adam(self.D.parameters(), lr=self.config.lr, betas=betas, eps=1e-8)}

    def phase_loss(self, phase: str, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> dict[str, torch.Tensor]:
        st = self.schedule(ctx.nimg)
        self.nimg.fill_(ctx.nimg)
        self._announce(st, x)
        try:
            if phase == "D":
                return self._d_loss(self._reals(x, st), y, st)
            if phase == "G":
                return self._g_loss(x.shape[0], y, st, x.device)
        except (RuntimeError, MemoryError) as e:
            if memory.is_oom(e):
                raise memory.oom_error(st.resolution, self.config.spatial_dims, x.shape[0]) from None
            raise
        raise ValueError(f"unknown phase {phase!r}")

    @torch.no_grad()
    def generate(self, y: torch.Tensor, generator=None, **sampler: Any) -> torch.Tensor:
        """Volumes (B, C, S, S, S) in [-1, 1] at the stage the weights were trained to, upsampled to S if lower."""
        if sampler:
            raise MedfabError(f"progan3d has no sampler settings (got {', '.join(sampler)})",
                              "remove the sampler options; a GAN samples in one forward pass")
        blocks.check_labels(y, self.config.num_classes)
        st = self.stage
        G = self.G_ema if self.G_ema is not None else blocks.unwrap(self.G)
        device = next(G.parameters()).device
        z = blocks.randn((len(y), self.config.z_dim), generator, device)
        out = G(z, y.to(device), st.level, st.alpha)
        return resize_to(out.float(), self.config.image_size).clamp(-1.0, 1.0)

    # --- the two phases (Karras 2018 §A.1) -----------------------------------------------------------------
    @property
    def stage(self) -> Stage:
        return self.schedule(int(self.nimg))

    def _z(self, b: int, device: torch.device) -> torch.Tensor:
        return torch.randn(b, self.config.z_dim, device=device)     # training noise: the loop seeds the global RNG

    def _reals(self, x: torch.Tensor, st: Stage) -> torch.Tensor:
        """The real batch at the stage's resolution; blended with its coarser version while fading in."""
        x = resize_to(x, st.resolution)
        if st.fading and st.level > 0:
            x = torch.lerp(upsample(downsample(x)), x, st.alpha)
        return x

    def _d_loss(self, real: torch.Tensor, y: torch.Tensor, st: Stage) -> dict[str, torch.Tensor]:
        c, b = self.config, real.shape[0]
        with torch.no_grad():
            fake = self.G(self._z(b, real.device), y, st.level, st.alpha).to(real.dtype)
        eps = torch.rand((b,) + (1,) * (real.dim() - 1), device=real.device)
        x_hat = torch.lerp(fake, real, eps).detach().requires_grad_(True)
        # The minibatch-std feature is computed within each chunk, as separate calls would. Under DDP: one D call
        # over real | fake | interpolates (one forward per backward, as DDP wants). Otherwise the interpolates get
        # their own call, so the penalty's double backward runs over b samples, not 3b.
        if isinstance(self.D, torch.nn.parallel.DistributedDataParallel):
            scores = self.D(torch.cat([real, fake, x_hat]), torch.cat([y, y, y]), st.level, st.alpha, chunks=3)
            d_real, d_fake, d_hat = scores.float().split(b)
        else:
            d_real, d_fake = self.D(torch.cat([real, fake]), torch.cat([y, y]), st.level, st.alpha,
                                    chunks=2).float().split(b)
            d_hat = self.D(x_hat, y, st.level, st.alpha).float()
        (grad,) = torch.autograd.grad(d_hat.sum(), x_hat, create_graph=True)
        gp = (grad.float().flatten(1).norm(dim=1) - 1).pow(2).mean()
        w_dist = d_real.mean() - d_fake.mean()
        loss = -w_dist + c.gp_weight * gp + c.drift * d_real.pow(2).mean()
        return {"loss": loss, "d_loss": loss.detach(), "gp": gp.detach(), "w_dist": w_dist.detach(),
                "level": torch.full((), float(st.level), device=real.device),
                "alpha": torch.full((), st.alpha, device=real.device)}

    def _g_loss(self, b: int, y: torch.Tensor, st: Stage, device: torch.device) -> dict[str, torch.Tensor]:
        with blocks.frozen(self.D):
            fake = self.G(self._z(b, device), y, st.level, st.alpha)
            loss = -self.D(fake, y, st.level, st.alpha).float().mean()
        return {"loss": loss, "g_loss": loss.detach()}

    # --- memory report at every stage change ---------------------------------------------------------------
    def _announce(self, st: Stage, x: torch.Tensor) -> None:
        key = (st.level, st.fading)
        if key == self._announced or not self.config.report_memory:
            return
        d = self.config.spatial_dims
        if self._announced is not None:
            lvl, fading = self._announced
            res = self.config.start_size * 2**lvl
            name = f"{res}^{d} {'fade-in' if fading else 'stable'}"
            self.stage_memory[name], what = memory.peak_bytes(x.device)
            if _is_main():
                print(f"[progan3d] {name}: peak memory {self.stage_memory[name] / memory.GIB:.2f} GiB ({what})",
                      flush=True)
        memory.reset_peak(x.device)
        self._announced = key
        n_params = sum(p.numel() for p in self.parameters())
        est = memory.estimate_bytes(n_params, st.resolution, d, x.shape[0], self.widths[st.level],
                                    grad_checkpoint=self.config.grad_checkpoint)
        if _is_main():
            print(f"[progan3d] stage {st.resolution}^{d} {'fade-in' if st.fading else 'stable'} from "
                  f"{int(self.nimg) / 1000:g} kimg, micro-batch {x.shape[0]}: estimated {est / memory.GIB:.2f} GiB",
                  flush=True)


def _is_main() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()
                and torch.distributed.get_rank() != 0)
