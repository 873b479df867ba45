"""MS-SSIM diversity, PRDC and the collapse check, against torchmetrics / the prdc package and known degradations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medfab.errors import MedfabError
from medfab.evaluation.diversity import PAPER_BETAS, collapse_check, msssim_pairs, msssim_scales, random_pairs
from medfab.evaluation.prdc import prdc

torch.set_num_threads(1)


def smooth_fields(n: int, size: int, seed: int, sigma: float = 2.0) -> np.ndarray:
    """(n, 1, size, size) smooth random images in [-1, 1]: a diverse 'real' set."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.normal(size=(n, 1, size, size)), sigma=(0, 0, sigma, sigma))
    x /= np.abs(x).max(axis=(1, 2, 3), keepdims=True)
    return x.astype(np.float32)


def blobs(n: int, size: int, seed: int, top: bool) -> np.ndarray:
    """(n, 1, size, size) bright Gaussian blobs, in the top or bottom half, on a dark background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cy = rng.uniform(0.15, 0.35, n) * size + (0 if top else size / 2)
    cx = rng.uniform(0.2, 0.8, n) * size
    r = size / 10
    g = np.exp(-((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2) / (2 * r * r))
    return (2 * g - 1)[:, None].astype(np.float32)


@pytest.mark.parametrize("size", [64, 128, 176])
def test_msssim_matches_torchmetrics_on_the_same_pairs(size):
    from torchmetrics.image import MultiScaleStructuralSimilarityIndexMeasure

    x = smooth_fields(10, size, seed=size)
    out = msssim_pairs(x, n_pairs=12, seed=3)
    i, j = random_pairs(len(x), 12, seed=3)
    assert (i != j).all()
    betas = msssim_scales((size, size))
    assert len(betas) == {64: 3, 128: 4, 176: 5}[size]
    kwargs = {} if size == 176 else {"betas": betas}     # at 176 px: the stock 5-scale metric
    ref = MultiScaleStructuralSimilarityIndexMeasure(data_range=2.0, reduction="none", **kwargs)
    ref.update(torch.as_tensor(x[i]), torch.as_tensor(x[j]))
    np.testing.assert_allclose(out["values"], ref.compute().numpy(), rtol=1e-5, atol=1e-6)
    assert out["mean"] == pytest.approx(np.mean(out["values"]))
    assert out == msssim_pairs(x, n_pairs=12, seed=3)                     # deterministic in the seed


def test_msssim_scales_rule():
    assert msssim_scales((256, 256)) == PAPER_BETAS
    for side, n in [(11, 1), (16, 2), (32, 2), (64, 3), (128, 4), (176, 5)]:
        b = msssim_scales((side, side))
        assert len(b) == n and sum(b) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(MedfabError):
        msssim_scales((10, 10))
    with pytest.raises(MedfabError):
        msssim_pairs(smooth_fields(1, 32, 0))             # one image: no pair


def test_duplicates_raise_msssim():
    diverse = smooth_fields(20, 64, seed=1)
    dup = np.repeat(diverse[:1], 20, axis=0)
    assert msssim_pairs(dup, 20)["mean"] == pytest.approx(1.0, abs=1e-5)
    assert msssim_pairs(diverse, 20)["mean"] < 0.5


@pytest.mark.parametrize("k", [3, 5])
def test_prdc_matches_reference_package(k, capsys):
    from prdc import compute_prdc

    rng = np.random.default_rng(k)
    real = rng.normal(size=(300, 12))
    fake = rng.normal(size=(260, 12)) * 1.2 + 0.3
    ours = prdc(real, fake, k=k, block=64)                 # small blocks: exercise the blockwise path
    ref = compute_prdc(real, fake, nearest_k=k)
    for name in ("precision", "recall", "density", "coverage"):
        assert ours[name] == pytest.approx(float(ref[name]), abs=1e-12), name


def test_prdc_dropped_class_lowers_coverage_and_recall():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0] * 8, [6.0] * 8])
    real = np.concatenate([rng.normal(size=(200, 8)) + c for c in centres])
    same = np.concatenate([rng.normal(size=(200, 8)) + c for c in centres])
    dropped = rng.normal(size=(400, 8)) + centres[0]        # the generator forgot the second class
    good, bad = prdc(real, same), prdc(real, dropped)
    assert good["coverage"] > 0.9 and good["recall"] > 0.9
    assert bad["coverage"] < 0.55 and bad["recall"] < 0.55
    assert bad["precision"] > 0.8                           # what it does make still looks real
    with pytest.raises(MedfabError):
        prdc(real[:5], same, k=5)


def test_collapse_check_flags_duplicates_and_dropped_class():
    real = np.concatenate([blobs(30, 32, 0, top=True), blobs(30, 32, 1, top=False)])
    fresh = np.concatenate([blobs(30, 32, 2, top=True), blobs(30, 32, 3, top=False)])
    ok = collapse_check(real, fresh)
    assert not ok["collapsed"] and ok["coverage"] > 0.8, ok["message"]
    noise = np.random.default_rng(4).normal(0, 0.01, real.shape).astype(np.float32)
    dup = np.clip(np.repeat(real[:1], 60, axis=0) + noise, -1, 1)          # one image, 60 times
    bad = collapse_check(real, dup)
    assert bad["collapsed"] and bad["msssim_synth"] > ok["msssim_synth"] and "collapse" in bad["message"]
    one_class = np.concatenate([blobs(60, 32, 5, top=True)])                # the bottom class dropped
    dropped = collapse_check(real, one_class)
    assert dropped["coverage"] < 0.6 * ok["coverage"]
