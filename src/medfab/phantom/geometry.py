"""Where each output pixel looks in the template: grid -> head pose -> smooth deformation -> mass effect."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from medfab.phantom.anatomy import load_atlas
from medfab.phantom.params import SubjectParams, TumourParams


def output_grid(size: int, dims: int, fov_mm: float) -> np.ndarray:
    """Head-space positions (3, N) in mm of the output pixels, centred on 0.

    2D: N = size*size in row-major (row, col) order, row 0 = anterior (the top of a radiological axial
    slice), z = 0. 3D: N = size**3 in (x, y, z) index order, the NIfTI voxel order.
    """
    t = (np.arange(size) + 0.5 - size / 2) * (fov_mm / size)        # (S,)
    if dims == 2:
        row, col = np.meshgrid(t, t, indexing="ij")
        return np.stack([col.ravel(), -row.ravel(), np.zeros(size * size)])
    x, y, z = np.meshgrid(t, t, t, indexing="ij")
    return np.stack([x.ravel(), y.ravel(), z.ravel()])


def smooth_field(grid: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Cubic-spline interpolation of a small control grid (G, G, G) at unit-cube positions u (3, N)."""
    idx = np.clip(u, 0, 1) * (np.asarray(grid.shape)[:, None] - 1)
    return ndi.map_coordinates(grid, idx, order=3, mode="nearest")


def _bspline_basis(t: np.ndarray, g: int) -> np.ndarray:
    """Cubic B-spline weights (M, G) of G control points at unit positions t (M,); rows sum to 1."""
    x = np.abs(t[:, None] * (g - 1) - np.arange(g)[None, :])       # (M, G) distance in control spacings
    w = np.where(x < 1, (4 - 6 * x**2 + 3 * x**3) / 6, np.where(x < 2, (2 - x) ** 3 / 6, 0.0))
    return w / w.sum(1, keepdims=True)                              # partition of unity at the edges too


def grid_field(ctrl: np.ndarray, size: int, dims: int) -> np.ndarray:
    """Smooth field (N,) over the output grid of :func:`output_grid` from control values (G, G, G).

    The grid is regular, so the tensor-product spline separates into three small matrix products:
    about 50x faster than interpolating every pixel on its own.
    """
    t = (np.arange(size) + 0.5) / size                              # unit position of pixel centres
    b = _bspline_basis(t, ctrl.shape[0])                            # (S, G)
    if dims == 2:   # rows run anterior -> posterior (u_y = 1 - t); the slice is the middle plane
        bz = _bspline_basis(np.array([0.5]), ctrl.shape[2])[0]      # (G,)
        return np.einsum("ijk,k,rj,ci->rc", ctrl, bz, b[::-1], b, optimize=True).ravel()
    return np.einsum("ijk,ai,bj,ck->abc", ctrl, b, b, b, optimize=True).ravel()


def _rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    a, b = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def head_to_template(p: SubjectParams, head_mm: np.ndarray) -> np.ndarray:
    """Template (MNI) positions (3, N) of the output grid ``head_mm`` (3, N): pose, then deformation."""
    atlas = load_atlas()
    centre = atlas.centre_mm.copy()
    centre[2] += p.slice_offset_mm
    # Dividing by the scale: a bigger head means each output mm covers less template.
    q = _rotation(*p.rotation_deg) @ (head_mm / p.scale[:, None]) + centre[:, None]
    return q + np.stack([grid_field(p.displacement[a], p.size, p.dims) for a in range(3)])


def tumour_distance(t: TumourParams, q: np.ndarray) -> np.ndarray:
    """Irregular distance (N,) from the lesion centre, in units of the rim radius (1 = tumour edge)."""
    d = q - t.centre_mm[:, None]
    r = np.sqrt((d**2).sum(0))
    # The control grid spans the tumour itself (a few lobes across it); beyond it the field is clamped.
    box = 1.3 * t.r_rim_mm
    near = np.flatnonzero(r < 2.5 * t.r_oedema_mm)               # the outline only matters near the lesion
    wobble = np.zeros_like(r)
    wobble[near] = smooth_field(t.shape, (d[:, near] + box) / (2 * box))   # in [-1, 1]: lobulated outline
    return r / (t.r_rim_mm * (1 + 0.35 * wobble))


def mass_effect(t: TumourParams, q: np.ndarray) -> np.ndarray:
    """Push tissue radially away from the lesion: sample the template closer to the centre.

    Radial map f(r) = r (1 - A exp(-r^2 / 2 s^2)) is monotone for A < 1, so tissue is compressed,
    never folded; s spans the oedema so that the ventricles nearby shift (midline shift).
    """
    d = q - t.centre_mm[:, None]
    r2 = (d**2).sum(0)
    s = 1.2 * t.r_oedema_mm
    return t.centre_mm[:, None] + d * (1 - t.mass_effect * np.exp(-r2 / (2 * s * s)))
