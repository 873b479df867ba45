"""Distances between two sets of per-image features: Fréchet distance, KID, and bootstrap intervals.

Stages (STYLE.md): features (any extractor in :mod:`medfab.evaluation.features`) -> statistics (mean and
covariance, or kernel sums) -> score. The functions take features, never images, so the extractor is swapped
freely (pixel PCA, the medical feature network, radiomics = FRD).

References: Heusel et al. 2017 (FID, eq. 6); Bińkowski et al. 2018 (KID: unbiased MMD² with the cubic
polynomial kernel); MONAI ``metrics/fid.py`` and torchmetrics ``image/kid.py`` are the reference
implementations the tests compare against.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import scipy.linalg

from medfab.errors import MedfabError
from medfab.evaluation.checks import check_features, check_pair

_BLAS = None


def one_blas_thread():
    """Context: single-threaded BLAS. These matrices are small (100 x 100 kernels, F x F covariances), so
    threads only add hand-off cost; on a loaded 2-core machine multithreaded OpenBLAS was 25x slower."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def gaussian_stats(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and unbiased covariance (F, F) in float64."""
    f = check_features(f)
    return f.mean(0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_from_stats(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray,
                       *, eps: float = 1e-6) -> float:
    """d² = |mu1 - mu2|² + tr(S1 + S2 - 2 (S1 S2)^½) (Heusel et al. eq. 6), as MONAI computes it."""
    diff = mu1 - mu2
    with warnings.catch_warnings():          # singular products are handled below, not worth a warning
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        # Near-singular product (fewer images than features, constant features): regularise both covariances.
        offset = np.eye(len(s1)) * eps
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        # Round-off gives tiny imaginary parts; a large one means the statistics are broken.
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise MedfabError(
                f"Fréchet distance is ill-conditioned (imaginary part {np.abs(covmean.imag).max():.3g})",
                "use more images than feature dimensions, or a lower-dimensional feature extractor",
            )
        covmean = covmean.real
    d = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    if not np.isfinite(d):
        raise MedfabError("Fréchet distance is not finite", "check the features for extreme values")
    return max(d, 0.0)        # tiny negative values are round-off of identical statistics


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to features ``f1`` (N1, F) and ``f2`` (N2, F); float64."""
    f1, f2 = check_pair(f1, f2)
    with one_blas_thread():
        return frechet_from_stats(*gaussian_stats(f1), *gaussian_stats(f2))


def poly_mmd2(a: np.ndarray, b: np.ndarray, *, degree: int = 3, gamma: float | None = None,
              coef: float = 1.0) -> float:
    """Unbiased MMD² of ``a`` (m, F) and ``b`` (m, F) with k(x, y) = (gamma x·y + coef)^degree.

    Same estimator as torchmetrics ``maximum_mean_discrepancy`` (diagonals of k_xx, k_yy dropped, the cross
    term divided by m²).
    """
    gamma = 1.0 / a.shape[1] if gamma is None else gamma
    k_xx = (a @ a.T * gamma + coef) ** degree
    k_yy = (b @ b.T * gamma + coef) ** degree
    k_xy = (a @ b.T * gamma + coef) ** degree
    m = len(a)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / m**2)


def kid(f1: np.ndarray, f2: np.ndarray, subset_size: int = 100, n_subsets: int = 50, seed: int = 0,
        *, degree: int = 3, gamma: float | None = None, coef: float = 1.0) -> tuple[float, float]:
    """Kernel Inception Distance: mean and (population) std of unbiased MMD² over random subsets.

    Each subset draws ``subset_size`` rows of each set without replacement (as torchmetrics). A set
    smaller than ``subset_size`` shrinks the subset to the smaller set's size rather than failing,
    so small evaluation runs still get a value; at least 2 rows per set are needed.
    """
    f1, f2 = check_pair(f1, f2)
    if subset_size < 2 or n_subsets < 1:
        raise MedfabError(f"KID needs subset_size >= 2 and n_subsets >= 1, got {subset_size}, {n_subsets}",
                          "use the defaults (subset_size=100, n_subsets=50)")
    m = min(subset_size, len(f1), len(f2))
    rng = np.random.default_rng(seed)
    with one_blas_thread():
        return _kid_subsets(f1, f2, m, n_subsets, rng, degree=degree, gamma=gamma, coef=coef)


def _kid_subsets(f1, f2, m, n_subsets, rng, **kernel) -> tuple[float, float]:
    scores = np.empty(n_subsets)
    for i in range(n_subsets):
        a = f1[rng.choice(len(f1), m, replace=False)]
        b = f2[rng.choice(len(f2), m, replace=False)]
        scores[i] = poly_mmd2(a, b, **kernel)
    return float(scores.mean()), float(scores.std())


def _scalar(v) -> float:
    """A metric may return a float or (value, spread) like :func:`kid`; the interval is on the value."""
    return float(v[0] if isinstance(v, tuple) else v)


def bootstrap(fn: Callable[[np.ndarray, np.ndarray], float | tuple], f1: np.ndarray, f2: np.ndarray,
              n_boot: int = 100, seed: int = 0, sample_size: int | None = None) -> dict:
    """95 % percentile bootstrap interval of ``fn(f1, f2)``.

    Each replicate draws ``n`` rows with replacement from each set. FD is biased upwards at small n, so
    scores are only comparable at one fixed n: ``sample_size`` fixes it (both sets) and is reported as
    ``n``. With ``sample_size=None`` each set keeps its own size and ``value`` is ``fn`` on the full sets;
    with a fixed ``sample_size`` ``value`` is the median of the replicates (the estimate at that n).

    Returns ``{"value", "lo", "hi", "n", "n_real", "n_synth", "n_boot"}`` (JSON-serialisable).
    """
    f1, f2 = check_pair(f1, f2)
    if n_boot < 2:
        raise MedfabError(f"bootstrap needs n_boot >= 2, got {n_boot}", "use n_boot=100 (the default)")
    if sample_size is not None and sample_size < 2:
        raise MedfabError(f"sample_size must be >= 2, got {sample_size}", "leave it None to use the set sizes")
    n1 = len(f1) if sample_size is None else sample_size
    n2 = len(f2) if sample_size is None else sample_size
    rng = np.random.default_rng(seed)
    reps = np.array([_scalar(fn(f1[rng.integers(0, len(f1), n1)], f2[rng.integers(0, len(f2), n2)]))
                     for _ in range(n_boot)])
    value = _scalar(fn(f1, f2)) if sample_size is None else float(np.median(reps))
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return {"value": value, "lo": float(lo), "hi": float(hi), "n": int(min(n1, n2)), "n_real": int(n1),
            "n_synth": int(n2), "n_boot": int(n_boot)}
