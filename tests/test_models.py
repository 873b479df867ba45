"""The four generative models against the GenerativeModel contract, plus DiffAugment, EMA and input checks.

Tiny networks (32x32, batch 4, widths 8) so the whole file runs in seconds on a shared CPU.
"""

from __future__ import annotations

import math

import pytest
import torch

from medfab.errors import MedfabError
from medfab.models import diffaug
from medfab.models.ema import ema_decay, make_ema, update_ema
from medfab.models.registry import MODEL_NAMES, VOLUME_ONLY, build_model
from medfab.training.step import train_step

SMALL = {  # shrink widths only; every other setting is the model's default
    "pix2pix": {"g_width": 8, "d_width": 8, "map_width": 8},
    "dcgan": {"g_width": 8, "d_width": 8},
    "wgan-gp": {"g_width": 8, "d_width": 8, "n_critic": 2},
    "vae": {"width": 8},
    "diffusion": {"base": 8, "mults": (1, 2), "steps": 2},
    "ldm": {"base": 8, "mults": (1, 2), "attn_resolutions": (4,), "ae_width": 8, "disc_width": 8, "disc_layers": 2,
            "ae_kimg": 0.0, "steps": 2},          # straight to the denoise stage (conformance: all stages)
}


# The checks below are 2D (32x32 images); a volume-only model is tested on volumes in test_conformance.py
# (test_model_trains_and_samples_volumes), test_sampling.py and test_progan3d*.py.
NAMES_2D = [pytest.param(n, marks=pytest.mark.skip(reason=f"{n} is 3D-only; its volume tests are in "
                                                            "test_conformance.py and test_progan3d*.py"))
            if n in VOLUME_ONLY else n for n in MODEL_NAMES]


def _build(name: str, **extra):
    return build_model(name, image_size=32, num_classes=3, **SMALL[name], **extra)[0]


def _batch(seed: int = 0, size: int = 32, dims: int = 2):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((4, 1) + (size,) * dims, generator=g) * 2 - 1      # (4, 1, S, S)
    return x, torch.tensor([0, 1, 2, 1])


def _gen(model, y, seed):
    return model.generate(y, torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=NAMES_2D)
def trained(request):
    """(name, model, losses of two steps) for each registered model."""
    torch.manual_seed(0)
    model = _build(request.param)
    opt = model.configure_optimizers()
    x, y = _batch()
    losses = [train_step(model, x, y, step, opt) for step in range(2)]
    return request.param, model, losses


def test_train_step_losses_finite(trained):
    _, _, losses = trained
    for out in losses:
        assert out and all(isinstance(v, float) and torch.isfinite(torch.tensor(v)) for v in out.values())


def test_generate_shape_range_and_seeds(trained):
    _, model, _ = trained
    y = torch.tensor([0, 1, 2, 0])
    a, b, c = _gen(model, y, 1), _gen(model, y, 1), _gen(model, y, 2)
    assert a.shape == (4, 1, 32, 32) and a.dtype == torch.float32
    assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b)                      # same generator seed -> identical images
    assert (a - c).abs().max() > 1e-4             # another seed -> other images


def test_class_changes_output(trained):
    _, model, _ = trained
    a = _gen(model, torch.zeros(2, dtype=torch.long), 3)
    b = _gen(model, torch.full((2,), 2, dtype=torch.long), 3)
    assert (a - b).abs().max() > 1e-4


def test_state_dict_round_trip(trained):
    name, model, _ = trained
    clone = _build(name)
    clone.load_state_dict(model.state_dict())
    y = torch.tensor([2, 1, 0])
    assert torch.equal(_gen(model, y, 5), _gen(clone, y, 5))


@pytest.mark.parametrize("name", NAMES_2D)
def test_train_step_deterministic_given_global_rng(name):
    runs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = _build(name)
        opt = model.configure_optimizers()
        x, y = _batch(1)
        runs.append((train_step(model, x, y, 0, opt), _gen(model, y, 0)))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("name", NAMES_2D)
def test_non_finite_loss_is_returned_not_stepped(name):
    torch.manual_seed(0)
    model = _build(name)
    opt = model.configure_optimizers()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _batch()
    x[0, 0, 0, 0] = float("nan")
    out = train_step(model, x, y, 0, opt)
    assert any(math.isnan(v) for v in out.values())      # a NaN reaches the loop, which stops
    changed = [k for k, v in model.state_dict().items()
               if v.is_floating_point() and "running" not in k and not torch.equal(v, before[k])
               and not k.endswith(("_u", "_v"))]  # BN stats / SN power-iteration vectors move in forward
    # pix2pix's stage A sees the NaN only through an average map (also NaN) -> nothing may be stepped
    assert changed == []


@pytest.mark.parametrize(("name", "extra"), [
    ("dcgan", {"loss": "ns", "r1_gamma": 1.0, "d_norm": "batch", "d_spectral_norm": False, "diffaug": "none"}),
    ("vae", {"recon": "gaussian", "ema": True}),
    ("pix2pix", {"d_norm": "batch", "d_spectral_norm": False, "ema": False}),
    ("wgan-gp", {"critic_norm": "group", "drift": 0.0}),
])
def test_non_default_options_train(name, extra):
    torch.manual_seed(0)
    model = _build(name, **extra)
    opt = model.configure_optimizers()
    x, y = _batch()
    out = train_step(model, x, y, 0, opt)
    assert all(math.isfinite(v) for v in out.values())
    if name == "dcgan":
        assert out["r1"] > 0
    assert _gen(model, y, 0).shape == (4, 1, 32, 32)


@pytest.mark.parametrize("name", ["dcgan", "vae"])
def test_3d_volumes(name):
    torch.manual_seed(0)
    model = build_model(name, image_size=32, num_classes=2, spatial_dims=3, **SMALL[name])[0]
    opt = model.configure_optimizers()
    x = torch.rand(2, 1, 32, 32, 32) * 2 - 1
    out = train_step(model, x, torch.tensor([0, 1]), 0, opt)
    assert all(torch.isfinite(torch.tensor(v)) for v in out.values())
    assert _gen(model, torch.tensor([1, 0]), 0).shape == (2, 1, 32, 32, 32)


@pytest.mark.parametrize("size", [64, 128])
def test_larger_sizes_build_and_generate(size):
    for name in (n for n in MODEL_NAMES if n not in VOLUME_ONLY):     # 3D-only models: see NAMES_2D
        model = build_model(name, image_size=size, num_classes=2, **SMALL[name])[0]
        assert _gen(model, torch.tensor([0, 1]), 0).shape == (2, 1, size, size)


def test_vae_api_shapes_and_determinism():
    model = _build("vae", latent_dim=16)
    x, y = _batch()
    mu, logvar = model.encode(x, y)
    assert mu.shape == logvar.shape == (4, 16)
    assert model.decode(mu, y).shape == (4, 1, 32, 32)
    r1, r2 = model.reconstruct(x, y), model.reconstruct(x, y)
    assert r1.shape == x.shape and torch.equal(r1, r2)
    assert torch.allclose(model.reconstruct(x[:1], y[:1]), r1[:1], atol=1e-5)   # batch-independent


def test_vae_kl_matches_closed_form_and_warmup():
    model = _build("vae", beta=2.0, kl_warmup_kimg=0.5)
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0 * torch.log(torch.tensor(2.0))]])
    _, kl = model.loss_terms(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), mu, logvar)
    # KL(N(1, 1) || N(0, 1)) = 0.5; KL(N(0, 4) || N(0, 1)) = 0.5 * (4 - 1 - ln 4)
    expected = 0.5 + 0.5 * (4 - 1 - torch.log(torch.tensor(4.0)))
    assert torch.isclose(kl, expected)
    assert model.beta_at(100) == pytest.approx(0.4) and model.beta_at(500) == 2.0 and model.beta_at(5000) == 2.0


def test_vae_legacy_warmup_in_steps_loads_as_images_seen():
    """A run saved before the warm-up moved to images seen keeps its schedule (500 steps x batch 64)."""
    from medfab.models.vae import VAEConfig

    cfg = VAEConfig(kl_warmup_steps=500, batch_size=64)
    assert cfg.kl_warmup_kimg == 32.0 and "kl_warmup_steps" not in cfg.model_dump()


@pytest.mark.parametrize("name, old, new", [("vae", "kl_warmup_steps", "kl_warmup_kimg"),
                                            ("pix2pix", "map_kl_warmup_steps", "map_kl_warmup_kimg")])
def test_legacy_step_keys_pass_the_unknown_key_check(name, old, new):
    """`medfab sample` on a run saved with the old key rebuilds the model through the registry, whose
    unknown-key check once ran before the conversion ('unknown setting kl_warmup_steps')."""
    from medfab.training.checkpoint import build_from_config
    from medfab.training.config import split_fields

    model = build_from_config({"model": {"name": name, "image_size": 32, "batch_size": 64, old: 500}})
    assert getattr(model.config, new) == 32.0
    fields, _ = split_fields(name, {old: 500, "batch_size": 64})
    assert fields[new] == 32.0 and old not in fields


def test_diffaugment_seeded_and_differentiable():
    x = torch.randn(3, 1, 16, 16, requires_grad=True)
    policy = diffaug.parse_policy("translation,cutout,color")
    a = diffaug.diff_augment(x, policy, generator=torch.Generator().manual_seed(0))
    b = diffaug.diff_augment(x, policy, generator=torch.Generator().manual_seed(0))
    c = diffaug.diff_augment(x, policy, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    v = diffaug.diff_augment(torch.randn(2, 1, 8, 8, 8), policy)     # 3D volumes too
    assert v.shape == (2, 1, 8, 8, 8)


def test_diffaugment_transforms_by_hand():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    shifted = diffaug.apply(x, diffaug.AugmentParams(shift=torch.tensor([[1, -1]])))
    expected = torch.full((4, 4), diffaug.FILL)
    expected[1:, :3] = x[0, 0, :3, 1:]            # down one row, left one column, background shifted in
    assert torch.equal(shifted[0, 0], expected)
    cut = diffaug.apply(x, diffaug.AugmentParams(cut_centre=torch.tensor([[0, 0]]), cut_size=(2, 2)))
    assert torch.equal(cut[0, 0, :2, :2], torch.full((2, 2), diffaug.FILL))
    assert cut[0, 0, 2, 2] == x[0, 0, 2, 2]
    params = diffaug.AugmentParams(brightness=torch.tensor([1.0]), contrast=torch.tensor([2.0]))
    col = diffaug.apply(x, params)
    assert torch.allclose(col, (x + 1 - (x + 1).mean()) * 2 + (x + 1).mean())
    with pytest.raises(MedfabError, match="translation"):
        diffaug.parse_policy("translation,flip")


def test_ema_warmup_and_update():
    assert ema_decay(0, 0.999) == pytest.approx(0.1) and ema_decay(10**6, 0.999) == 0.999
    net = torch.nn.Linear(2, 1)
    ema = make_ema(net)
    with torch.no_grad():
        net.weight.add_(1.0)
    expected = ema.weight * 0.1 + net.weight * 0.9
    update_ema(ema, net, step=0, decay=0.999)
    assert torch.allclose(ema.weight, expected) and not ema.weight.requires_grad


def test_config_errors_have_hints():
    with pytest.raises(MedfabError, match="did you mean 'beta'"):
        build_model("vae", betaa=1.0)
    with pytest.raises(MedfabError, match="power of two"):
        build_model("dcgan", image_size=48)
    with pytest.raises(MedfabError, match="map_size"):
        build_model("pix2pix", image_size=16)
    with pytest.raises(MedfabError, match="DiffAugment"):
        build_model("wgan-gp", diffaug="translation,zoom")
    with pytest.raises(MedfabError, match="label"):
        _build("dcgan").generate(torch.tensor([5]))
