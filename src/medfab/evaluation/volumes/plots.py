"""The 3D figures: three orthogonal slices per volume, a mid-slice montage, voxel-variance maps, in-brain
intensity histograms. Volumes are (N, 1, D, H, W) in [-1, 1]; colours as in :mod:`medfab.evaluation.plots`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medfab.evaluation.plots import REAL, REAL_B, SYNTH, _save, plt

VIEWS = ("axial", "coronal", "sagittal")


def mid_slices(vol: np.ndarray) -> list[np.ndarray]:
    """The three orthogonal middle slices of one volume (D, H, W) (RAS order: axis 2 = axial), upright."""
    d, h, w = vol.shape
    return [np.rot90(vol[:, :, w // 2]), np.rot90(vol[:, h // 2, :]), np.rot90(vol[d // 2, :, :])]


def orthogonal_slices(rows: list[tuple[str, np.ndarray]], path: Path, *, title: str = "") -> Path:
    """One row per volume: its axial, coronal and sagittal middle slices; ``rows`` = (label, (1, D, H, W))."""
    fig, axes = plt.subplots(
        len(rows), 3, figsize=(6.3, 2.1 * len(rows) + 0.4), squeeze=False, layout="constrained"
    )
    for r, (label, vol) in enumerate(rows):
        for c, sl in enumerate(mid_slices(np.asarray(vol)[0])):
            ax = axes[r, c]
            ax.imshow(sl, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(VIEWS[c], fontsize=9)
        axes[r, 0].set_ylabel(label, fontsize=8, color=SYNTH if label.startswith("synthetic") else REAL)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def montage(rows: list[tuple[str, np.ndarray]], path: Path, *, per_row: int = 8, title: str = "") -> Path:
    """Axial middle slice of each volume, one row per set: ``rows`` = (label, (N, 1, D, H, W))."""
    n = max(1, min(per_row, max(len(v) for _, v in rows)))
    fig, axes = plt.subplots(
        len(rows), n, figsize=(1.3 * n, 1.45 * len(rows) + 0.4), squeeze=False, layout="constrained"
    )
    for r, (label, vols) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if c < len(vols):
                ax.imshow(mid_slices(np.asarray(vols[c])[0])[0], cmap="gray", vmin=-1, vmax=1)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def variance_maps(maps: dict[str, np.ndarray], path: Path) -> Path:
    """Per set (row): the voxel-variance volume (D, H, W) in three middle slices, one colour scale for all."""
    vmax = max(float(np.percentile(m, 99.5)) for m in maps.values()) or 1.0
    fig, axes = plt.subplots(
        len(maps), 3, figsize=(6.8, 2.1 * len(maps) + 0.5), squeeze=False, layout="constrained"
    )
    im = None
    for r, (label, m) in enumerate(maps.items()):
        for c, sl in enumerate(mid_slices(m)):
            im = axes[r, c].imshow(sl, cmap="magma", vmin=0, vmax=vmax)
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(VIEWS[c], fontsize=9)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.8, label="variance across volumes")
    fig.suptitle("Voxel variance (dark = every volume alike: a sign of mode collapse)", fontsize=10)
    return _save(fig, path)


def brain_histograms(edges: np.ndarray, densities: dict[str, np.ndarray], path: Path) -> Path:
    """Intensity densities inside the brain masks, one line per set."""
    colours = {"real A": REAL, "real B": REAL_B, "synthetic": SYNTH}
    centres = (np.asarray(edges[:-1]) + np.asarray(edges[1:])) / 2
    fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
    for label, p in densities.items():
        ax.plot(
            centres, p, color=colours.get(label), lw=1.6, ls="--" if label == "real B" else "-", label=label
        )
    ax.set_xlabel("intensity (inside the brain)", fontsize=8)
    ax.set_ylabel("density", fontsize=8)
    ax.legend(fontsize=7)
    return _save(fig, path)
