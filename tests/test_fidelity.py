"""Histogram and brain-mass fidelity metrics: hand-computed values, skimage / scipy references, degradations."""

import numpy as np
import pytest
from _fidelity_images import blur, noise, phantoms
from scipy.spatial.distance import jensenshannon
from skimage.filters import threshold_otsu

from medfab.errors import MedfabError
from medfab.evaluation.brain_mass import binarise, brain_mass, compare_mass, fit_fixed_threshold
from medfab.evaluation.histograms import compare_histograms, intensity_histogram


def _disk(size=32, r=8, inside=0.5, outside=-1.0):
    yy, xx = np.mgrid[:size, :size]
    disk = (yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= r**2
    return np.where(disk, inside, outside).astype(np.float32), disk


def test_js_w1_hand_computed():
    # 2 bins on [-1, 1], centres -0.5 and 0.5: real all in bin 0, synthetic half / half.
    real = np.full((2, 1, 2, 2), -0.5, np.float32)
    synth = np.concatenate([real[:1], np.full((1, 1, 2, 2), 0.5, np.float32)])
    r = compare_histograms(real, synth, bins=2)
    p, q = np.array([1.0, 0.0]), np.array([0.5, 0.5])
    m = (p + q) / 2
    kl = lambda a, b: sum(ai * np.log2(ai / bi) for ai, bi in zip(a, b) if ai > 0)
    assert r["js"] == pytest.approx((kl(p, m) + kl(q, m)) / 2)                       # 0.3113
    assert r["js"] == pytest.approx(jensenshannon(p, q, base=2) ** 2)
    assert r["w1"] == pytest.approx(0.5)        # half the mass moves one bin width (1.0)
    assert r["bins"] == [-1.0, 0.0, 1.0] and r["real"] == [1.0, 0.0] and r["synth"] == [0.5, 0.5]


def test_histogram_density_and_mask():
    x = phantoms(4, seed=1)
    h = intensity_histogram(x, bins=64)
    assert h.shape == (64,) and np.sum(h * 2 / 64) == pytest.approx(1.0)
    img, _ = _disk()
    hm = intensity_histogram(img[None, None], bins=4, mask_background=True)
    assert hm.tolist() == pytest.approx([0, 0, 0, 2.0])    # only the disk (0.5) survives the mask
    same = compare_histograms(x, x)
    assert same["js"] == 0.0 and same["w1"] == 0.0


def test_otsu_matches_skimage_on_bimodal_image():
    rng = np.random.default_rng(0)
    img, disk = _disk(inside=0.3)
    img = img + 0.05 * rng.normal(size=img.shape).astype(np.float32)
    mask = binarise(img[None, None], method="otsu")[0, 0]
    t = threshold_otsu(img)
    assert -1.0 < t < 0.3
    assert np.array_equal(mask, img > t) and np.array_equal(mask, disk)


def test_brain_mass_of_drawn_disk():
    img, disk = _disk(r=8)
    ring = img.copy()
    ring[14:19, 14:19] = -1.0                       # a dark hole inside: filled, still brain area
    speck = img.copy()
    speck[1, 1] = speck[1, 2] = 0.5                 # 2-pixel speck outside: removed
    x = np.stack([img, ring, speck])[:, None]
    expected = disk.sum() / 32**2                   # pixels with (y-16)² + (x-16)² <= 64
    assert disk.sum() == 197
    np.testing.assert_allclose(brain_mass(x), [expected] * 3)
    np.testing.assert_allclose(brain_mass(x, method="fixed", threshold=0.0), [expected] * 3)


def test_fixed_threshold_and_compare_mass():
    small = np.stack([_disk(r=6)[0]] * 5)[:, None]
    large = np.stack([_disk(r=10)[0]] * 5)[:, None]
    t = fit_fixed_threshold(small)
    assert -1.0 <= t < 0.5
    r = compare_mass(small, large)
    assert r["ks"] == 1.0 and r["synth_mean"] > r["real_mean"]
    assert r["w1"] == pytest.approx(r["synth_mean"] - r["real_mean"])
    assert r["real_mean"] == pytest.approx(_disk(r=6)[1].mean())
    same = compare_mass(small, small)
    assert same["ks"] == 0.0 and same["w1"] == 0.0 and same["ks_p"] == 1.0


@pytest.mark.parametrize("bad", ["nan", "size", "empty", "shape"])
def test_image_input_errors(bad):
    a = phantoms(4)
    b = phantoms(4, seed=1)
    if bad == "nan":
        b[0, 0, 3, 3] = np.nan
    elif bad == "size":
        b = b[:, :, :16, :16]
    elif bad == "empty":
        b = b[:0]
    else:
        b = b[:, 0]
    with pytest.raises(MedfabError):
        compare_histograms(a, b)
    with pytest.raises(MedfabError):
        compare_mass(a, b)


def test_histogram_distances_detect_degradations():
    real_a, real_b, real_c = phantoms(48, seed=1), phantoms(48, seed=2), phantoms(48, seed=3)
    base = [compare_histograms(real_a, r) for r in (real_b, real_c)]
    js0, w10 = max(r["js"] for r in base), max(r["w1"] for r in base)
    assert js0 < 0.005 and w10 < 0.05                  # real vs real: near zero
    for degraded in (blur(real_b), noise(real_b)):
        d = compare_histograms(real_a, degraded)
        assert d["js"] > 10 * js0 and d["w1"] > 3 * w10


def test_brain_mass_detects_shrunken_heads():
    real_a, real_b = phantoms(40, seed=1), phantoms(40, seed=2)
    small = phantoms(40, seed=2, big=False)
    base, shrunk = compare_mass(real_a, real_b), compare_mass(real_a, small)
    assert shrunk["w1"] > 3 * base["w1"] and shrunk["synth_mean"] < shrunk["real_mean"]
    assert base["ks_p"] > 0.01 > shrunk["ks_p"]
