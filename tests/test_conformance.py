"""Every registered model works with the one training loop, checkpoints, resume and sampling."""

from __future__ import annotations

import pytest
import torch
from tiny_model import tiny_data

from medfab.models.registry import MODEL_NAMES, VOLUME_ONLY, build_model
from medfab.sampling.fabricate import generate_one
from medfab.training import checkpoint as ckpt
from medfab.training.loop import fit

SIZE = 32          # the smallest size every model accepts (pix2pix's map must be at most half the image)
SMALL = {"vae": {"width": 8},                                  # narrow networks: seconds, not minutes
         "diffusion": {"base": 8, "mults": (1, 2), "steps": 2},
         "ldm": {"base": 8, "mults": (1, 2), "attn_resolutions": (4,), "ae_width": 8, "disc_width": 8,
                 "disc_layers": 2, "ae_kimg": 0.008, "disc_kimg": 0.004, "steps": 2}}   # all 3 stages in 4 steps
SMALL_GAN = {"g_width": 8, "d_width": 8}
STEPS_KIMG = 0.016                                             # 4 steps of 4 images


def _build(name: str, num_classes: int, seed: int = 0):
    torch.manual_seed(seed)
    model, _ = build_model(name, image_size=SIZE, num_classes=num_classes, batch_size=4,
                           **SMALL.get(name, SMALL_GAN))
    return model


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.skip(reason=f"{n} is 3D-only: see test_model_trains_and_samples_volumes"))
    if n in VOLUME_ONLY else n for n in MODEL_NAMES])
def test_model_trains_saves_resumes_and_samples(name, tmp_path):
    torch.set_num_threads(1)
    data = tiny_data(counts=(3, 2, 2), size=SIZE)

    ref = _build(name, 3)
    fit(ref, data, out=tmp_path / "ref", kimg=STEPS_KIMG, progress=False, config={}, log_every=1)
    losses = (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()
    assert len(losses) == 4 and "NaN" not in "".join(losses)

    # Interrupted after 2 steps, resumed (from a differently seeded model) to 4: the same weights.
    fit(_build(name, 3), data, out=tmp_path / "run", kimg=STEPS_KIMG / 2, progress=False, config={})
    resumed = _build(name, 3, seed=99)
    fit(resumed, data, out=tmp_path / "run", kimg=STEPS_KIMG, progress=False, config={})
    a, b = _state(ref), _state(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{name}: {k} differs after resume"

    loaded, cfg = ckpt.load_run(tmp_path / "ref")
    for k, v in _state(loaded).items():
        assert torch.equal(v, a[k]), f"{name}: {k} not restored by load_run"
    assert cfg["model"]["name"] == name and not loaded.training

    y = torch.tensor([0, 1, 2, 2])
    x1 = loaded.generate(y, generator=torch.Generator().manual_seed(5))
    x2 = loaded.generate(y, generator=torch.Generator().manual_seed(5))
    x3 = loaded.generate(y, generator=torch.Generator().manual_seed(6))
    assert x1.shape == (4, 1, SIZE, SIZE) and x1.dtype == torch.float32
    assert torch.isfinite(x1).all() and x1.min() >= -1 and x1.max() <= 1
    assert torch.equal(x1, x2) and not torch.equal(x1, x3)
    assert (generate_one(loaded, 2, 7) == generate_one(loaded, 2, 7)).all()


# Volumes: the families whose networks take spatial_dims, at tiny 3D sizes (their smallest accepted side).
SMALL_3D = {"vae": (16, {"width": 4}),
            "diffusion": (8, {"base": 8, "mults": (1, 2), "steps": 2, "attn_resolutions": ()}),
            "progan3d": (8, {"fmap_base": 32, "fmap_max": 8, "z_dim": 4, "fade_kimg": 0.004, "stable_kimg": 0.004,
                             "report_memory": False})}


@pytest.mark.parametrize("name", sorted(SMALL_3D))
def test_model_trains_and_samples_volumes(name, tmp_path):
    torch.set_num_threads(1)
    size, fields = SMALL_3D[name]
    data = tiny_data(counts=(2, 2), size=size, spatial_dims=3)
    torch.manual_seed(0)
    model, _ = build_model(name, image_size=size, num_classes=2, spatial_dims=3, batch_size=2, **fields)
    fit(model, data, out=tmp_path / "run", kimg=0.008, progress=False, config={}, log_every=1, grid_every=1000.0)
    assert "NaN" not in (tmp_path / "run" / "metrics.jsonl").read_text()
    loaded, _ = ckpt.load_run(tmp_path / "run")
    x = generate_one(loaded, 1, 3)
    assert x.shape == (1, size, size, size) and (x == generate_one(loaded, 1, 3)).all()
