"""Tissue classes of a brain segmentation, and DLMUSE label ids -> tissue (for IXI's parcellations).

The tissue classes and the DLMUSE table are those the 3D generator trains on (:mod:`medfab.data.dlmuse`:
0 background, 1 csf = the ventricles, 2 grey matter, 3 white matter with the brain stem). Two kinds of
segmentation meet in a 3D evaluation:

* a **tissue** map, as ``medfab sample`` writes it (``<stem>_seg.nii.gz``): label k = tissue k;
* a **DLMUSE** parcellation (149 labels, IXI's ``seg/``), mapped through the same table.

A file whose largest label is at most ``len(TISSUES)`` is read as a tissue map, anything else as DLMUSE.
Volumes are compared as each tissue's *share of the labelled brain* (voxels of the tissue / voxels of all
tissues): the share needs no voxel size, so a generated volume resampled to 64³ compares with a real 2 mm
parcellation and with ``seg_volumes.csv`` (mm³ per ROI) alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medfab.data import dlmuse
from medfab.errors import MedfabError

#: tissue label k (1-based) -> name, in label order (background, label 0, is not a tissue)
TISSUES = tuple(t.replace("_", " ") for t in dlmuse.TISSUES[1:])

_LUT = dlmuse.lookup(255)  # DLMUSE id -> tissue index (0 = background)
#: tissue name -> DLMUSE label ids (single ROIs; derived ids >= 300 of seg_volumes.csv are composites)
DLMUSE_TISSUES: dict[str, tuple[int, ...]] = {
    name: tuple(int(i) for i in np.flatnonzero(_LUT == k + 1)) for k, name in enumerate(TISSUES)
}


def tissue_counts(seg: np.ndarray) -> np.ndarray:
    """Voxels per tissue (len(TISSUES),) of one segmentation: a tissue map or a DLMUSE parcellation."""
    labels = np.rint(np.asarray(seg)).astype(np.int64).ravel()
    if labels.size and labels.min() < 0:
        raise MedfabError("a segmentation holds negative labels", "labels are 0 (background) and 1, 2, ...")
    if labels.max(initial=0) > len(TISSUES):  # a DLMUSE parcellation: ids -> tissues (ids > 255: background)
        labels = np.where(labels < len(_LUT), _LUT[np.minimum(labels, len(_LUT) - 1)], 0)
    return np.bincount(labels, minlength=len(TISSUES) + 1)[1 : len(TISSUES) + 1].astype(np.float64)


def shares(counts: np.ndarray) -> np.ndarray:
    """Each tissue's share of the labelled brain, rows of ``counts`` (N, T) -> (N, T); 0 rows stay 0."""
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    total = counts.sum(1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def read_seg_volumes(path: str | Path) -> tuple[list[str], np.ndarray]:
    """``seg_volumes.csv`` (one row per subject: MRID, then mm³ per DLMUSE ROI id) -> (ids, counts (N, T))."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise MedfabError(
            f"--real-seg-volumes {path} does not exist", "give the seg_volumes.csv of the real set"
        )
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 3:
        raise MedfabError(
            f"{path} has fewer than 2 subjects", "give a CSV with a header and one row per subject"
        )
    header = rows[0]
    col = {h.strip(): i for i, h in enumerate(header)}
    missing = sorted({i for ids in DLMUSE_TISSUES.values() for i in ids if str(i) not in col})
    if len(missing) > 10:
        raise MedfabError(
            f"{path} lacks {len(missing)} DLMUSE ROI columns (e.g. {missing[:5]})",
            "give a DLMUSE seg_volumes.csv: a subject id column, then one column per ROI id (mm³)",
        )
    ids, out = [], []
    for r in rows[1:]:
        if not r:
            continue
        try:
            vals = [
                sum(float(r[col[str(i)]]) for i in ids_ if str(i) in col) for ids_ in DLMUSE_TISSUES.values()
            ]
        except (ValueError, IndexError):
            raise MedfabError(
                f"{path}: row {r[0]!r} holds a value that is not a number", "fix the CSV"
            ) from None
        ids.append(r[0])
        out.append(vals)
    return ids, np.asarray(out, dtype=np.float64)
