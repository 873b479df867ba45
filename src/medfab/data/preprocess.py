"""Raw intensities -> square (or cubic) float32 tensors in [-1, 1]: normalise, optionally crop, resize, pad.

Order of operations (all deterministic, pure numpy, the same code path for 2D and 3D):

1. **normalise** the raw array to [-1, 1] (values outside the range are clipped):
   ``fixed``      -- a recorded input range ``fixed_range=(lo, hi)``, the same for every image;
   ``percentile`` -- per image, the ``percentiles`` (0.5, 99.5) map to -1 and 1;
   ``minmax``     -- per image, min -> -1 and max -> 1 (a constant image becomes all -1);
   ``auto``       -- (default) ``fixed`` (0, 255) when every input is an 8-bit image, else ``percentile``.
   Why ``auto`` picks ``fixed`` for 8-bit data such as the Alzheimer JPEGs: per-image stretching
   (minmax/percentile) changes each image's histogram by its own extremes, so brightness differences
   between images -- how much dark CSF an atrophied brain shows, scanner gain -- are partly erased, and
   histogram or intensity-based fidelity metrics then compare stretched images. A fixed 0..255 range keeps
   every grey value's meaning across images; 8-bit files already share that range. Volumes in arbitrary
   units (MRI, 16-bit, DICOM) have no such common range, so they are normalised per image by robust
   percentiles unless a ``fixed_range`` (e.g. a CT window in HU) is given.
2. **fit** ``crop_head`` only: crop to the bounding box of the pixels above ``head_threshold`` of the
   way from the image minimum to its 99th percentile (plus a ``margin``), which removes empty background.
3. **resize** so the longest side is ``size``, keeping the aspect ratio, with one fixed filter: an
   antialiased linear (triangle) filter whose support widens by the downscale factor -- the same as
   Pillow's ``Image.resize(..., BILINEAR)`` -- applied separably along each axis.
4. **pad** to ``size`` x ``size`` (x ``size`` for 3D), centred, with -1 (the darkest value: background).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator

from medfab.errors import MedfabError


class PreprocessConfig(BaseModel):
    """How raw arrays become training tensors; saved as JSON beside every cache entry and run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(64, ge=4, le=2048, description="output side length (pixels/voxels)")
    spatial_dims: Literal[2, 3] = Field(2, description="2: (1, size, size) images; 3: (1, size, size, size) volumes")
    fit: Literal["pad", "crop_head"] = "pad"
    normalise: Literal["auto", "fixed", "percentile", "minmax"] = "auto"
    fixed_range: tuple[float, float] | None = Field(None, description="(lo, hi) for normalise='fixed'")
    percentiles: tuple[float, float] = (0.5, 99.5)
    head_threshold: float = Field(0.1, gt=0.0, lt=1.0, description="crop_head: fraction of min..p99 range")
    margin: float = Field(0.02, ge=0.0, le=0.5, description="crop_head: margin kept, fraction of the longest side")
    resize_filter: Literal["antialiased-bilinear"] = "antialiased-bilinear"  # recorded, not a choice

    @model_validator(mode="after")
    def _check(self) -> PreprocessConfig:
        if self.fixed_range is not None and not self.fixed_range[0] < self.fixed_range[1]:
            raise ValueError(f"fixed_range must be (lo, hi) with lo < hi, got {self.fixed_range}")
        if not 0 <= self.percentiles[0] < self.percentiles[1] <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= lo < hi <= 100, got {self.percentiles}")
        return self

    @property
    def resolved(self) -> bool:
        return self.normalise != "auto" and (self.normalise != "fixed" or self.fixed_range is not None)

    def resolve(self, *, eight_bit: bool) -> PreprocessConfig:
        """Make ``auto`` / an unset ``fixed_range`` concrete, given whether all inputs are 8-bit images."""
        if self.normalise == "auto":
            if eight_bit:
                return self.model_copy(update={"normalise": "fixed", "fixed_range": (0.0, 255.0)})
            return self.model_copy(update={"normalise": "percentile"})
        if self.normalise == "fixed" and self.fixed_range is None:
            if not eight_bit:
                raise MedfabError(
                    "normalise='fixed' needs fixed_range for data that is not 8-bit images",
                    "give the intensity range, e.g. fixed_range=(-1000, 400) for a CT window, or use 'percentile'",
                )
            return self.model_copy(update={"fixed_range": (0.0, 255.0)})
        return self


def normalise(a: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Raw array -> float32 in [-1, 1] (clipped), by the resolved rule in ``cfg``."""
    if cfg.normalise == "fixed":
        lo, hi = cfg.fixed_range
    elif cfg.normalise == "percentile":
        lo, hi = (float(v) for v in np.percentile(a, cfg.percentiles))
    elif cfg.normalise == "minmax":
        lo, hi = float(a.min()), float(a.max())
    else:
        raise ValueError("resolve() the config before preprocessing (normalise='auto' is not concrete)")
    if hi <= lo:  # a constant image: all background
        return np.full(a.shape, -1.0, dtype=np.float32)
    out = (a.astype(np.float32) - np.float32(lo)) * np.float32(2.0 / (hi - lo)) - np.float32(1.0)
    return np.clip(out, -1.0, 1.0, out=out)


def head_box(a: np.ndarray, threshold: float, margin: float) -> tuple[slice, ...]:
    """Bounding box (one slice per axis) of the pixels brighter than ``threshold`` of min..p99."""
    lo, hi = float(a.min()), float(np.percentile(a, 99))
    mask = a > lo + threshold * (hi - lo)
    if hi <= lo or not mask.any():
        return tuple(slice(0, n) for n in a.shape)
    pad = round(margin * max(a.shape))
    box = []
    for axis in range(a.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(i for i in range(a.ndim) if i != axis)))
        box.append(slice(max(0, hit[0] - pad), min(a.shape[axis], hit[-1] + 1 + pad)))
    return tuple(box)


@lru_cache(maxsize=64)
def _weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) antialiased triangle-filter weights, as Pillow's BILINEAR resize computes them."""
    scale = n_in / n_out
    fscale = max(scale, 1.0)  # widen the filter when shrinking: that is the antialiasing
    centre = (np.arange(n_out) + 0.5) * scale  # (n_out,)
    x = (np.arange(n_in)[None, :] + 0.5 - centre[:, None]) / fscale  # (n_out, n_in)
    w = np.clip(1.0 - np.abs(x), 0.0, None)
    w /= w.sum(axis=1, keepdims=True)
    w = w.astype(np.float32)
    w.setflags(write=False)
    return w


def separable_resize(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Apply the antialiased triangle-filter weights along each axis in turn (any number of axes)."""
    out = a.astype(np.float32, copy=False)
    for axis, n_out in enumerate(shape):
        if out.shape[axis] != n_out:
            w = _weights(out.shape[axis], n_out)
            out = np.moveaxis(np.tensordot(w, out, axes=([1], [axis])), 0, axis)
    return np.ascontiguousarray(out, dtype=np.float32)


def resize(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Antialiased linear resize of a 2D or 3D array to ``shape``."""
    if a.ndim == 2:
        # Pillow's BILINEAR is this very filter (the tests check it), in C and without BLAS threads, which
        # on a busy machine spin against each other and make small matrix products 20x slower.
        im = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), "F")
        return np.asarray(im.resize(shape[::-1], Image.BILINEAR), dtype=np.float32)
    return separable_resize(a, shape)


def preprocess(a: np.ndarray, cfg: PreprocessConfig, *, name: str = "array") -> np.ndarray:
    """One raw array (H, W) or (D, H, W) -> (size, size) or (size, size, size) float32 in [-1, 1]."""
    if not cfg.resolved:
        raise ValueError("resolve() the config before preprocessing")
    if a.ndim != cfg.spatial_dims:
        kind = {2: "2D image", 3: "3D volume"}.get(a.ndim, f"{a.ndim}D array")
        raise MedfabError(
            f"{name} is a {kind} {a.shape} but spatial_dims={cfg.spatial_dims}",
            "use volume_mode='2d' to cut volumes into slices, or keep 2D and 3D data in separate data sets",
        )
    if min(a.shape) < 1:
        raise MedfabError(f"{name} is empty (shape {a.shape})", "remove the file")
    x = normalise(a, cfg)
    if cfg.fit == "crop_head":
        x = x[head_box(x, cfg.head_threshold, cfg.margin)]
    return fit_to_size(x, cfg.size)


def placement(shape: tuple[int, ...], size: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The square/cube rule of steps 3-4: (resized shape, offset of it in the ``size``^d output) for ``shape``.

    The longest side becomes ``size``, the others keep the aspect ratio (rounded), and the result is centred
    (e.g. a 90 x 120 x 120 volume at size 64 -> 48 x 64 x 64 at offset (8, 0, 0)). Written out so that a
    segmentation and an output affine can follow exactly the same rule (medfab.data.volumes).
    """
    scale = size / max(shape)
    target = tuple(max(1, min(size, round(n * scale))) for n in shape)
    return target, tuple((size - n) // 2 for n in target)


def fit_to_size(x: np.ndarray, size: int, pad_value: float = -1.0) -> np.ndarray:
    """Steps 3-4: resize by :func:`placement`'s rule, pad with ``pad_value``, clip to [-1, 1]."""
    target, offset = placement(x.shape, size)
    x = resize(x, target)
    out = np.full((size,) * x.ndim, pad_value, dtype=np.float32)
    out[tuple(slice(o, o + n) for o, n in zip(offset, target))] = x
    return np.clip(out, -1.0, 1.0, out=out)


FITS = ("pad", "crop_head")


def fit_option(fit: str, size: int) -> PreprocessConfig | None:
    """The preprocessing a command's ``--fit`` flag asks for: None for "pad" (the data's default rule)."""
    if fit not in FITS:
        raise MedfabError(f"unknown --fit '{fit}'", "use --fit pad (keep the whole image) or --fit crop_head")
    return None if fit == "pad" else PreprocessConfig(size=size, fit=fit)
