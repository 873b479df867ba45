"""Segmentations beside the images: matched by file name, reduced to tissue classes, made into channels.

Matching rule (``--with-seg SEG_DIR``): for an image ``<stem>.nii[.gz]``, the segmentation is the one file in
SEG_DIR whose stem is ``<stem>`` or starts with ``<stem>_`` (``IXI002_T1.nii.gz`` <-> ``IXI002_T1_DLMUSE.nii.gz``
or ``IXI002_T1.nii.gz``). No match, or two, is an error naming the files. The segmentation must have the
image's voxel grid (shape and affine).

Channels: label ids -> tissue index (``dlmuse``: the table in medfab.data.dlmuse; ``identity``: ids are
already 0..K-1) -> one channel per tissue, each a 0/1 mask taken through the image's own resize-and-pad rule
(so a channel is the tissue's fraction of each output voxel), mapped to [-1, 1]. Padding is background. At
sampling the writers take the argmax over these channels (medfab.sampling.writers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medfab.data.preprocess import fit_to_size
from medfab.data.volumes import nifti_stem
from medfab.errors import MedfabError

MAPS = ("dlmuse", "identity")
MAX_IDENTITY_CLASSES = 16


def match_segmentations(images: list[Path], seg_dir: str | Path) -> list[Path]:
    """The segmentation file of every image, by the module's matching rule; raises listing the misses."""
    seg_dir = Path(seg_dir)
    if not seg_dir.is_dir():
        raise MedfabError(f"--with-seg {seg_dir} is not a folder", "give the folder that holds the segmentations")
    segs = {nifti_stem(p): p for p in sorted(seg_dir.iterdir()) if nifti_stem(p) is not None}
    found, missing, ambiguous = [], [], []
    for img in images:
        stem = nifti_stem(img)
        if stem is None:
            raise MedfabError(f"{img} is not a NIfTI file", "--with-seg works with NIfTI volumes (.nii, .nii.gz)")
        hits = [p for s, p in segs.items() if s == stem or s.startswith(stem + "_")]
        if len(hits) == 1:
            found.append(hits[0])
        elif not hits:
            missing.append(Path(img).name)
        else:
            ambiguous.append(f"{Path(img).name}: {', '.join(p.name for p in hits)}")
    if missing or ambiguous:
        lines = [f"  no segmentation for {m}" for m in missing[:5]] + [f"  several for {a}" for a in ambiguous[:5]]
        n = len(missing) + len(ambiguous)
        raise MedfabError(f"{n} image(s) have no unique segmentation in {seg_dir}:\n" + "\n".join(lines),
                          "name each segmentation <image stem>.nii.gz or <image stem>_<suffix>.nii.gz "
                          "(e.g. IXI002_T1.nii.gz -> IXI002_T1_DLMUSE.nii.gz), one per image")
    return found


def tissue_names(seg_map: str, n_identity: int | None = None) -> list[str]:
    if seg_map == "dlmuse":
        from medfab.data.dlmuse import TISSUES

        return list(TISSUES)
    if seg_map == "identity":
        return [f"label_{k}" for k in range(n_identity or 0)]
    raise MedfabError(f"unknown segmentation map {seg_map!r}", f"choose one of: {', '.join(MAPS)}")


def to_tissues(labels: np.ndarray, seg_map: str, name: str = "segmentation") -> np.ndarray:
    """Label ids (any float/int array) -> tissue indices (uint8)."""
    ids = np.rint(labels).astype(np.int64)
    if ids.min() < 0:
        raise MedfabError(f"{name} has negative labels", "labels must be non-negative integers")
    if seg_map == "dlmuse":
        from medfab.data.dlmuse import lookup

        return lookup(max(255, int(ids.max())))[ids]
    if int(ids.max()) >= MAX_IDENTITY_CLASSES:
        raise MedfabError(f"{name} has label {int(ids.max())}; the identity map takes ids 0..{MAX_IDENTITY_CLASSES - 1}",
                          "use --seg-map dlmuse for DLMUSE/MUSE parcellations, or relabel to a few classes")
    return ids.astype(np.uint8)


def tissue_channels(tissue: np.ndarray, n_classes: int, size: int) -> np.ndarray:
    """(D, H, W) tissue indices -> (K, size, size, size) float32 in [-1, 1]: soft one-hot through the image's rule."""
    out = np.empty((n_classes,) + (size,) * tissue.ndim, dtype=np.float32)
    for k in range(n_classes):
        mask = (tissue == k).astype(np.float32) * 2 - 1                   # 0/1 -> -1/1
        out[k] = fit_to_size(mask, size, pad_value=1.0 if k == 0 else -1.0)
    return out


def load_segmentation_channels(images: list[Path], seg_dir: str | Path, preprocess: dict, *,
                               seg_map: str = "dlmuse", progress: bool = False) -> tuple[np.ndarray, list[str]]:
    """(N, K, S, S, S) tissue channels for ``images`` (their training order) and the K tissue names."""
    from medfab.data.readers.nifti import read_nifti, volume_shape

    tissue_names(seg_map)                                        # an unknown map is refused before any work
    if preprocess.get("fit", "pad") != "pad":
        raise MedfabError("--with-seg needs fit='pad' preprocessing", "drop the crop_head setting")
    size = int(preprocess["size"])
    segs = match_segmentations(images, seg_dir)
    tissues = []
    for img, seg in zip(images, segs):
        t = to_tissues(read_nifti(seg), seg_map, str(seg))
        shape = volume_shape(Path(img))
        if t.shape != shape:
            raise MedfabError(f"{seg.name} has shape {t.shape} but its image {Path(img).name} has {shape}",
                              "the segmentation must be on the image's voxel grid (resample it first)")
        tissues.append(t)
    n = len(tissue_names(seg_map)) if seg_map == "dlmuse" else int(max(t.max() for t in tissues)) + 1
    names = tissue_names(seg_map, n)
    it = zip(images, tissues)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, total=len(images), desc="segmentations", leave=False)
    x = np.empty((len(images), n) + (size,) * 3, dtype=np.float32)
    for i, (_img, t) in enumerate(it):
        x[i] = tissue_channels(t, n, size)
    return x, names
