"""The diffusion model's parts: EDM coefficients, the samplers on analytic cases, guidance, seeding."""

from __future__ import annotations

import math

import pytest
import torch

from medfab.errors import MedfabError
from medfab.models.base import StepContext
from medfab.models.diffusion import Diffusion, DiffusionConfig
from medfab.models.diffusion.edm import EDM, ideal_gaussian_denoiser
from medfab.models.diffusion.samplers import SAMPLERS
from medfab.models.noise import StackedRandomGenerator
from medfab.sampling.invariance import batch_invariant

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"base": 8, "mults": (1, 2), "attn_resolutions": (8,), "image_size": 16, "num_classes": 3}


def _tiny(seed: int = 0, **kw) -> Diffusion:
    """A tiny model with all weights random (the zero-initialised output layers would make D = c_skip x)."""
    torch.manual_seed(seed)
    model = Diffusion(DiffusionConfig(**{**TINY, **kw})).eval()
    with torch.no_grad():
        for p in model.net_ema.parameters():
            p.normal_(0, 0.2)
    return model


def test_edm_coefficients_match_table_1_by_hand():
    edm = EDM(sigma_data=0.5)
    c_skip, c_out, c_in, c_noise = edm.coefficients(torch.tensor([1.0, 0.5]))
    # sigma = 1: c_skip = .25 / 1.25, c_out = .5 / sqrt(1.25), c_in = 1 / sqrt(1.25), c_noise = ln(1) / 4
    assert c_skip.tolist() == pytest.approx([0.2, 0.5])
    assert c_out.tolist() == pytest.approx([0.5 / math.sqrt(1.25), 0.25 / math.sqrt(0.5)])
    assert c_in.tolist() == pytest.approx([1 / math.sqrt(1.25), 1 / math.sqrt(0.5)])
    assert c_noise.tolist() == pytest.approx([0.0, math.log(0.5) / 4])
    # lambda(sigma) = 1 / c_out^2 (eq. 8 with Table 1): unit effective weight on F's target
    assert edm.loss_weight(torch.tensor([1.0, 0.5])).tolist() == pytest.approx((1 / c_out**2).tolist())


def test_edm_time_steps_follow_eq_5():
    s = EDM(sigma_min=0.002, sigma_max=80.0, rho=7.0).sigma_steps(3)
    mid = ((80 ** (1 / 7) + 0.002 ** (1 / 7)) / 2) ** 7
    assert s.tolist() == pytest.approx([80.0, mid, 0.002, 0.0])


@pytest.mark.parametrize("name", ["heun", "ddim", "dpmpp"])
def test_samplers_solve_the_gaussian_ode(name):
    # Data N(mu, s^2) per pixel: the probability-flow ODE maps x_0 = sigma_max n to
    # mu + n s sigma_max / sqrt(sigma_max^2 + s^2) (exactly, for the ideal denoiser).
    mu, s, edm = 0.3, 0.5, EDM()
    n = torch.randn(2000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = mu + n * s * edm.sigma_max / math.sqrt(edm.sigma_max**2 + s**2)
    errors = []
    for steps in (8, 32, 128):
        sigmas = edm.sigma_steps(steps)
        x = SAMPLERS[name](ideal_gaussian_denoiser(mu, s), n * float(sigmas[0]), sigmas)
        errors.append(float((x - exact).abs().max()))
    tol = {"heun": 0.01, "ddim": 0.05, "dpmpp": 0.01}[name]                 # DDIM (Euler) is 1st order
    assert errors[-1] < tol and errors[2] < errors[1] < errors[0]


@pytest.mark.parametrize("name", ["heun", "ddim", "dpmpp"])
def test_samplers_reach_a_single_point(name):
    sigmas = EDM().sigma_steps(10)
    x = SAMPLERS[name](ideal_gaussian_denoiser(-0.7, 0.0), torch.randn(50, dtype=torch.float64) * 80, sigmas)
    assert torch.allclose(x, torch.full_like(x, -0.7), atol=1e-6)


@pytest.mark.parametrize("name,extra,steps", [("heun", {"churn": 40.0}, 64), ("ddim", {"eta": 1.0}, 256)])
def test_stochastic_samplers_draw_the_data_distribution(name, extra, steps):
    # ancestral DDIM (eta = 1) is 1st order: its std is 10% short at 64 steps, 2% at 256
    mu, s, edm = -0.2, 0.4, EDM()
    sigmas = edm.sigma_steps(steps)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(20000, generator=g, dtype=torch.float64) * 80
    x = SAMPLERS[name](ideal_gaussian_denoiser(mu, s), x0, sigmas, g, **extra).float()
    assert float(x.mean()) == pytest.approx(mu, abs=0.02) and float(x.std()) == pytest.approx(s, abs=0.02)
    # and the noise really was used: not the deterministic ODE image of the same x0
    det = SAMPLERS[name](ideal_gaussian_denoiser(mu, s), x0, sigmas).float()
    assert not torch.allclose(x, det, atol=1e-3)


@pytest.mark.parametrize("sampler", ["heun", "ddim", "dpmpp"])
def test_sampling_is_batch_size_independent(sampler):
    """Per-image noise + the sampling layer's batch_invariant (the model itself runs the batch at once)."""
    model = _tiny()
    seeds, y = [11, 12, 13, 14, 15, 16, 17], torch.tensor([0, 1, 2, 0, 1, 2, 0])
    kw = {"sampler": sampler, "steps": 4, "guidance": 1.5}
    kw.update({"heun": {"churn": 10.0}, "ddim": {"eta": 0.5}, "dpmpp": {}}[sampler])
    with batch_invariant("cpu"):
        batch = model.generate(y, StackedRandomGenerator(seeds), **kw)
        for i in (0, 3, 6):
            one = model.generate(y[i:i + 1], StackedRandomGenerator(seeds[i:i + 1]), **kw)
            assert torch.equal(one[0], batch[i]), f"image {i} depends on its batch"
    assert batch.shape == (7, 1, 16, 16) and batch.dtype == torch.float32


def test_guidance_zero_is_the_unconditional_model():
    model = _tiny()
    edm, sigmas = model.edm, model.edm.sigma_steps(4)
    y = torch.tensor([0, 2])
    a = model.generate(y, torch.Generator().manual_seed(3), sampler="dpmpp", steps=4, guidance=0.0)
    b = model.generate(torch.tensor([1, 1]), torch.Generator().manual_seed(3), sampler="dpmpp", steps=4, guidance=0)
    null = torch.full_like(y, 3)                                          # the null class, num_classes
    x0 = torch.randn((2, 1, 16, 16), generator=torch.Generator().manual_seed(3)) * float(sigmas[0])
    with torch.inference_mode():
        ref = SAMPLERS["dpmpp"](lambda x, s: edm.denoise(model.net_ema, x, s, null), x0, sigmas).clamp(-1, 1)
    assert torch.equal(a, b) and torch.equal(a, ref)                   # generate runs F batched, as ref does
    c = model.generate(y, torch.Generator().manual_seed(3), sampler="dpmpp", steps=4, guidance=1.0)
    assert not torch.equal(a, c)


def test_sampler_settings_resolve_defaults_and_reject_misfits():
    model = _tiny()
    assert model.sampler_settings() == {"sampler": "heun", "steps": 32, "guidance": 1.0, "churn": 0.0}
    assert model.sampler_settings(sampler="ddim", steps=10, eta=0.5) == {
        "sampler": "ddim", "steps": 10, "guidance": 1.0, "eta": 0.5}
    assert model.sampler_settings(eta=5.0) == {"sampler": "heun", "steps": 32, "guidance": 1.0, "churn": 5.0}
    assert model.sampler_settings(sampler="dpmpp", eta=None) == {"sampler": "dpmpp", "steps": 32, "guidance": 1.0}
    for bad in ({"sampler": "euler"}, {"sampler": "dpmpp", "eta": 0.3}, {"steps": 0}, {"guidance": -1},
                {"temperature": 1.0}):
        with pytest.raises(MedfabError):
            model.sampler_settings(**bad)


def test_phase_loss_is_a_finite_scalar_with_gradients_and_label_dropout():
    model = _tiny().train()
    x, y = torch.rand(4, 1, 16, 16) * 2 - 1, torch.tensor([0, 1, 2, 0])
    out = model.phase_loss("denoise", x, y, StepContext(step=0, nimg=0, batch_size=4))
    out["loss"].backward()
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    assert all(p.grad is not None for p in model.net.parameters())
    torch.manual_seed(0)
    dropped = model.drop_labels(torch.zeros(10000, dtype=torch.long))
    assert float((dropped == 3).float().mean()) == pytest.approx(0.1, abs=0.01)


def test_ema_half_life_ramps_up_with_images_seen():
    model = _tiny(ema_halflife_kimg=10.0, ema_rampup=0.05)
    assert model.ema_decay_at(StepContext(step=0, nimg=0, batch_size=32)) == 0.0
    # 100 kimg seen: half-life min(10 kimg, 5 kimg) = 5000 images -> beta = 0.5^(32 / 5000)
    assert model.ema_decay_at(StepContext(step=1, nimg=100_000, batch_size=32)) == pytest.approx(0.5 ** (32 / 5000))


def test_3d_network_runs():
    model = _tiny(spatial_dims=3, attn_resolutions=())
    x = model.generate(torch.tensor([0, 1]), torch.Generator().manual_seed(0), sampler="ddim", steps=2)
    assert x.shape == (2, 1, 16, 16, 16)


def test_bad_image_size_is_a_medfab_error():
    with pytest.raises(MedfabError, match="multiple of 8"):
        Diffusion(DiffusionConfig(image_size=36, num_classes=2))


def test_augmentation_is_told_to_the_network_and_off_at_sampling():
    from medfab.models.diffusion.augment import augment

    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 16).view(1, 1, 1, 16).expand(64, 1, 16, 16).contiguous()
    xa, labels = augment(x, p=1.0)
    assert labels.shape == (64, 3) and xa.shape == x.shape
    flipped = labels[:, 0] == 1
    assert 0 < int(flipped.sum()) < 64 and (labels[:, 1:].abs() <= 1).all()
    plain = (labels == 0).all(1)
    assert torch.equal(xa[plain], x[plain])                              # label 0 = untouched
    assert not torch.equal(xa[flipped], x[flipped])
    none, zero = augment(x, p=0.0)
    assert torch.equal(none, x) and (zero == 0).all()
    model = _tiny(augment=0.5).train()
    out = model.phase_loss("denoise", x[:4] * 0.5, torch.tensor([0, 1, 2, 0]), StepContext(0, 0, 4))
    out["loss"].backward()
    assert model.net.aug_embed.weight.grad is not None
    assert model.eval().generate(torch.tensor([1]), torch.Generator().manual_seed(0), steps=2).shape == (1, 1, 16, 16)
