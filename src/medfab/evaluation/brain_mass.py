"""Brain mass: the fraction of each image that is foreground (tissue), real vs synthetic.

A generator that shrinks or inflates the head, or smears tissue into the background, shifts this
distribution even when textures look right. Stages: binarise each image -> per-image foreground fraction ->
two-sample KS test and Wasserstein-1 distance between the real and synthetic fractions.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage, stats
from skimage.filters import threshold_otsu
from skimage.morphology import remove_small_objects

from medfab.errors import MedfabError
from medfab.evaluation.checks import check_images, check_same_size

# Specks: connected components up to 0.1 % of the image (16 px at 128², 4 px minimum) are noise, not tissue.
SPECK_FRACTION = 1e-3


def _speck_size(shape: tuple[int, ...]) -> int:
    return max(4, int(np.prod(shape) * SPECK_FRACTION))


def _clean(mask: np.ndarray) -> np.ndarray:
    """Fill holes (ventricles, dark CSF inside the skull are tissue area) then drop specks."""
    mask = ndimage.binary_fill_holes(mask)
    return remove_small_objects(mask, max_size=_speck_size(mask.shape))


def otsu_threshold(img: np.ndarray) -> float:
    """Otsu threshold of one image; a constant image has no threshold, so nothing is foreground."""
    if img.min() == img.max():
        return float(img.max())
    return float(threshold_otsu(img))


def binarise(x: np.ndarray, method: Literal["otsu", "fixed"] = "otsu", threshold: float | None = None
             ) -> np.ndarray:
    """Foreground masks, bool, same shape as ``x`` (N, 1, H, W) or (N, 1, D, H, W).

    ``otsu``: one Otsu threshold per image (adapts to each image's contrast). ``fixed``: one threshold for
    all images, e.g. :func:`fit_fixed_threshold` on the real set, so real and synthetic are cut by the same
    rule. Pixels strictly above the threshold are foreground; holes are filled and specks removed.
    """
    x = check_images(x)
    if method not in ("otsu", "fixed"):
        raise MedfabError(f"unknown binarisation method {method!r}", "use 'otsu' or 'fixed'")
    if method == "fixed" and threshold is None:
        raise MedfabError("method='fixed' needs a threshold",
                          "learn one on real images with fit_fixed_threshold(real_x)")
    out = np.zeros(x.shape, dtype=bool)
    for i in range(len(x)):
        img = x[i, 0]
        t = otsu_threshold(img) if method == "otsu" else float(threshold)
        out[i, 0] = _clean(img > t)
    return out


def fit_fixed_threshold(real_x: np.ndarray, bins: int = 256) -> float:
    """One threshold learnt on real data: Otsu on the pooled pixel histogram of all real images on [-1, 1]."""
    real_x = check_images(real_x, "real images")
    counts, edges = np.histogram(real_x, bins=bins, range=(-1.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    if (counts > 0).sum() < 2:
        raise MedfabError("real images are constant: no foreground threshold can be learnt",
                          "check that the real set was loaded correctly")
    return float(threshold_otsu(hist=(counts, centres)))


def brain_mass(x: np.ndarray, method: Literal["otsu", "fixed"] = "otsu", threshold: float | None = None
               ) -> np.ndarray:
    """Fraction of foreground pixels per image, float64 (N,) in [0, 1]."""
    masks = binarise(x, method=method, threshold=threshold)       # (N, 1, ...)
    return masks.reshape(len(masks), -1).mean(1).astype(np.float64)


def compare_mass(real_x: np.ndarray, synth_x: np.ndarray, threshold: float | None = None) -> dict:
    """Brain-mass distributions of real vs synthetic images, both cut at one fixed threshold.

    ``threshold=None`` learns it on the real images (:func:`fit_fixed_threshold`). Returns
    ``{"ks", "ks_p", "w1", "real_mean", "synth_mean", "threshold", "real": [...], "synth": [...]}``.
    """
    real_x = check_images(real_x, "real images", min_n=2)
    synth_x = check_images(synth_x, "synthetic images", min_n=2)
    check_same_size(real_x, synth_x)
    t = fit_fixed_threshold(real_x) if threshold is None else float(threshold)
    m_real = brain_mass(real_x, method="fixed", threshold=t)
    m_synth = brain_mass(synth_x, method="fixed", threshold=t)
    ks = stats.ks_2samp(m_real, m_synth)
    return {
        "ks": float(ks.statistic), "ks_p": float(ks.pvalue),
        "w1": float(stats.wasserstein_distance(m_real, m_synth)),
        "real_mean": float(m_real.mean()), "synth_mean": float(m_synth.mean()), "threshold": t,
        "real": m_real.tolist(), "synth": m_synth.tolist(),
    }
