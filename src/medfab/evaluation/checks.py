"""Input checks shared by the fidelity metrics: images and feature matrices are validated where they enter.

A metric fed NaN, an empty set or two sets of different image sizes would return a number that means nothing;
these checks turn each of those into a :class:`MedfabError` that says what to do instead.
"""

from __future__ import annotations

import numpy as np

from medfab.errors import MedfabError


def check_images(x, name: str = "images", *, min_n: int = 1) -> np.ndarray:
    """Return ``x`` as float32 (N, 1, H, W) or (N, 1, D, H, W), finite, with at least ``min_n`` images."""
    x = np.asarray(x)
    if x.ndim not in (4, 5) or x.shape[1] != 1:
        raise MedfabError(
            f"{name} must have shape (N, 1, H, W) or (N, 1, D, H, W), got {tuple(x.shape)}",
            "pass TensorSet.x from medfab.data.load_tensors (one grey channel, images in [-1, 1])",
        )
    if len(x) < min_n:
        raise MedfabError(
            f"{name}: {len(x)} image(s), this metric needs at least {min_n}",
            "fabricate or load more images (a few hundred per set give stable fidelity scores)",
        )
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise MedfabError(f"{name} contain NaN or infinite pixel values",
                          "check the generator or the preprocessing that produced these images")
    return x


def check_same_size(a: np.ndarray, b: np.ndarray, names: tuple[str, str] = ("real", "synthetic")) -> None:
    """Both image sets must share one spatial size, or pixel-level comparisons are meaningless."""
    if a.shape[1:] != b.shape[1:]:
        raise MedfabError(
            f"{names[0]} images are {tuple(a.shape[1:])} but {names[1]} images are {tuple(b.shape[1:])}",
            "load both sets with the same --size (load_tensors(..., size=S)) before comparing them",
        )


def check_features(f, name: str = "features", *, min_n: int = 2) -> np.ndarray:
    """Return ``f`` as float64 (N, F), finite, with at least ``min_n`` rows."""
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2:
        raise MedfabError(f"{name} must be a (N, F) matrix, got shape {tuple(f.shape)}",
                          "flatten per-image features to one row per image")
    if len(f) < min_n:
        raise MedfabError(
            f"{name}: {len(f)} row(s), at least {min_n} are needed for a covariance / kernel estimate",
            "compare sets of a few hundred images or more",
        )
    if not np.isfinite(f).all():
        raise MedfabError(f"{name} contain NaN or infinite values",
                          "check the input images and the feature extractor (a constant image can give NaN)")
    return f


def check_pair(f1, f2, *, min_n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Two feature matrices of the same width."""
    f1, f2 = check_features(f1, "real features", min_n=min_n), check_features(f2, "synthetic features",
                                                                                 min_n=min_n)
    if f1.shape[1] != f2.shape[1]:
        raise MedfabError(f"feature widths differ: {f1.shape[1]} vs {f2.shape[1]}",
                          "extract both sets with the same feature extractor")
    return f1, f2
