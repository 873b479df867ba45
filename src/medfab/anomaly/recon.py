"""Reconstruction-error maps and the per-image error features every detector starts from.

A VAE trained on normal images reconstructs abnormal ones badly; the error map ``e = |x - x_hat|``
(averaged over channels) is the diagnosis signal. The features summarise one map in five numbers so that
clustering methods can compare images of any size:

    [mean(e), std(e), p95(e), max(e), area(e > tau)]

The features are computed on the error map after a small median filter (:func:`smooth`, 3 pixels by
default): imperfect reconstruction of anatomy leaves thin, one-pixel residuals along edges, a lesion leaves a
compact blob, and the filter removes the first while keeping the second (the residual post-processing of
Baur et al. 2021, "Autoencoders for unsupervised anomaly segmentation in brain MR images").
``tau`` is a pixel-error level fixed once at fit time (the 99th percentile of all pixel errors of the normal
validation images), so "high-error area" means the same thing for every image it is applied to.
"""

from __future__ import annotations

import numpy as np
import torch

FEATURE_NAMES = ("mean", "std", "p95", "max", "high_area")


@torch.inference_mode()
def reconstruct(model, x: np.ndarray, *, batch_size: int = 128, device="cpu") -> np.ndarray:
    """x (N, C, H, W[, D]) in [-1, 1] -> x_hat of the same shape, from a single-class VAE (label 0), on
    ``device`` (a torch device or "auto" / "cpu" / "cuda[:K]")."""
    from medfab.device import resolve_device

    device = resolve_device(str(device))
    model = model.to(device).eval()
    out = np.empty_like(np.asarray(x, dtype=np.float32))
    for i in range(0, len(x), batch_size):
        xb = torch.as_tensor(np.asarray(x[i:i + batch_size]), dtype=torch.float32, device=device)
        yb = torch.zeros(len(xb), dtype=torch.long, device=device)      # the VAE holds one class: normal
        out[i:i + len(xb)] = model.reconstruct(xb, yb).float().cpu().numpy()
    return out


def error_maps(x: np.ndarray, x_hat: np.ndarray) -> np.ndarray:
    """(N, C, H, W[, D]) pair -> absolute error maps (N, H, W[, D]), averaged over channels."""
    return np.abs(np.asarray(x, np.float32) - np.asarray(x_hat, np.float32)).mean(axis=1)


def smooth(maps: np.ndarray, size: int) -> np.ndarray:
    """Median filter of each map (N, H, W[, D]) over ``size`` pixels per spatial axis; size <= 1: unchanged."""
    if size <= 1:
        return maps
    from scipy.ndimage import median_filter

    return median_filter(maps, size=(1,) + (size,) * (maps.ndim - 1), mode="nearest")


def high_error_level(normal_maps: np.ndarray, q: float = 99.0) -> float:
    """``tau``: the q-th percentile of every pixel error of the normal validation maps."""
    return float(np.percentile(normal_maps.reshape(-1), q))


def error_features(maps: np.ndarray, tau: float) -> np.ndarray:
    """Error maps (N, ...) -> features (N, 5) in the order of :data:`FEATURE_NAMES`."""
    e = maps.reshape(len(maps), -1).astype(np.float64)                     # (N, P)
    return np.stack([e.mean(1), e.std(1), np.percentile(e, 95, axis=1), e.max(1), (e > tau).mean(1)], axis=1)


class Standardiser:
    """z-scores with the mean / std of the normal validation features (fitted attributes end in ``_``)."""

    def fit(self, f: np.ndarray) -> Standardiser:
        self.mean_ = f.mean(0)
        # A constant feature (e.g. zero high-error area everywhere) must not divide by zero.
        self.scale_ = np.where(f.std(0) > 1e-12, f.std(0), 1.0)
        return self

    def transform(self, f: np.ndarray) -> np.ndarray:
        return (f - self.mean_) / self.scale_

    def state(self) -> dict:
        return {"mean": self.mean_.tolist(), "scale": self.scale_.tolist()}

    @classmethod
    def from_state(cls, d: dict) -> Standardiser:
        s = cls()
        s.mean_, s.scale_ = np.asarray(d["mean"]), np.asarray(d["scale"])
        return s
