"""Diversity within a set of images (MS-SSIM between random pairs) and a plain-language mode-collapse check.

MS-SSIM (Wang, Simoncelli & Bovik 2003) between two *different* images of one set measures how alike the set's
members are: higher = less diverse. A generator that has collapsed onto a few outputs shows a mean pairwise
MS-SSIM far above that of the real images of the same class (Odena et al. 2017 used it the same way).

Computed with torchmetrics' functional MS-SSIM (data_range 2), checked against its class in the tests.

Small images and the number of scales
-------------------------------------
Standard MS-SSIM uses an 11-tap Gaussian window (sigma 1.5) at 5 scales, which torchmetrics only accepts for
images of at least 176 pixels a side. medfab keeps the window (so every scale measures the same thing as in the
paper) and drops the *coarsest* scales until the image is large enough: 5 scales from 176 px, 4 scales at
128 px, 3 at 64 px, 2 at 32 px, 1 (plain SSIM) at 11-16 px. The exponents of the kept scales are the paper's
first ones, rescaled to sum to 1 (as the original 5 nearly do), so a value stays in [0, 1]. Values are
therefore only comparable between sets of the same image size - which is how :func:`collapse_check` uses them.
"""

from __future__ import annotations

import numpy as np

from medfab.errors import MedfabError

#: Exponents of the five scales, finest first (Wang et al. 2003, as in torchmetrics).
PAPER_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
KERNEL_SIZE = 11   # nominal window; with sigma 1.5 torchmetrics builds exactly an 11-tap Gaussian
SIGMA = 1.5


def check_images(x, name: str, *, min_n: int = 1) -> np.ndarray:
    """Validate an image array (N, 1, H, W) or (N, 1, D, H, W) in [-1, 1]; return it as float32."""
    x = np.asarray(x)
    if x.ndim not in (4, 5):
        raise MedfabError(f"{name} has shape {x.shape}; expected (N, C, H, W) or (N, C, D, H, W)",
                          "pass TensorSet.x, or add the channel axis with x[:, None]")
    if len(x) < min_n:
        raise MedfabError(f"{name} has {len(x)} image(s); this measure needs at least {min_n}",
                          "fabricate or load more images for this set (or this class)")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise MedfabError(f"{name} contains NaN or infinite values", "check the generator's output")
    return x


def msssim_scales(shape: tuple[int, ...]) -> tuple[float, ...]:
    """Exponents (one per scale, finest first) usable for images with spatial ``shape``; see module docstring.

    torchmetrics accepts ``n`` scales when ``side // max(1, n - 1) ** 2 > KERNEL_SIZE - 1``, and its reflection
    padding needs the coarsest scale, ``side // 2 ** (n - 1)``, to exceed half the window.
    """
    side = min(shape)
    for n in range(len(PAPER_BETAS), 0, -1):
        if side // max(1, n - 1) ** 2 > KERNEL_SIZE - 1 and side >> (n - 1) > KERNEL_SIZE // 2:
            if n == len(PAPER_BETAS):
                return PAPER_BETAS              # standard MS-SSIM, exactly torchmetrics' default
            b = np.asarray(PAPER_BETAS[:n])
            return tuple(float(v) for v in b / b.sum())
    raise MedfabError(f"images of {shape} pixels are too small for MS-SSIM (needs at least {KERNEL_SIZE} a side)",
                      "load or fabricate the images at 32 pixels or more")


def msssim_batch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MS-SSIM of each pair (a[i], b[i]) for images in [-1, 1]: (B,) float64.

    ``normalize='relu'`` clips negative contrast terms to 0 (torchmetrics' class default), because a negative
    base raised to a fractional exponent would be NaN for two unrelated, anti-correlated images.
    """
    import torch
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as ms_ssim

    betas = msssim_scales(a.shape[2:])
    with torch.no_grad():
        v = ms_ssim(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32),
                    gaussian_kernel=True, sigma=SIGMA, kernel_size=KERNEL_SIZE, reduction="none",
                    data_range=2.0, betas=betas, normalize="relu")
    return v.double().numpy().reshape(-1)


def random_pairs(n: int, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` index pairs (i, j), i != j, drawn uniformly from range(n); deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, n_pairs)
    j = (i + rng.integers(1, n, n_pairs)) % n     # offset in 1..n-1: never the same image
    return i, j


def msssim_pairs(x, n_pairs: int = 200, seed: int = 0, *, batch_size: int = 64) -> dict:
    """Mean, std and values of MS-SSIM over ``n_pairs`` random pairs of distinct images of ``x`` (N, 1, H, W).

    Higher = less diverse (1.0 = all pairs identical). Deterministic in ``seed``.
    """
    x = check_images(x, "the image set", min_n=2)
    if n_pairs < 1:
        raise MedfabError(f"n_pairs must be at least 1, got {n_pairs}", "use the default of 200 pairs")
    msssim_scales(x.shape[2:])        # fail early, with the size message
    i, j = random_pairs(len(x), n_pairs, seed)
    values = np.concatenate([msssim_batch(x[i[s:s + batch_size]], x[j[s:s + batch_size]])
                             for s in range(0, n_pairs, batch_size)])
    return {"mean": float(values.mean()), "std": float(values.std()), "values": [float(v) for v in values],
            "n_pairs": int(n_pairs), "scales": len(msssim_scales(x.shape[2:]))}


def pixel_features(x: np.ndarray, side: int = 16) -> np.ndarray:
    """Fallback features when none are given: the image area-averaged to ``side`` pixels a side, flattened.

    Coarse on purpose: at 16x16 the layout (anatomy, lesion position) dominates and pixel noise averages out.
    """
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(x, dtype=torch.float32)
    pool = F.adaptive_avg_pool2d if t.ndim == 4 else F.adaptive_avg_pool3d
    return pool(t, side).flatten(1).double().numpy()     # (N, C * side^d)


#: Collapse rule (see :func:`collapse_check`).
DISSIMILARITY_RATIO = 0.5
MIN_COVERAGE = 0.3


def collapse_check(real_x, synth_x, real_f=None, synth_f=None, *, n_pairs: int = 200, seed: int = 0,
                   k: int = 5) -> dict:
    """Warn when a (class of a) synthetic set has collapsed. Compare one class at a time.

    The rule: ``collapsed`` when either
      * the synthetic pairs are less than half as *dissimilar* as the real pairs,
        ``1 - msssim_synth < 0.5 * (1 - msssim_real)`` (e.g. real 0.40 -> synthetic above 0.70), or
      * coverage (Naeem et al. 2020, k=5) is below 0.3: fewer than 30 % of real images have a synthetic one in
        their neighbourhood. For two samples of one distribution coverage is about 1 - 2^-k = 0.97.
    ``real_f`` / ``synth_f`` are feature arrays (N, F); without them coverage uses 16x16 pixel features.
    Coverage also falls when the synthetic set is much smaller than the real one: compare sets of similar size.
    """
    from medfab.evaluation.prdc import prdc

    real_x = check_images(real_x, "the real images", min_n=max(2, k + 1))
    synth_x = check_images(synth_x, "the synthetic images", min_n=max(2, k + 1))
    if (real_f is None) != (synth_f is None):
        raise MedfabError("give features for both sets or for neither", "pass real_f and synth_f together")
    if real_f is None:
        real_f, synth_f = pixel_features(real_x), pixel_features(synth_x)
    m_real = msssim_pairs(real_x, n_pairs, seed)["mean"]
    m_synth = msssim_pairs(synth_x, n_pairs, seed)["mean"]
    coverage = prdc(real_f, synth_f, k=k)["coverage"]
    reasons = []
    if 1 - m_synth < DISSIMILARITY_RATIO * (1 - m_real):
        reasons.append(f"synthetic images are much more alike (MS-SSIM {m_synth:.2f}) than real ones "
                       f"({m_real:.2f})")
    if coverage < MIN_COVERAGE:
        reasons.append(f"they cover only {coverage:.0%} of the real images' neighbourhoods")
    if reasons:
        message = ("Possible mode collapse: " + "; ".join(reasons)
                   + ". Train longer, lower the learning rate, or try another model (e.g. the VAE).")
    else:
        message = f"No sign of collapse (MS-SSIM {m_synth:.2f} vs real {m_real:.2f}, coverage {coverage:.0%})."
    return {"collapsed": bool(reasons), "msssim_real": m_real, "msssim_synth": m_synth,
            "coverage": float(coverage), "message": message}
