"""Latent diffusion: stages keyed on images seen, frozen parts, latent scaling, sampling."""

from __future__ import annotations

import pytest
import torch

from medfab.errors import MedfabError
from medfab.models.base import StepContext
from medfab.models.ldm import LatentDiffusion, LDMConfig
from medfab.models.noise import StackedRandomGenerator
from medfab.sampling.invariance import batch_invariant

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"image_size": 32, "num_classes": 2, "ae_width": 8, "disc_width": 8, "disc_layers": 2, "base": 8,
        "mults": (1, 2), "attn_resolutions": (4,), "ae_kimg": 0.008, "disc_kimg": 0.004}


def _tiny(**kw) -> LatentDiffusion:
    torch.manual_seed(0)
    return LatentDiffusion(LDMConfig(**{**TINY, **kw}))


def _grads(model, phase: str, nimg: int) -> dict[str, bool]:
    """Which networks get gradients from ``phase`` at ``nimg``."""
    model.zero_grad(set_to_none=True)
    x, y = torch.rand(2, 1, 32, 32) * 2 - 1, torch.tensor([0, 1])
    out = model.phase_loss(phase, x, y, StepContext(step=0, nimg=nimg, batch_size=2))
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    return {name: any(p.grad is not None for p in getattr(model, name).parameters()) for name in ("AE", "D", "net")}


def test_each_phase_trains_only_its_network_in_its_stage():
    model = _tiny()
    assert _grads(model, "ae", 0) == {"AE": True, "D": False, "net": False}          # L1 + KL, no GAN yet
    assert _grads(model, "disc", 0) == {"AE": False, "D": False, "net": False}        # before disc_kimg
    assert _grads(model, "denoise", 0) == {"AE": False, "D": False, "net": False}     # AE stage
    assert _grads(model, "ae", 4) == {"AE": True, "D": False, "net": False}           # + GAN, D frozen
    assert _grads(model, "disc", 4) == {"AE": False, "D": True, "net": False}
    assert float(model.latent_scale) == 0
    assert _grads(model, "ae", 8) == {"AE": False, "D": False, "net": False}          # denoise stage
    assert _grads(model, "disc", 8) == {"AE": False, "D": False, "net": False}
    assert _grads(model, "denoise", 8) == {"AE": False, "D": False, "net": True}
    assert float(model.latent_scale) > 0                                               # estimated once


def test_idle_phase_does_not_move_adam():
    model = _tiny()
    opt = model.configure_optimizers()["AE"]
    before = [p.detach().clone() for p in model.AE.parameters()]
    for nimg in (0, 8):                    # one real AE step (Adam gets state), then an idle one
        opt.zero_grad(set_to_none=True)
        model.phase_loss("ae", torch.zeros(2, 1, 32, 32), torch.tensor([0, 1]),
                         StepContext(step=0, nimg=nimg, batch_size=2))["loss"].backward()
        opt.step()
        if nimg == 0:
            before = [p.detach().clone() for p in model.AE.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, model.AE.parameters()))


def test_latent_scale_makes_unit_std_latents_and_is_saved():
    model = _tiny()
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    model.phase_loss("denoise", x, torch.tensor([0, 1, 0, 1]), StepContext(step=0, nimg=8, batch_size=4))
    z = model.encode(x) * model.latent_scale
    assert float(z.std(unbiased=True)) == pytest.approx(1.0, rel=1e-3)
    assert "latent_scale" in model.state_dict()


def test_generate_is_batch_size_independent_and_in_range():
    """Per-image noise + the sampling layer's batch_invariant: denoiser and decoder run the batch at once."""
    model = _tiny().eval()
    model.latent_scale.fill_(2.0)
    with torch.no_grad():
        for p in model.net_ema.parameters():
            p.normal_(0, 0.2)
    seeds, y = [1, 2, 3], torch.tensor([0, 1, 1])
    with batch_invariant("cpu"):
        batch = model.generate(y, StackedRandomGenerator(seeds), sampler="heun", steps=3, guidance=2.0)
        one = model.generate(y[2:], StackedRandomGenerator(seeds[2:]), sampler="heun", steps=3, guidance=2.0)
    assert batch.shape == (3, 1, 32, 32) and batch.min() >= -1 and batch.max() <= 1
    assert torch.equal(batch[2], one[0])


def test_factor_8_and_3d():
    model = _tiny(factor=8, image_size=64, mults=(1,), attn_resolutions=())
    assert model.generate(torch.tensor([1]), torch.Generator().manual_seed(0), steps=2).shape == (1, 1, 64, 64)
    model = _tiny(spatial_dims=3, image_size=16, mults=(1,), attn_resolutions=(), disc_layers=1)
    assert model.generate(torch.tensor([0]), torch.Generator().manual_seed(0), steps=2).shape == (1, 1, 16, 16, 16)


def test_image_size_must_fit_the_factor():
    with pytest.raises(MedfabError):
        _tiny(image_size=36)
