"""Every registered model works with the one training loop, checkpoints, resume and sampling."""

from __future__ import annotations

import pytest
import torch
from tiny_model import tiny_data

from medfab.models.registry import MODEL_NAMES, build_model
from medfab.sampling.fabricate import generate_one
from medfab.training import checkpoint as ckpt
from medfab.training.loop import fit

SIZE = 32          # the smallest size every model accepts (pix2pix's map must be at most half the image)
SMALL = {"vae": {"width": 8}}                                  # narrow networks: seconds, not minutes
SMALL_GAN = {"g_width": 8, "d_width": 8}
STEPS_KIMG = 0.016                                             # 4 steps of 4 images


def _build(name: str, num_classes: int, seed: int = 0):
    torch.manual_seed(seed)
    model, _ = build_model(name, image_size=SIZE, num_classes=num_classes, batch_size=4,
                           **SMALL.get(name, SMALL_GAN))
    return model


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", MODEL_NAMES)
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
