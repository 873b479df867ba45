"""Pixel-PCA features: downsampled pixels projected on the principal components of the REAL set.

The extractor that needs no training and no trust in a network: a Fréchet distance on it measures how far
the synthetic images' low-frequency appearance is from the real set, in the real set's own main directions
of variation. Downsampling first (area mean) keeps PCA cheap and the covariance well estimated.
"""

from __future__ import annotations

import numpy as np

from medfab.errors import MedfabError
from medfab.evaluation.checks import check_images


def downsample(x: np.ndarray, size: int) -> np.ndarray:
    """Area-mean downsample of (N, 1, H, W) to (N, size * size); exact block means when H, W divide."""
    n, _, h, w = x.shape
    if h % size == 0 and w % size == 0 and h >= size and w >= size:
        return x.reshape(n, size, h // size, size, w // size).mean((2, 4)).reshape(n, -1)
    import torch
    import torch.nn.functional as F

    t = F.adaptive_avg_pool2d(torch.as_tensor(x, dtype=torch.float32), size)   # (N, 1, size, size)
    return t.reshape(n, -1).numpy()


class PixelPCA:
    """``fit(real_x)`` learns the components; ``transform(x)`` -> (N, n_components) float64."""

    def __init__(self, size: int = 32, n_components: int = 64, seed: int = 0, whiten: bool = False):
        self.size = size
        self.whiten = whiten
        self.n_components = n_components
        self.seed = seed

    def _pixels(self, x: np.ndarray) -> np.ndarray:
        x = check_images(x)
        if x.ndim != 4:
            raise MedfabError("pixel-PCA features take 2D images (N, 1, H, W)",
                              "use the 'featurenet' extractor for 3D volumes")
        return downsample(x, min(self.size, x.shape[2], x.shape[3])).astype(np.float64)

    def fit(self, real_x: np.ndarray) -> PixelPCA:
        self.fit_transform(real_x)
        return self

    def fit_transform(self, real_x: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import PCA

        p = self._pixels(real_x)                                    # (N, size²)
        if len(p) < 3:
            raise MedfabError(f"pixel PCA needs at least 3 real images, got {len(p)}",
                              "pass the whole real set to fit()")
        k = min(self.n_components, len(p) - 1, p.shape[1])
        self.pca_ = PCA(k, svd_solver="randomized" if k < min(p.shape) // 2 else "full",
                        whiten=self.whiten, random_state=self.seed).fit(p)
        self.image_shape_ = tuple(real_x.shape[1:])
        return self.pca_.transform(p)

    def transform(self, x: np.ndarray) -> np.ndarray:
        if not hasattr(self, "pca_"):
            raise MedfabError("PixelPCA is not fitted", "call fit(real_x) first")
        if tuple(x.shape[1:]) != self.image_shape_:
            raise MedfabError(f"images are {tuple(x.shape[1:])}, PCA was fitted on {self.image_shape_}",
                              "load both sets with the same --size")
        return self.pca_.transform(self._pixels(x))
