"""One pass over a data set's files: header mode, size, content hash and a thumbnail per sample.

Shared by ``medfab data inspect`` and ``medfab data split``: each sample is decoded once, then only its
32x32 thumbnail is kept (6,400 images: about 25 MB), and duplicates are found on those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from medfab.data import duplicates as dup
from medfab.data.sample import Dataset, Sample
from medfab.errors import MedfabError

# Pillow modes -> what a user calls them (https://pillow.readthedocs.io/en/stable/handbook/concepts.html#modes)
_PIL_MODES = {
    "1": "binary 1-bit",
    "L": "grey 8-bit",
    "LA": "grey+alpha 8-bit",
    "P": "palette 8-bit",
    "PA": "palette+alpha 8-bit",
    "RGB": "RGB 8-bit",
    "RGBA": "RGBA 8-bit",
    "CMYK": "CMYK 8-bit",
    "YCbCr": "YCbCr 8-bit",
    "I;16": "grey 16-bit",
    "I;16L": "grey 16-bit",
    "I;16B": "grey 16-bit",
    "I;16N": "grey 16-bit",
    "I": "grey 32-bit int",
    "F": "grey 32-bit float",
}


@lru_cache(maxsize=4096)
def _nifti_mode(path: str) -> str:
    import nibabel as nib

    return f"NIfTI {nib.load(path).header.get_data_dtype()}"


@lru_cache(maxsize=4096)
def _dicom_mode(path: str) -> str:
    import pydicom

    p = Path(path)
    f = p if p.is_file() else min(q for q in p.iterdir() if q.is_file())
    ds = pydicom.dcmread(f, stop_before_pixels=True, force=True)
    bits = getattr(ds, "BitsAllocated", "?")
    sign = "signed" if getattr(ds, "PixelRepresentation", 0) else "unsigned"
    return f"DICOM {bits}-bit {sign} {getattr(ds, 'PhotometricInterpretation', '')}".strip()


@lru_cache(maxsize=64)
def _npz_mode(path: str, split: str | None) -> str:
    with np.load(path, allow_pickle=False) as z:
        return f"npz {z[f'{split}_images' if split else 'images'].dtype}"


def _decode(sample: Sample) -> tuple[np.ndarray, str]:
    """(float32 array, mode description) of one sample; MedfabError when it cannot be read."""
    from medfab.data.readers import load_array
    from medfab.data.readers.images import read_image

    if sample.reader == "image":
        a, mode = read_image(sample.path)  # the mode comes with the decode, no second open
        return a, _PIL_MODES.get(mode, mode)
    a = load_array(sample)
    try:
        mode = (
            {"nifti": _nifti_mode, "dicom": _dicom_mode}[sample.reader](str(sample.path))
            if sample.reader != "npz"
            else _npz_mode(str(sample.path), sample.split)
        )
    except Exception:  # noqa: BLE001 -- the pixels decoded; a header quirk must not make the sample "unreadable"
        mode = f"{sample.reader} float32"
    return a, mode


@dataclass
class Scan:
    """What one pass over the samples found; index i refers to ``dataset.samples[i]``."""

    dataset: Dataset
    keys: list[str]  # relative keys, e.g. "train/NonDemented/a.jpg"
    modes: list[str | None]  # None when unreadable
    sizes: list[tuple[int, ...] | None]  # (H, W) or (D, H, W)
    digests: list[str | None]  # content hash (file bytes; pixels for slices / npz rows)
    errors: dict[int, str] = field(default_factory=dict)  # unreadable samples: index -> reason
    blank: list[int] = field(default_factory=list)  # constant images (no intensity range)
    thumbs: dict[int, np.ndarray] = field(default_factory=dict)  # raw (32, 32) or (3, 32, 32)
    lows: dict[int, float] = field(default_factory=dict)  # per-thumbnail 0.5th percentile
    highs: dict[int, float] = field(default_factory=dict)  # per-thumbnail 99.5th percentile

    def mode_group(self, i: int) -> tuple:
        """Images scaled by one intensity range share a dimensionality and a bit depth."""
        mode = self.modes[i] or ""
        depth = "8-bit" if "8-bit" in mode or "1-bit" in mode else mode
        return (len(self.sizes[i] or ()), depth)


def scan(dataset: Dataset, *, progress: bool = True) -> Scan:
    """Decode every sample once; keep header facts, a content hash and a raw thumbnail."""
    from medfab.data.readers import relative_key

    samples = dataset.samples
    n = len(samples)
    s = Scan(dataset, [relative_key(x, dataset.root) for x in samples], [None] * n, [None] * n, [None] * n)
    it = range(n)
    if progress:
        from rich.console import Console
        from rich.progress import track

        # stderr, like every medfab progress bar, so that the report on stdout can be piped
        it = track(it, description="reading", console=Console(stderr=True), transient=True)
    for i in it:
        smp = samples[i]
        try:
            a, mode = _decode(smp)
        except MedfabError as e:
            s.errors[i] = e.message
            continue
        except Exception as e:  # noqa: BLE001 -- a reader bug or exotic file must not abort a whole inspection
            s.errors[i] = f"{type(e).__name__}: {e}"
            continue
        s.modes[i], s.sizes[i] = mode, tuple(int(d) for d in a.shape)
        whole_file = smp.index is None and smp.reader != "npz"
        s.digests[i] = dup.content_hash(smp.path) if whole_file else dup.array_hash(a)
        if a.ndim not in (2, 3) or min(a.shape) < 1:
            continue
        if float(a.max()) <= float(a.min()):
            s.blank.append(i)
            continue
        t = dup.thumbnail(a)
        s.thumbs[i] = t
        q = np.sort(t, axis=None)  # 1,024 (or 3,072) values: sorting beats np.percentile's overhead
        s.lows[i], s.highs[i] = float(q[int(0.005 * (q.size - 1))]), float(q[int(0.995 * (q.size - 1))])
    return s


def exact_groups(s: Scan) -> list[list[int]]:
    """Samples with identical content (size >= 2 each), largest group first."""
    by: dict[str, list[int]] = {}
    for i, d in enumerate(s.digests):
        if d is not None:
            by.setdefault(d, []).append(i)
    return sorted((g for g in by.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


def near_pairs(
    s: Scan, *, max_rmse: float = dup.MAX_RMSE, max_bits: int = dup.MAX_BITS
) -> tuple[np.ndarray, np.ndarray]:
    """Near-duplicate pairs of readable, non-blank samples: ((P, 2) indices, (P,) distance), closest first.

    Thumbnails are scaled by the intensity range of their mode group (:meth:`Scan.mode_group`), then all
    thumbnails of one shape are compared, so a 16-bit re-export of an 8-bit image is found too.
    Exact duplicates are included (distance 0); callers that report both may drop them.
    """
    scaled: dict[int, np.ndarray] = {}
    groups: dict[tuple, list[int]] = {}
    for i in s.thumbs:
        groups.setdefault(s.mode_group(i), []).append(i)
    for idx in groups.values():
        lo, hi = dup.intensity_range(np.array([s.lows[i] for i in idx]), np.array([s.highs[i] for i in idx]))
        scaled.update((i, dup.normalise_thumbnails(s.thumbs[i], lo, hi)) for i in idx)
    by_shape: dict[tuple, list[int]] = {}
    for i in sorted(scaled):
        by_shape.setdefault(scaled[i].shape, []).append(i)
    all_pairs, all_d = [np.zeros((0, 2), np.int64)], [np.zeros(0, np.float32)]
    for idx in by_shape.values():
        idx = np.array(idx)
        t = np.stack([scaled[i] for i in idx])  # (n, 32, 32) or (n, 3, 32, 32)
        p, d = dup.near_duplicate_pairs(t, dup.perceptual_hashes(t), max_rmse=max_rmse, max_bits=max_bits)
        all_pairs.append(idx[p])
        all_d.append(d)
    pairs, d = np.concatenate(all_pairs), np.concatenate(all_d)
    order = np.argsort(d, kind="stable")
    return pairs[order], d[order]
