"""Read a folder of NIfTI volumes (and their segmentations) into one array in [-1, 1] at ``size``³.

Naming (agreed with medfab's 3D sampler): the segmentation of ``<stem>.nii.gz`` is ``<stem>_seg.nii.gz``
beside it. IXI's layout is understood too: ``t1/<stem>.nii.gz`` with ``seg/<stem>_DLMUSE.nii.gz``. Files
named ``*_seg.nii*`` / ``*_DLMUSE.nii*`` or inside a ``seg/`` folder are segmentations, never images.

Intensities follow medfab's preprocessing rule (:mod:`medfab.data.preprocess`): 8-bit files without a scale
factor (what ``medfab sample`` writes) map 0..255 to [-1, 1] exactly; other volumes (MRI in scanner units,
scaled uint8 such as IXI's) are normalised by their 0.5 / 99.5 percentiles; then each volume is resized so
its longest side is ``size`` and padded to a cube with -1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medfab.errors import MedfabError

NIFTI = (".nii", ".nii.gz")


@dataclass
class VolumeSet:
    x: np.ndarray  # (N, 1, S, S, S) float32 in [-1, 1]
    keys: list[str]  # file paths relative to the folder
    tissue: np.ndarray | None = None  # (N, T) voxels per tissue (tissues.TISSUES), None without segmentations

    def __len__(self) -> int:
        return len(self.x)

    def take(self, idx) -> VolumeSet:
        idx = np.asarray(idx, dtype=np.int64)
        return VolumeSet(
            self.x[idx], [self.keys[i] for i in idx], None if self.tissue is None else self.tissue[idx]
        )


def _stem(p: Path) -> str:
    return p.name[: -len(".nii.gz")] if p.name.endswith(".nii.gz") else p.name.rsplit(".", 1)[0]


def is_segmentation(p: Path) -> bool:
    s = _stem(p)
    return s.endswith(("_seg", "_DLMUSE")) or p.parent.name == "seg"


def seg_path(image: Path) -> Path | None:
    """The segmentation beside ``image`` (``<stem>_seg``) or in IXI's ``../seg/<stem>_DLMUSE``; None if absent."""
    stem = _stem(image)
    for cand in (
        *(image.with_name(f"{stem}_seg{e}") for e in (".nii.gz", ".nii")),
        *(image.parent.parent / "seg" / f"{stem}_DLMUSE{e}" for e in (".nii.gz", ".nii")),
    ):
        if cand.is_file():
            return cand
    return None


def list_volumes(folder: str | Path) -> list[Path]:
    """The image volumes under ``folder`` (recursive, sorted), segmentations left out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MedfabError(f"{folder} is not a folder", "give a folder of NIfTI volumes (.nii or .nii.gz)")
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.name.endswith(NIFTI) and not is_segmentation(p)
    )
    if not files:
        raise MedfabError(f"no NIfTI volumes (.nii, .nii.gz) under {folder}", "give the folder of 3D volumes")
    return files


def is_volume_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds NIfTI files whose first image is a 3D volume (auto-detects ``--dims 3``)."""
    from medfab.data.readers.nifti import volume_shape

    try:
        first = list_volumes(folder)[0]
        return len([n for n in volume_shape(first) if n > 1]) == 3
    except (MedfabError, OSError, ValueError):
        return False


def _eight_bit(path: Path) -> bool:
    import nibabel as nib

    img = nib.load(str(path))
    slope, inter = img.dataobj.slope, img.dataobj.inter
    return img.get_data_dtype() == np.uint8 and slope in (1.0, None) and inter in (0.0, None)


def load_volumes(folder: str | Path, size: int, *, name: str = "volumes", min_n: int = 2) -> VolumeSet:
    """All volumes of ``folder`` as (N, 1, size, size, size); tissue voxel counts when every one has a segmentation."""
    from medfab.data.preprocess import PreprocessConfig, preprocess
    from medfab.data.readers.nifti import read_nifti
    from medfab.evaluation.volumes.tissues import TISSUES, tissue_counts

    files = list_volumes(folder)
    if len(files) < min_n:
        raise MedfabError(
            f"the {name} folder {folder} holds {len(files)} volume(s)", f"give at least {min_n}"
        )
    cfg = PreprocessConfig(size=size, spatial_dims=3)
    x = np.empty((len(files), 1, size, size, size), dtype=np.float32)
    segs = [seg_path(p) for p in files]
    tissue = np.zeros((len(files), len(TISSUES))) if all(segs) else None
    for i, p in enumerate(files):
        a = read_nifti(p)
        if a.ndim != 3:
            raise MedfabError(
                f"{p} is not a 3D volume (shape {a.shape})", "keep 2D images and 3D volumes apart"
            )
        x[i, 0] = preprocess(a, cfg.resolve(eight_bit=_eight_bit(p)), name=str(p))
        if tissue is not None:
            tissue[i] = tissue_counts(read_nifti(segs[i]))
    return VolumeSet(x, [str(p.relative_to(folder)) for p in files], tissue)
