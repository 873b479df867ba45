"""NIfTI volumes (``.nii``, ``.nii.gz``) -> float32 arrays, as whole volumes or as 2D slices.

Every volume is first turned to the closest RAS+ orientation (``nibabel.as_closest_canonical``) so that
``slice_axis`` means the same anatomical axis in every file: 0 = sagittal, 1 = coronal, 2 = axial
(for a correctly written affine). The scaling stored in the header (``scl_slope``/``scl_inter``) is applied.
2D slices are rotated by 90 degrees so that they display upright (anterior/superior at the top).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from medfab.errors import MedfabError


def _load_header(path: Path):
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as e:  # noqa: BLE001 -- nibabel raises many types for a bad file (ImageFileError, EOFError, ...)
        raise MedfabError(f"cannot read NIfTI file {path}: {e}", "check that the file is a complete NIfTI-1/2 file") from None


def volume_shape(path: Path) -> tuple[int, ...]:
    """Shape after canonical reorientation, from the header only (no voxel data read).

    2D files give ``(H, W)``; a trailing singleton 4th axis is dropped; a real 4D series is refused.
    """
    import nibabel as nib

    img = _load_header(path)
    shape = tuple(int(s) for s in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 3:
        raise MedfabError(
            f"{path} is a {len(shape)}D volume {shape}; medfab reads 3D volumes or 2D images",
            "extract one 3D volume first (e.g. nibabel: img.slicer[..., 0], or fslroi) and save it as its own file",
        )
    if len(shape) == 3:
        ornt = nib.orientations.io_orientation(img.affine)
        canon = [0, 0, 0]
        for i, (out_axis, _flip) in enumerate(ornt):
            canon[int(out_axis)] = shape[i]
        shape = tuple(canon)
    return shape


@lru_cache(maxsize=2)  # slices of one volume are read one after another: keep the last volumes decoded
def _read_volume(path: str, mtime_ns: int) -> np.ndarray:
    import nibabel as nib

    img = _load_header(Path(path))
    if len(img.shape) > 3:
        volume_shape(Path(path))  # raises the 4D error, or the trailing singleton axes are dropped below
        img = img.slicer[(..., *([0] * (len(img.shape) - 3)))]
    if len(img.shape) == 3:
        img = nib.as_closest_canonical(img)
    try:
        a = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as e:  # noqa: BLE001 -- truncated gzip, short file, bad dtype: all the same to the user
        raise MedfabError(f"cannot read the voxels of {path}: {e}", "the file is truncated or corrupt: re-export it") from None
    if not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise MedfabError(
            f"{path} has {bad} NaN or infinite voxels",
            "replace them (e.g. numpy.nan_to_num) and save the volume again, or drop the file",
        )
    a.setflags(write=False)  # shared by the cache: callers get copies of slices
    return a


def read_nifti(path: str | Path, index: int | None = None, axis: int | None = None) -> np.ndarray:
    """The volume ``(D, H, W)`` (or a 2D file's ``(H, W)``), or one upright 2D slice ``(H, W)``."""
    path = Path(path)
    vol = _read_volume(str(path), path.stat().st_mtime_ns)
    if index is None:
        return np.array(vol, dtype=np.float32)
    return np.ascontiguousarray(np.rot90(np.take(vol, index, axis=axis if axis is not None else 2)), dtype=np.float32)
