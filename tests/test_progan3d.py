"""progan3d: growth schedule, equalised-lr layers, minibatch stddev, fade-in, losses, sampling, memory message."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from medfab.errors import MedfabError
from medfab.models.base import StepContext
from medfab.models.noise import StackedRandomGenerator
from medfab.models.progan3d import ProGAN3D, ProGAN3DConfig
from medfab.models.progan3d.layers import (
    EqualizedConv,
    EqualizedLinear,
    minibatch_stddev,
    pixel_norm,
    upsample,
)
from medfab.models.progan3d.schedule import GrowthSchedule

TINY = {"image_size": 16, "start_size": 4, "fmap_base": 64, "fmap_max": 16, "z_dim": 8, "fade_kimg": 0.008, "stable_kimg": 0.008,
            "batch_size": 4, "report_memory": False}


def _model(**kw) -> ProGAN3D:
    torch.manual_seed(0)
    return ProGAN3D(ProGAN3DConfig(**{**TINY, "num_classes": 1, "channels": 1, "spatial_dims": 3, **kw}))


# --- schedule: a pure function of images seen --------------------------------------------------------------------
def test_schedule_levels_and_alpha_by_images_seen():
    s = GrowthSchedule(start_size=4, final_size=32, fade_kimg=2.0, stable_kimg=1.0)
    assert s.max_level == 3
    assert s(0).level == 0 and s(999).resolution == 4 and s(999).alpha == 1.0
    assert (s(1000).level, s(1000).alpha) == (1, 0.0)                  # level 1 starts fading at 1 kimg
    assert s(2000).alpha == pytest.approx(0.5) and s(2000).fading
    assert (s(3000).level, s(3000).alpha) == (1, 1.0)                  # stable from 3 kimg ...
    assert (s(3999).level, s(4000).level, s(4000).alpha) == (1, 2, 0.0)  # ... until level 2 fades in at 4 kimg
    assert s.level_start(2) == 4000 and s.level_start(3) == 7000
    assert (s(10_000).level, s(10_000).alpha, s(10**9).resolution) == (3, 1.0, 32)
    alphas = [s(n).alpha for n in range(1000, 3001, 100)]             # ramps 0 -> 1 linearly, monotone
    assert alphas[0] == 0.0 and alphas[-1] == 1.0 and all(b >= a for a, b in itertools.pairwise(alphas))
    assert s(1234) == s(1234) and s(1234) == GrowthSchedule(4, 32, 2.0, 1.0)(1234)    # no state anywhere
    assert [b for b, _ in s.boundaries()] == [0, 1000, 3000, 4000, 6000, 7000, 9000]


def test_schedule_rejects_bad_sizes():
    with pytest.raises(ValueError):
        GrowthSchedule(4, 24, 1, 1)
    with pytest.raises(MedfabError):
        from medfab.models.registry import build_model

        build_model("progan3d", image_size=48, spatial_dims=3)


# --- layers against hand computations ----------------------------------------------------------------------------
def test_equalized_linear_scale_is_he_constant():
    lin = EqualizedLinear(3, 2, gain=2.0)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]]))
        lin.bias.copy_(torch.tensor([0.5, 0.0]))
    x = torch.tensor([[1.0, 1.0, 1.0]])
    c = 2.0 / math.sqrt(3)                                             # gain / sqrt(fan_in)
    assert torch.allclose(lin(x), torch.tensor([[6 * c + 0.5, 0.0]]))


def test_equalized_conv_scale_is_he_constant():
    conv = EqualizedConv(2, 2, 1, 3)                                   # gain sqrt(2), fan_in 2 * 3 * 3 = 18
    with torch.no_grad():
        conv.weight.fill_(1.0)
    out = conv(torch.ones(1, 2, 5, 5))
    c = math.sqrt(2) / math.sqrt(18)                                   # = 1/3
    assert out[0, 0, 2, 2].item() == pytest.approx(18 * c)             # interior: all 18 taps
    assert out[0, 0, 0, 0].item() == pytest.approx(8 * c)              # corner: 2 channels x 2 x 2 taps
    conv3 = EqualizedConv(3, 4, 2, 3)
    assert conv3.scale == pytest.approx(math.sqrt(2) / math.sqrt(4 * 27))
    assert conv3(torch.zeros(1, 4, 4, 4, 4)).shape == (1, 2, 4, 4, 4)
    assert float(conv3.weight.detach().std()) == pytest.approx(1.0, abs=0.2)   # weights drawn from N(0, 1)


def test_minibatch_stddev_by_hand():
    x = torch.tensor([1.0, 5.0, 3.0, 9.0]).view(4, 1, 1, 1)          # (B=4, C=1, 1, 1), groups of 2
    out = minibatch_stddev(x, group=2, eps=0.0)
    # sample i is in group i % 2: {x0, x2} = {1, 3} -> std 1; {x1, x3} = {5, 9} -> std 2 (population std)
    assert out.shape == (4, 2, 1, 1)
    assert torch.equal(out[:, 0], x[:, 0])
    assert out[:, 1].flatten().tolist() == [1.0, 2.0, 1.0, 2.0]
    y = torch.randn(6, 3, 2, 2, 2)                                     # group 4 does not divide 6 -> 3
    s = minibatch_stddev(y, group=4, eps=0.0)[:, 3]
    ref = y.view(3, 2, 3, 2, 2, 2).std(dim=0, unbiased=False).flatten(1).mean(1)
    assert torch.allclose(s[:, 0, 0, 0], ref.repeat(3))


def test_pixel_norm_unit_rms_over_channels():
    x = torch.randn(2, 5, 3, 3, 3) * 7
    assert torch.allclose(pixel_norm(x).pow(2).mean(1), torch.ones(2, 3, 3, 3), atol=1e-4)


# --- networks: growth and fade-in ---------------------------------------------------------------------------------
def test_generator_and_critic_at_every_level_and_fade_in():
    m = _model()
    z, y = torch.randn(4, 8), torch.zeros(4, dtype=torch.long)
    for level, res in enumerate([4, 8, 16]):
        out = m.G(z, y, level, 1.0)
        assert out.shape == (4, 1, res, res, res)
        assert m.D(out, y, level, 1.0).shape == (4,)
    # alpha = 0: the new level contributes nothing; the output is the previous level's, upsampled.
    with torch.no_grad():
        prev = m.G(z, y, 1, 1.0)
        assert torch.allclose(m.G(z, y, 2, 0.0), upsample(prev), atol=1e-6)
        x = torch.randn(4, 1, 16, 16, 16)
        from medfab.models.progan3d.layers import downsample

        assert torch.allclose(m.D(x, y, 2, 0.0), m.D(downsample(x), y, 1, 1.0), atol=1e-5)


def test_critic_chunks_match_separate_calls():
    m = _model()
    y = torch.zeros(4, dtype=torch.long)
    a, b = torch.randn(4, 1, 8, 8, 8), torch.randn(4, 1, 8, 8, 8)
    with torch.no_grad():
        joint = m.D(torch.cat([a, b]), torch.cat([y, y]), 1, 1.0, chunks=2)
        sep = torch.cat([m.D(a, y, 1, 1.0), m.D(b, y, 1, 1.0)])
    assert torch.allclose(joint, sep, atol=1e-5)


def test_grad_checkpoint_gives_the_same_gradients():
    grads = []
    for gc in (False, True):
        m = _model(grad_checkpoint=gc)
        torch.manual_seed(1)
        out = m.phase_loss("D", torch.rand(4, 1, 16, 16, 16) * 2 - 1, torch.zeros(4, dtype=torch.long),
                           StepContext(0, 40, 4))
        out["loss"].backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.D.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


# --- the phase contract ----------------------------------------------------------------------------------------
def test_phases_and_losses_follow_the_contract():
    m = _model(n_critic=2)
    assert [(p.name, p.optimizer, p.interval) for p in m.phases()] == [("D", "D", 1), ("G", "G", 2)]
    assert m.ema_pairs == {"G_ema": "G"} and set(m.configure_optimizers()) == {"G", "D"}
    x, y = torch.rand(4, 1, 16, 16, 16) * 2 - 1, torch.zeros(4, dtype=torch.long)
    d = m.phase_loss("D", x, y, StepContext(0, 12, 4))                # level 1 half faded in at 12 images
    assert d["loss"].requires_grad and {"gp", "w_dist", "alpha"} <= set(d)
    assert all(not v.requires_grad and v.dim() == 0 for k, v in d.items() if k != "loss")
    assert float(d["alpha"]) == pytest.approx(0.5) and float(d["level"]) == 1
    g = m.phase_loss("G", x, y, StepContext(1, 24, 4))
    g["loss"].backward()
    assert all(p.grad is None for p in m.D.parameters())              # G's phase does not train D
    assert any(p.grad is not None for p in m.G.parameters())
    assert int(m.nimg) == 24


def test_conditional_2d_variant_trains():
    m = _model(num_classes=3, spatial_dims=2, channels=2)
    x, y = torch.rand(4, 2, 16, 16) * 2 - 1, torch.tensor([0, 1, 2, 1])
    out = m.phase_loss("D", x, y, StepContext(0, 100, 4))
    assert torch.isfinite(out["loss"])
    assert m.generate(y, torch.Generator().manual_seed(0)).shape == (4, 2, 16, 16)


def test_generate_per_image_seeds_and_stage_upsampling():
    m = _model()
    m.nimg.fill_(0)                                                  # trained only at 4^3: sampled, then upsampled
    y = torch.zeros(3, dtype=torch.long)
    batch = m.generate(y, StackedRandomGenerator([5, 6, 7]))
    assert batch.shape == (3, 1, 16, 16, 16) and batch.dtype == torch.float32
    assert batch.min() >= -1 and batch.max() <= 1
    alone = m.generate(y[:1], StackedRandomGenerator([6]))
    assert torch.allclose(batch[1:2], alone, atol=1e-6)              # image i depends on its own seed alone
    with pytest.raises(MedfabError):
        m.generate(y, None, steps=10)


def test_out_of_memory_names_what_to_lower(monkeypatch):
    m = _model()

    def boom(*a, **k):
        raise RuntimeError("CUDA out of memory. Tried to allocate 8.00 GiB")

    monkeypatch.setattr(m.G, "forward", boom)
    with pytest.raises(MedfabError) as e:
        m.phase_loss("D", torch.zeros(4, 1, 16, 16, 16), torch.zeros(4, dtype=torch.long), StepContext(0, 10**6, 4))
    assert "16^3" in e.value.message and "micro-batch of 4" in e.value.message
    for what in ("--batch-size", "--batch-gpu", "--size", "grad_checkpoint=true"):
        assert what in e.value.hint


def test_stage_memory_is_reported(capsys):
    m = _model(report_memory=True)
    x, y = torch.rand(4, 1, 16, 16, 16) * 2 - 1, torch.zeros(4, dtype=torch.long)
    for nimg in (0, 8):
        m.phase_loss("D", x, y, StepContext(0, nimg, 4))
    text = capsys.readouterr().out
    assert "stage 4^3 stable" in text and "stage 8^3 fade-in" in text and "4^3 stable: peak memory" in text
    assert m.stage_memory["4^3 stable"] > 0
