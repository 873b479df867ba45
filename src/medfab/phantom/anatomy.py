"""Real anatomy for the phantom: the MNI152 2 mm templates bundled with nilearn, plus derived maps.

Loaded once per process. Every disease effect is expressed as a threshold on a precomputed distance
map (ventricle enlargement = move the ventricle boundary outwards, cortical thinning = move the outer
surface inwards, sulcal widening = grow the sulcal CSF into grey matter), so a subject only has to
*sample* these maps at its own pixel positions: no per-subject 3D morphology, which keeps 2D fast.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from medfab.errors import MedfabError

VOXEL_MM = 2.0
ATLAS_VERSION = 1     # bump when the derived maps change, so stale disk caches are not reused

# Channel order of Atlas.maps.
CHANNELS = ("gm", "wm", "csf", "d_vent", "d_out", "d_sulc", "temporal")


@dataclass(frozen=True)
class Atlas:
    maps: np.ndarray          # (X, Y, Z, C) float32 on the 2 mm MNI grid, channels last (one gather per corner)
    origin_mm: np.ndarray     # (3,) world position (mm) of maps[0, 0, 0] (the padding border)
    brain_lo_mm: np.ndarray   # (3,) brain bounding box, world mm
    brain_hi_mm: np.ndarray   # (3,)
    centre_mm: np.ndarray     # (3,) centre of the cerebrum (x, y of the bounding box; z of the ventricles)

    def channel(self, name: str) -> int:
        return CHANNELS.index(name)


def _signed_distance(region: np.ndarray) -> np.ndarray:
    """Distance in mm to the region's boundary: negative inside, positive outside."""
    outside = ndi.distance_transform_edt(~region) * VOXEL_MM
    inside = ndi.distance_transform_edt(region) * VOXEL_MM
    return (outside - inside).astype(np.float32)


def _ellipsoid_weight(x, y, z, centre, radii) -> np.ndarray:
    """Smooth (Gaussian) weight of an ellipsoid: 1 at the centre, exp(-1/2) at the radii."""
    d2 = ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((z - centre[2]) / radii[2]) ** 2
    return np.exp(-0.5 * d2)


def _cache_file() -> Path:
    root = os.environ.get("MEDFAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "medfab")
    return Path(root) / f"phantom_atlas_v{ATLAS_VERSION}.npz"


@functools.lru_cache(maxsize=1)
def load_atlas() -> Atlas:
    """The atlas, cached in memory for the process and on disk across processes.

    Building it imports nilearn and runs distance transforms (~10 s on a busy 2-core machine); the disk
    cache (``$MEDFAB_CACHE`` or ``~/.cache/medfab``) brings a fresh process down to a fraction of a
    second. A cache that cannot be read or written is simply rebuilt / skipped.
    """
    path = _cache_file()
    try:
        with np.load(path) as z:
            return Atlas(**{k: z[k] for k in Atlas.__dataclass_fields__})
    except (OSError, KeyError, ValueError):
        pass
    atlas = build_atlas()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **{k: getattr(atlas, k) for k in Atlas.__dataclass_fields__})
        os.replace(tmp, path)      # atomic: parallel processes never read a half-written cache
    except OSError:
        pass
    return atlas


def build_atlas() -> Atlas:
    """Build the atlas from nilearn's bundled MNI152 templates (offline)."""
    try:
        from nilearn import datasets
    except ImportError as e:  # pragma: no cover - nilearn is a hard dependency
        raise MedfabError("nilearn is not installed", "pip install nilearn (it bundles the MNI152 templates)") from e
    mask_img = datasets.load_mni152_brain_mask(resolution=2)
    gm = datasets.load_mni152_gm_template(resolution=2).get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=2).get_fdata(dtype=np.float32)
    mask = mask_img.get_fdata(dtype=np.float32)
    affine = mask_img.affine
    if not np.allclose(np.abs(np.diag(affine)[:3]), VOXEL_MM):
        raise MedfabError("unexpected MNI152 template resolution", "update nilearn to a version >= 0.10")
    origin = affine[:3, 3].astype(np.float64)
    gm, wm = np.clip(gm, 0, 1), np.clip(wm, 0, 1)
    csf = np.clip(mask - gm - wm, 0, 1)             # CSF = brain mask minus GM minus WM
    x, y, z = (origin[a] + VOXEL_MM * np.arange(mask.shape[a]) for a in range(3))
    X, Y, Z = np.meshgrid(x, y, z, indexing="ij")   # world mm, each (X, Y, Z)

    # Lateral + third ventricles: large connected CSF components near the centre of the brain.
    central = (np.abs(X) < 30) & (Y > -50) & (Y < 40) & (Z > -10) & (Z < 35)
    lab, n = ndi.label((csf > 0.5) & central)
    sizes = ndi.sum(np.ones_like(lab), lab, range(1, n + 1))
    vent = np.isin(lab, 1 + np.flatnonzero(sizes >= 100))
    vent = ndi.binary_closing(vent, iterations=1)
    d_vent = _signed_distance(vent)

    brain = mask > 0.5
    d_out = -_signed_distance(brain)                # positive inside the brain: depth below the surface
    csf_ext = csf * (1 - ndi.gaussian_filter(vent.astype(np.float32), 0.7))
    # Sulcal (and outer subarachnoid) CSF: where the template has a clear CSF share, plus the outside.
    sulc = ((csf_ext > 0.3) & ~vent) | ~brain
    d_sulc = ndi.distance_transform_edt(~sulc).astype(np.float32) * VOXEL_MM

    # Medial temporal lobe (hippocampus + parahippocampal) and lateral temporal cortex, both hemispheres.
    temporal = np.zeros_like(mask)
    for s in (-1, 1):
        temporal = np.maximum(temporal, _ellipsoid_weight(X, Y, Z, (s * 27, -24, -14), (8, 16, 9)))
        temporal = np.maximum(temporal, 0.7 * _ellipsoid_weight(X, Y, Z, (s * 48, -20, -8), (12, 30, 20)))

    # Outside the grid: no tissue, far from the ventricles, deep outside the brain. A one-voxel border
    # with these values lets sample_maps clamp indices instead of testing bounds.
    fill = np.array([0.0, 0.0, 0.0, 99.0, -99.0, 0.0, 0.0], dtype=np.float32)
    maps = np.broadcast_to(fill, (*[k + 2 for k in mask.shape], len(CHANNELS))).copy()
    maps[1:-1, 1:-1, 1:-1] = np.stack([gm, wm, csf_ext, d_vent, d_out, d_sulc, temporal], axis=-1)
    idx = np.argwhere(brain)
    lo = origin + VOXEL_MM * idx.min(0)
    hi = origin + VOXEL_MM * idx.max(0)
    vz = Z[vent]
    centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, float(vz.mean())])
    return Atlas(maps=maps, origin_mm=origin - VOXEL_MM, brain_lo_mm=lo, brain_hi_mm=hi, centre_mm=centre)


def sample_maps(atlas: Atlas, q_mm: np.ndarray) -> np.ndarray:
    """Trilinear samples of every atlas channel at world positions ``q_mm`` (3, N) -> (C, N) float32.

    Written out with eight gathers on the channels-last array: several times faster than one
    scipy.ndimage.map_coordinates call per channel, and exactly reproducible (fixed summation order).
    """
    maps = atlas.maps
    shape = np.asarray(maps.shape[:3])
    vox = ((q_mm - atlas.origin_mm[:, None]) / VOXEL_MM).astype(np.float32)   # (3, N) voxel coordinates
    vox = np.clip(vox, 0, (shape - 1.001)[:, None].astype(np.float32))      # the border holds fill values
    i0 = vox.astype(np.int64)                                               # floor, since vox >= 0
    w1 = vox - i0                                                           # (3, N) upper-corner weights
    w0 = 1 - w1
    flat = maps.reshape(-1, maps.shape[3])                                  # (V, C)
    strides = (shape[1] * shape[2], shape[2], 1)
    base = i0[0] * strides[0] + i0[1] * strides[1] + i0[2]                  # (N,)
    out = np.zeros((q_mm.shape[1], maps.shape[3]), dtype=np.float32)       # (N, C)
    for dx in (0, 1):
        wx = w1[0] if dx else w0[0]
        for dy in (0, 1):
            wxy = wx * (w1[1] if dy else w0[1])
            for dz in (0, 1):
                w = wxy * (w1[2] if dz else w0[2])
                out += w[:, None] * flat[base + (dx * strides[0] + dy * strides[1] + dz)]
    return out.T
