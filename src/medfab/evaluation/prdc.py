"""Precision, recall, density and coverage of a synthetic set against a real one (Naeem et al. 2020).

Each real point x_i gets a ball of radius r_i = distance to its k-th nearest real neighbour (itself excluded);
each fake point y_j likewise a radius s_j among the fakes.

* precision = fraction of fakes inside at least one real ball          (fidelity: fakes look real)
* recall    = fraction of reals inside at least one fake ball          (diversity: reals are reproduced)
* density   = mean over fakes of (number of real balls containing it) / k   (fidelity robust to outliers;
  about 1 for two samples of one distribution, may exceed 1)
* coverage  = fraction of real balls that contain at least one fake    (diversity robust to outliers)

Written blockwise over the real rows so that 5,000 x 5,000 points never hold more than ``block`` x N_fake
distances at once; checked against the reference ``prdc`` package in the tests.
"""

from __future__ import annotations

import numpy as np

from medfab.errors import MedfabError


def _check_features(f, name: str, k: int) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2:
        raise MedfabError(f"{name} has shape {f.shape}; expected (N, F)",
                          "pass one feature row per image (e.g. from a feature extractor's embed)")
    if len(f) < k + 1:
        raise MedfabError(f"{name} has {len(f)} rows; PRDC with k={k} needs at least {k + 1}",
                          "use more images (hundreds per class are typical) or a smaller k")
    if not np.isfinite(f).all():
        raise MedfabError(f"{name} contains NaN or infinite values", "check the feature extractor's input")
    return f


def _sq_norms(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, a)


def pairwise_distances(a: np.ndarray, b: np.ndarray, a2=None, b2=None) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) through |a|^2 + |b|^2 - 2ab, clipped at 0 before the root."""
    a2 = _sq_norms(a) if a2 is None else a2
    b2 = _sq_norms(b) if b2 is None else b2
    d2 = a2[:, None] + b2[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(d2, 0.0))


def kth_neighbour_radii(f: np.ndarray, k: int, *, block: int = 1024) -> np.ndarray:
    """(N,) distance from each row to its k-th nearest other row (the row itself, at distance 0, is skipped)."""
    f2 = _sq_norms(f)
    radii = np.empty(len(f))
    for s in range(0, len(f), block):
        d = pairwise_distances(f[s:s + block], f, f2[s:s + block], f2)         # (b, N)
        d[np.arange(len(d)), np.arange(s, s + len(d))] = 0.0                   # exact 0 for self
        radii[s:s + block] = np.partition(d, k, axis=1)[:, k]                  # 0th = self, kth = k-th other
    return radii


def prdc(real_f, fake_f, k: int = 5, *, block: int = 1024) -> dict:
    """Precision, recall, density, coverage of ``fake_f`` (M, F) against ``real_f`` (N, F).

    Precision, recall and coverage lie in [0, 1]; density is >= 0 and about 1 for matching distributions.
    """
    if k < 1:
        raise MedfabError(f"k must be at least 1, got {k}", "use k=5, the value of Naeem et al.")
    real = _check_features(real_f, "real features", k)
    fake = _check_features(fake_f, "synthetic features", k)
    if real.shape[1] != fake.shape[1]:
        raise MedfabError(f"real features have {real.shape[1]} dimensions, synthetic {fake.shape[1]}",
                          "extract both with the same feature network")
    r_real = kth_neighbour_radii(real, k, block=block)     # (N,)
    r_fake = kth_neighbour_radii(fake, k, block=block)     # (M,)
    real2, fake2 = _sq_norms(real), _sq_norms(fake)
    in_real_ball = np.zeros(len(fake), dtype=bool)         # precision
    n_real_balls = np.zeros(len(fake), dtype=np.int64)     # density
    recalled = np.empty(len(real), dtype=bool)
    covered = np.empty(len(real), dtype=bool)
    for s in range(0, len(real), block):
        d = pairwise_distances(real[s:s + block], fake, real2[s:s + block], fake2)   # (b, M)
        inside = d < r_real[s:s + block, None]                                         # fake j in real ball i
        in_real_ball |= inside.any(axis=0)
        n_real_balls += inside.sum(axis=0)
        covered[s:s + block] = d.min(axis=1) < r_real[s:s + block]
        recalled[s:s + block] = (d < r_fake[None, :]).any(axis=1)
    return {"precision": float(in_real_ball.mean()), "recall": float(recalled.mean()),
            "density": float(n_real_balls.mean() / k), "coverage": float(covered.mean())}
