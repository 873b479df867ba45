"""3D volumes end to end: a folder of volumes as one class, and the geometry outputs are written with.

A generated volume is written in the *training* geometry: the canonical (RAS+) affine of the training data,
rescaled and shifted by the square/cube rule of :func:`medfab.data.preprocess.placement`. For an input of shape
``n`` (canonical axes) and output side ``S``, resized to ``m = placement(n, S)`` at offset ``o``, output voxel
``q`` samples input voxel ``i = (q - o + 0.5) * n / m - 0.5`` (the centre-aligned resize), so

    A_out = A_in @ [[diag(n / m), (0.5 - o) * n / m - 0.5], [0, 1]]      spacing_out = spacing_in * n / m
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medfab.data.preprocess import placement
from medfab.data.sample import Dataset, Sample
from medfab.errors import MedfabError

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def nifti_stem(path: str | Path) -> str | None:
    """File name without ``.nii`` / ``.nii.gz``; None for other files."""
    name = Path(path).name
    for suf in NIFTI_SUFFIXES:
        if name.endswith(suf) and len(name) > len(suf):
            return name[: -len(suf)]
    return None


def training_tensors(root: str | Path, *, size: int, split: str | None, preprocess=None, dims: int = 2,
                     progress: bool = True):
    """The TensorSet ``medfab train`` reads from ``root``: a folder of volumes as one class, or the usual
    ROOT/[split/]<class>/ layout (volumes as 2D slices when ``dims`` is 2). The near-copy filter of
    ``medfab sample`` reads a run's training data again through here, with the run's recorded settings."""
    from medfab.data.tensors import load_tensors

    flat = single_class_dataset(root)
    if flat is not None:
        from medfab.data.pipeline import dataset_tensors

        return flat, dataset_tensors(flat, size=size, preprocess=preprocess, progress=progress)
    return None, load_tensors(root, size=size, split=split, preprocess=preprocess, progress=progress,
                              **({"volume_mode": "2d"} if dims == 2 else {}))


def single_class_dataset(root: str | Path) -> Dataset | None:
    """A folder of NIfTI volumes with no class folders (e.g. ixi_t1/t1) as one class named after the folder.

    None when ``root`` has sub-folders (then the usual ROOT/<class>/ layout applies) or holds no NIfTI file.
    """
    root = Path(root).resolve()
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    if any(p.is_dir() for p in entries):
        return None
    files = [p for p in entries if p.is_file() and nifti_stem(p) is not None]
    if not files:
        return None
    label = root.name
    return Dataset(root, [Sample(p, label, reader="nifti") for p in files], [label],
                   [f"one class '{label}': {root} holds volumes and no class folders"])


def canonical_affine(path: str | Path) -> tuple[np.ndarray, tuple[int, ...]]:
    """(4x4 affine, shape) of a 3D NIfTI after RAS+ reorientation (as the reader returns its voxels)."""
    import nibabel as nib
    from nibabel.orientations import inv_ornt_aff, io_orientation

    img = nib.load(str(path))
    shape = tuple(int(s) for s in img.shape[:3])
    ornt = io_orientation(img.affine)
    affine = img.affine @ inv_ornt_aff(ornt, shape)
    canon = [0, 0, 0]
    for i, (axis, _flip) in enumerate(ornt):
        canon[int(axis)] = shape[i]
    return affine, tuple(canon)


def output_affine(affine: np.ndarray, shape: tuple[int, ...], size: int) -> np.ndarray:
    """The affine of a ``size``^3 output made from a volume of ``shape`` with ``affine`` (module docstring)."""
    target, offset = placement(shape, size)
    r = np.array(shape, dtype=np.float64) / np.array(target, dtype=np.float64)       # input voxels per output
    m = np.eye(4)
    m[:3, :3] = np.diag(r)
    m[:3, 3] = (0.5 - np.array(offset)) * r - 0.5
    return np.asarray(affine, dtype=np.float64) @ m


def reference_geometry(path: str | Path, size: int) -> dict:
    """What outputs of a run trained on volumes like ``path`` are written with (recorded in config.json)."""
    affine, shape = canonical_affine(path)
    out = output_affine(affine, shape, size)
    spacing = np.sqrt((out[:3, :3] ** 2).sum(axis=0))
    return {"affine": np.round(out, 6).tolist(), "spacing_mm": np.round(spacing, 6).tolist(),
            "reference": Path(path).name, "input_shape": list(shape),
            "rule": "canonical RAS+ affine of the reference volume, scaled and shifted by the pad-to-cube rule"}


def check_volume_data(ts, dims: int | None) -> None:
    """``--dims`` against what was loaded: 3 needs volumes, 2 needs images/slices."""
    got = ts.x.ndim - 2
    if dims is not None and dims != got:
        raise MedfabError(f"--dims {dims} but the data are {got}D ({'volumes' if got == 3 else 'images'})",
                          "use --dims 2 to cut volumes into slices, or give a folder of 3D NIfTI volumes for --dims 3")


def add_volume_inputs(ts, run_config: dict, root: str | Path, flat: Dataset | None, with_seg: str | Path | None,
                      seg_map: str = "dlmuse", progress: bool = False):
    """For 3D training data: record the output geometry and, with ``with_seg``, append the tissue channels.

    Returns (TensorSet with channels ``1 + K``, run config with ``volume`` and ``segmentation`` entries).
    """
    from medfab.data.tensors import TensorSet

    base = Path(root).resolve()
    files = [base / k for k in ts.keys]
    size = int(ts.x.shape[-1])
    cfg = dict(run_config)
    if files and files[0].is_file() and nifti_stem(files[0]) is not None:
        cfg["volume"] = reference_geometry(files[0], size)
    if with_seg is None:
        return ts, cfg
    from medfab.data.segmentation import load_segmentation_channels

    seg, names = load_segmentation_channels(files, with_seg, ts.preprocess or {"size": size}, seg_map=seg_map,
                                            progress=progress)
    x = np.concatenate([np.asarray(ts.x, dtype=np.float32), seg], axis=1)     # (N, 1 + K, S, S, S)
    cfg["segmentation"] = {"folder": str(Path(with_seg).resolve()), "map": seg_map, "classes": names,
                           "image_channels": int(ts.x.shape[1]), "channels": list(range(ts.x.shape[1], x.shape[1])),
                           "matching": "seg stem == image stem, or image stem + '_' + suffix (one per image)"}
    return TensorSet(x, ts.y, ts.classes, ts.keys, ts.preprocess), cfg
