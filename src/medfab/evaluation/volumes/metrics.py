"""The volume metrics: brain volume, distributions vs the real-vs-real KS, voxel variance, 3D features, nearest
training volume. Inputs are (N, 1, D, H, W) float arrays in [-1, 1]; every function is deterministic.

* **brain volume** = fraction of the field of view inside a per-volume Otsu mask (Otsu 1979; holes filled,
  specks removed, as :func:`medfab.evaluation.brain_mass.binarise` does in 2D).
* **KS vs baseline**: the two-sample Kolmogorov-Smirnov statistic of synthetic vs real half A beside the same
  statistic for real half B vs real half A (the distance two real samples of this size show).
* **voxel variance** (the mode-collapse monitor): the variance of each voxel across the set, averaged inside
  the brain mask of the real set; a generator that makes near-identical volumes scores far below real.
* **features**: area-downsampled voxels (``side``³) projected on the principal components of real half A
  (pixel-PCA in 3D: no network, no downloaded weights), for the Fréchet distance (Heusel et al. 2017, eq. 6)
  and KID (Bińkowski et al. 2018).
* **nearest training volume**: RMS voxel distance of each synthetic volume to its nearest training volume;
  flagged when closer than the closest *held-out* real volume is to any training volume. New real volumes
  are flagged too, by chance: if synthetic and held-out distances were exchangeable (a generator that
  samples new brains), the chance of k or more flagged out of m synthetic against h held-out volumes is
  ``prod_{i<k} (m - i) / (m + h - i)`` (the k smallest of m + h distances all synthetic), reported as
  ``p_chance``; about m / (h + 1) are flagged on average.
"""

from __future__ import annotations

import numpy as np

from medfab.errors import MedfabError


def brain_fraction(x: np.ndarray) -> np.ndarray:
    """(N,) fraction of voxels inside each volume's Otsu brain mask."""
    from medfab.evaluation.brain_mass import brain_mass

    return brain_mass(x, method="otsu")


def brain_mask(x: np.ndarray) -> np.ndarray:
    """(D, H, W) bool: voxels inside the Otsu mask of at least half of the volumes of ``x``."""
    from medfab.evaluation.brain_mass import binarise

    return binarise(x, method="otsu")[:, 0].mean(0) >= 0.5


def ks_vs_baseline(real_a: np.ndarray, synth: np.ndarray, real_b: np.ndarray) -> dict:
    """KS of synthetic vs real A, beside real B vs real A (the real-vs-real baseline), with the means."""
    from scipy import stats

    real_a, synth, real_b = (np.asarray(v, dtype=np.float64).ravel() for v in (real_a, synth, real_b))
    for name, v in (("real half A", real_a), ("synthetic", synth), ("real half B", real_b)):
        if len(v) < 2:
            raise MedfabError(
                f"{name} has {len(v)} value(s); a distribution needs at least 2", "give more volumes"
            )
    ks = stats.ks_2samp(real_a, synth)
    return {
        "ks": float(ks.statistic),
        "ks_p": float(ks.pvalue),
        "ks_baseline": float(stats.ks_2samp(real_a, real_b).statistic),
        "real_mean": float(real_a.mean()),
        "synth_mean": float(synth.mean()),
        "baseline_mean": float(real_b.mean()),
    }


def voxel_variance(x: np.ndarray) -> np.ndarray:
    """(D, H, W) variance of each voxel across the volumes of ``x`` (N, 1, D, H, W)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        raise MedfabError(f"voxel variance needs at least 2 volumes, got {len(x)}", "give more volumes")
    return x[:, 0].var(0, ddof=1)  # unbiased: sets of different sizes compare fairly


def variance_in_mask(var: np.ndarray, mask: np.ndarray) -> float:
    if not mask.any():
        raise MedfabError(
            "the brain mask of the real volumes is empty", "check that the real volumes are not blank"
        )
    return float(var[mask].mean())


def downsample(x: np.ndarray, side: int) -> np.ndarray:
    """(N, side³) area means of (N, 1, D, H, W)."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if min(t.shape[2:]) > side:
        t = F.adaptive_avg_pool3d(t, side)
    return t.reshape(len(t), -1).double().numpy()


class VolumePCA:
    """``fit(real_x)`` learns the principal components of downsampled real volumes; ``transform`` -> (N, k)."""

    def __init__(self, side: int = 16, n_components: int = 32, seed: int = 0):
        self.side, self.n_components, self.seed = side, n_components, seed

    def fit(self, real_x: np.ndarray) -> VolumePCA:
        from sklearn.decomposition import PCA

        v = downsample(real_x, self.side)
        if len(v) < 3:
            raise MedfabError(
                f"3D features need at least 3 real volumes, got {len(v)}", "give more real volumes"
            )
        self.pca_ = PCA(min(self.n_components, len(v) - 1, v.shape[1]), random_state=self.seed).fit(v)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return self.pca_.transform(downsample(x, self.side))


def nearest_training(
    train: np.ndarray, holdout: np.ndarray | None, synth: np.ndarray, *, side: int = 32
) -> dict:
    """Distances to the nearest training volume (RMS voxel difference after downsampling to ``side``³).

    ``flagged`` = synthetic volumes closer to a training volume than the closest held-out real volume is
    (0 expected); without held-out volumes there is no reference and ``flagged`` is None.
    """
    from scipy.spatial.distance import cdist

    t, s = downsample(train, side), downsample(synth, side)
    p = t.shape[1]
    d_s = cdist(s, t) / np.sqrt(p)  # (M, N)
    nn_s = d_s.min(1)
    out = {
        "synth_nn": nn_s.tolist(),
        "synth_nn_index": d_s.argmin(1).tolist(),
        "min_synth": float(nn_s.min()),
        "median_synth": float(np.median(nn_s)),
        "n_synth": len(nn_s),
        "min_holdout": None,
        "median_holdout": None,
        "holdout_nn": [],
        "flagged": None,
        "p_chance": None,
        "expected_by_chance": None,
    }
    if holdout is not None and len(holdout):
        nn_h = (cdist(downsample(holdout, side), t) / np.sqrt(p)).min(1)
        ref = float(nn_h.min())
        flagged = [int(i) for i in np.flatnonzero(nn_s < ref)]
        m, h = len(nn_s), len(nn_h)
        out.update(
            min_holdout=ref,
            median_holdout=float(np.median(nn_h)),
            holdout_nn=nn_h.tolist(),
            flagged=flagged,
            p_chance=float(np.prod([(m - i) / (m + h - i) for i in range(len(flagged))])),
            expected_by_chance=m / (h + 1),
        )
    return out
