"""Memorisation guard: how many images of a training sample grid are near-copies of a training image?

Diffusion models copy training images when a class is small (latent diffusion reproduced up to 19.6 % of an
MRI training set in Dar et al. 2024). At every periodic sample grid the training loop calls
:meth:`NearCopyGuard.check_grid`, which compares each grid image with the training images *of its own class*:

- distance: RMS pixel difference of the images area-averaged to ``pixel_size`` (``evaluation.privacy``'s unit;
  [-1, 1] images, so 0 = identical, ~0.1 = the same slice with small shifts);
- near-copy threshold, calibrated on the real data: the ``percentile``-th percentile of the training images'
  leave-one-out nearest-neighbour distances (how close two *different* real images of a class come), so by
  construction ``percentile`` % of real images are "near-copies" of another real image. Duplicates within the
  training set (pairs closer than ``DUPLICATE_RMS``, e.g. Br35H's repeated slices) are not two different images:
  left in, their zero distances drove the threshold to ~0.001 and no grid image could ever count as a copy;
- logged: ``nearcopy_frac`` (fraction of grid images below the threshold), ``nn_dist_median`` (their median
  distance to the nearest training image) and ``nearcopy_threshold``.

Only the grid's pixels are used (the uint8 grid the loop writes, first channel, middle slice of a volume), so
the check costs no extra sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from medfab.evaluation.privacy import pixel_vectors

PIXEL_SIZE = 32        # side after area averaging: enough for "same image", cheap for 5,000 training images
PERCENTILE = 1.0       # of train leave-one-out NN distances: the near-copy threshold
MAX_PER_CLASS = 4096   # training images per class compared (a random subset above this, seeded)
DUPLICATE_RMS = 0.01   # training pairs closer than this (about one 8-bit level) are duplicates, not neighbours


def _middle_first_channel(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W[, D]) -> (N, 1, H, W): what the sample grid shows."""
    x = np.asarray(x)
    if x.ndim == 5:
        x = x[:, :, x.shape[2] // 2]
    return x[:, :1].astype(np.float32)


def grid_images(grid: np.ndarray, num_classes: int, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """A class grid (uint8 (K*H, n*W), one row per class) -> its images (K*n, 1, H, W) in [-1, 1], labels."""
    K, n = num_classes, per_class
    H, W = grid.shape[0] // K, grid.shape[1] // n
    tiles = grid.reshape(K, H, n, W).transpose(0, 2, 1, 3).reshape(K * n, 1, H, W)
    return tiles.astype(np.float32) / 127.5 - 1, np.repeat(np.arange(K), n)


def _nn(a: torch.Tensor, b: torch.Tensor, exclude_self: bool = False) -> torch.Tensor:
    """For each row of ``a``, the distance to its nearest row of ``b`` (rows are pixel_vectors). With
    ``exclude_self`` (``a`` is ``b``): its nearest *other, non-duplicate* row (inf when it has none)."""
    d = torch.cdist(a, b)                                                  # (Na, Nb)
    if exclude_self:
        d[d < DUPLICATE_RMS] = float("inf")                                # itself and its duplicates
        d.fill_diagonal_(float("inf"))
    return d.min(1).values


@dataclass
class NearCopyGuard:
    """Training images by class (as pixel vectors) and the calibrated near-copy threshold."""

    reference: list[torch.Tensor]     # per class: (N_c, P)
    threshold: float
    pixel_size: int = PIXEL_SIZE

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, num_classes: int, *, percentile: float = PERCENTILE,
            pixel_size: int = PIXEL_SIZE, max_per_class: int = MAX_PER_CLASS, seed: int = 0) -> NearCopyGuard:
        rng = np.random.default_rng(seed)
        y = np.asarray(y)
        reference, loo = [], []
        for k in range(num_classes):
            idx = np.flatnonzero(y == k)
            if len(idx) > max_per_class:
                idx = np.sort(rng.choice(idx, max_per_class, replace=False))
            v = torch.from_numpy(pixel_vectors(_middle_first_channel(x[idx]), pixel_size))
            reference.append(v)
            if len(v) > 1:
                loo.append(_nn(v, v, exclude_self=True))
        d = torch.cat(loo).numpy() if loo else np.zeros(0)
        d = d[np.isfinite(d)]
        threshold = float(np.percentile(d, percentile)) if len(d) else DUPLICATE_RMS
        return cls(reference, max(threshold, DUPLICATE_RMS), pixel_size)

    def distances(self, images: np.ndarray, labels: np.ndarray) -> torch.Tensor:
        """(N,) RMS distance of each of ``images`` (N, C, ...) in [-1, 1] to the nearest training image of its
        class ``labels[i]``; below :attr:`threshold` is a near-copy."""
        v = torch.from_numpy(pixel_vectors(_middle_first_channel(images), self.pixel_size))
        labels = np.asarray(labels)
        d = torch.empty(len(v))
        for k in np.unique(labels):
            rows = torch.from_numpy(np.flatnonzero(labels == k))
            d[rows] = _nn(v[rows], self.reference[int(k)])
        return d

    def check(self, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """Near-copy fraction and median NN distance of ``images`` (N, C, ...) in [-1, 1], classes ``labels``."""
        d = self.distances(images, labels)
        return {"nearcopy_frac": float((d < self.threshold).float().mean()),
                "nn_dist_median": float(d.median()), "nearcopy_threshold": self.threshold}

    def check_grid(self, grid: np.ndarray, per_class: int) -> dict[str, float]:
        """:meth:`check` on the images of a class grid (the loop's ``class_grid`` output)."""
        return self.check(*grid_images(grid, len(self.reference), per_class))
