"""Tiny phantom-like brain slices for the fidelity tests: a bright ellipse (head) with dark ventricles and
smooth texture on a dark background, plus the degradations the metrics must detect."""

import numpy as np
from scipy import ndimage


def phantoms(n: int, size: int = 32, seed: int = 0, big: bool | None = None) -> np.ndarray:
    """(n, 1, size, size) float32 in [-1, 1]; ``big`` picks the larger head class (None: alternate)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    out = np.empty((n, 1, size, size), dtype=np.float32)
    for i in range(n):
        large = bool(i % 2) if big is None else big      # balanced classes: no sampling noise in the mix
        a = rng.uniform(0.34, 0.42) if large else rng.uniform(0.24, 0.3)
        b = a * rng.uniform(0.8, 0.95)
        head = (yy / a) ** 2 + (xx / b) ** 2 < 1
        vent = ((yy / (0.3 * a)) ** 2 + ((np.abs(xx) - 0.12 * b) / (0.12 * b)) ** 2) < 1
        tex = ndimage.gaussian_filter(rng.normal(size=(size, size)), 1.5) * 2.0
        img = np.where(head, 0.4 + 0.25 * tex, -1.0)
        img = np.where(vent & head, -0.4, img)
        out[i, 0] = np.clip(img + 0.02 * rng.normal(size=img.shape), -1, 1)
    return out


def blur(x: np.ndarray, sigma: float = 1.2) -> np.ndarray:
    return ndimage.gaussian_filter(x, (0, 0, sigma, sigma)).astype(np.float32)


def noise(x: np.ndarray, std: float = 0.25, seed: int = 9) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(x + std * rng.normal(size=x.shape), -1, 1).astype(np.float32)
