"""Readers: labelled samples from folders, label CSVs, NIfTI, DICOM and MedMNIST ``.npz``.

``read_dataset(path) -> Dataset`` lists samples without decoding pixels; ``load_array(sample)`` decodes
one of them into a float32 array of raw intensities: (H, W) for 2D, (D, H, W) for 3D.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medfab.data.readers.dataset import SPLIT_NAMES, read_dataset
from medfab.data.readers.dicom import read_dicom, subject_hash
from medfab.data.readers.images import image_mode, read_image
from medfab.data.readers.nifti import read_nifti
from medfab.data.readers.npz import read_npz_row
from medfab.data.sample import Sample
from medfab.errors import MedfabError

__all__ = ["SPLIT_NAMES", "image_mode", "load_array", "read_dataset", "relative_key", "subject_hash"]


def load_array(sample: Sample) -> np.ndarray:
    """Decode one sample: float32 raw intensities, (H, W) or (D, H, W). Raises MedfabError naming the file."""
    return load_array_with_mode(sample)[0]


def load_array_with_mode(sample: Sample) -> tuple[np.ndarray, str | None]:
    """:func:`load_array` plus the Pillow mode of an image file (None for other readers)."""
    if sample.reader == "image":
        return read_image(sample.path)
    return _load_other(sample), None


def _load_other(sample: Sample) -> np.ndarray:
    if not Path(sample.path).exists():
        raise MedfabError(f"{sample.path} no longer exists", "restore the file, or list the data again")
    if sample.reader == "nifti":
        return read_nifti(sample.path, sample.index, sample.axis)
    if sample.reader == "dicom":
        return read_dicom(sample.path, sample.index)
    if sample.reader == "npz":
        return read_npz_row(sample.path, sample.split, sample.index)
    raise MedfabError(f"unknown reader {sample.reader!r} for {sample.path}", "use image, nifti, dicom or npz")


def relative_key(sample: Sample, root: str | Path) -> str:
    """``sample.key`` with the path relative to the data root (POSIX separators), e.g. ``train/No/a.jpg``.

    For a ``.npz`` root the key is ``<file name>#<split>:<row>`` so rows of different splits differ.
    """
    root = Path(root)
    p = Path(sample.path)
    if sample.reader == "npz":
        return f"{p.name}#{sample.split + ':' if sample.split else ''}{sample.index}"
    try:
        rel = p.relative_to(root).as_posix()
    except ValueError:
        rel = p.as_posix()
    if sample.index is not None:
        rel += f"#{'' if sample.axis is None else f'axis{sample.axis}:'}{sample.index}"
    return rel
