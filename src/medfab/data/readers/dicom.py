"""DICOM files and series -> float32 arrays in modality units (e.g. Hounsfield units for CT).

* ``RescaleSlope``/``RescaleIntercept`` are applied to every slice (they may differ between slices).
* ``MONOCHROME1`` (low values shown white, common for X-ray) is inverted onto the same value range, so
  that bright means dense for every file.
* A folder whose DICOM files all belong to one series (same ``SeriesInstanceUID``, 2+ files) is one volume
  ``(D, H, W)``, slices ordered by position along the slice normal (``ImagePositionPatient`` .
  ``ImageOrientationPatient``), else by ``InstanceNumber``, else by file name. A multi-frame file is a
  volume too. Any other DICOM file is a 2D image.
* In ``volume_mode="2d"`` a volume becomes one sample per stored slice (axis 0, the acquisition plane).

Privacy: patient metadata (PatientName, PatientID, dates, ...) never leaves this module. The only thing
kept is :func:`subject_hash` of PatientID, used to keep one patient's images on one side of a split. It
is a salted SHA-256, truncated to 16 hex digits: one-way, but short IDs can be found by trying every
candidate ID, so treat the hashes as pseudonyms, not as anonymous. File and folder names do reach
outputs (sample keys): name files without patient identifiers.
"""

from __future__ import annotations

import hashlib
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from medfab.data.sample import Sample
from medfab.errors import MedfabError

_SALT = b"medfab-subject-v1:"
_HEADER_TAGS = [
    "SeriesInstanceUID", "PatientID", "NumberOfFrames", "InstanceNumber", "ImagePositionPatient",
    "ImageOrientationPatient", "Rows", "Columns",
]


def subject_hash(patient_id: str) -> str:
    """One-way pseudonym for a PatientID: ``"sub-"`` + 16 hex digits of salted SHA-256."""
    return "sub-" + hashlib.sha256(_SALT + patient_id.strip().encode("utf-8")).hexdigest()[:16]


def _read(path: Path, *, pixels: bool):
    import pydicom

    try:
        with warnings.catch_warnings():  # force=True on a non-DICOM file warns about every garbage "tag"
            warnings.simplefilter("ignore")
            if pixels:
                ds = pydicom.dcmread(str(path), force=True)
            else:
                ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=_HEADER_TAGS, force=True)
    except Exception as e:  # noqa: BLE001 -- pydicom raises many types for a file that is not DICOM
        raise MedfabError(f"cannot read DICOM file {path}: {e}", "the file is corrupt or not DICOM: replace or delete it") from None
    # force=True parses any bytes as tags; an image always has Rows (0028,0010).
    if getattr(ds, "Rows", None) is None:
        raise MedfabError(f"{path} is not a DICOM image (no Rows tag; named .dcm, but its content is not DICOM)",
                          "replace it with the real DICOM file, or delete it from the folder")
    return ds


def _subject(ds) -> str | None:
    pid = str(getattr(ds, "PatientID", "") or "").strip()
    return subject_hash(pid) if pid else None


def _frames(ds) -> int:
    try:
        return int(getattr(ds, "NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1


def _sort_key(ds, name: str):
    ipp, iop = getattr(ds, "ImagePositionPatient", None), getattr(ds, "ImageOrientationPatient", None)
    if ipp is not None and iop is not None and len(ipp) == 3 and len(iop) == 6:
        normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
        return (0, float(np.dot(normal, np.asarray(ipp, float))), name)
    if getattr(ds, "InstanceNumber", None) is not None:
        return (1, float(ds.InstanceNumber), name)
    return (2, 0.0, name)


def _slice_indices(n: int, slice_range: tuple[int, int] | None) -> range:
    return range(n)[slice(*slice_range)] if slice_range is not None else range(n)


def dicom_samples(
    folder: Path, files: list[Path], label: str, split: str | None, *, volume_mode: str,
    slice_range: tuple[int, int] | None, errors: list | None = None,
) -> list[Sample]:
    """Samples for the DICOM ``files`` found directly in ``folder`` (one series volume, or single files).

    ``errors``: when given, a file that is not DICOM is recorded there as (path, error) and left out.
    """
    headers = []
    for f in files:
        try:
            headers.append((f, _read(f, pixels=False)))
        except MedfabError as e:
            if errors is None:
                raise
            errors.append((f, e))
    if not headers:
        return []
    files = [f for f, _ in headers]
    series = {str(getattr(ds, "SeriesInstanceUID", "")) for _, ds in headers}
    single_frame = all(_frames(ds) == 1 for _, ds in headers)
    out: list[Sample] = []
    if len(files) > 1 and len(series) == 1 and "" not in series and single_frame:
        subject = _subject(headers[0][1])
        if volume_mode == "3d":
            return [Sample(folder, label, split, subject, None, None, "dicom")]
        return [Sample(folder, label, split, subject, i, 0, "dicom") for i in _slice_indices(len(files), slice_range)]
    multi = [s for s in series if s] if len(files) > 1 else []
    if len(multi) > 1 and len(multi) < len(files) and single_frame:
        by = {}
        for f, ds in headers:
            by.setdefault(str(getattr(ds, "SeriesInstanceUID", "")), []).append(f.name)
        names = "; ".join(f"{', '.join(v[:3])}{' ...' if len(v) > 3 else ''}" for v in by.values())
        raise MedfabError(
            f"{folder} mixes slices of {len(multi)} DICOM series (files: {names})",
            "put each series in its own folder (one folder = one volume), or single 2D images side by side",
        )
    for f, ds in headers:
        subject, n = _subject(ds), _frames(ds)
        if n == 1 or volume_mode == "3d":
            out.append(Sample(f, label, split, subject, None, None, "dicom"))
        else:
            out.extend(Sample(f, label, split, subject, i, 0, "dicom") for i in _slice_indices(n, slice_range))
    return out


def _pixels(ds, path: Path) -> np.ndarray:
    """Stored values -> modality values, MONOCHROME1 inverted, colour -> luminance. (H, W) or (F, H, W)."""
    try:
        a = ds.pixel_array.astype(np.float32)
    except Exception as e:  # noqa: BLE001 -- missing decoder for a compressed transfer syntax, truncated pixel data, ...
        raise MedfabError(
            f"cannot decode the pixels of DICOM file {path}: {e}",
            "if it is compressed (JPEG/JPEG2000), decompress it (e.g. `gdcmconv --raw`) or install pylibjpeg",
        ) from None
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if int(getattr(ds, "SamplesPerPixel", 1) or 1) == 3:
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            a = convert_color_space(a, photometric, "RGB").astype(np.float32)
        return a[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    a = a * slope + intercept
    if photometric == "MONOCHROME1":
        bits = int(getattr(ds, "BitsStored", 16) or 16)
        signed = int(getattr(ds, "PixelRepresentation", 0) or 0) == 1
        smin, smax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        lo, hi = sorted((smin * slope + intercept, smax * slope + intercept))
        a = (lo + hi) - a  # mirror onto the same range
    return a.astype(np.float32)


def series_files(folder: Path) -> list[Path]:
    from medfab.data.readers.sniff import guess_by_name, is_hidden, sniff

    return sorted(
        f for f in folder.iterdir()
        if f.is_file() and not is_hidden(f) and (sniff(f) or guess_by_name(f)) == "dicom"
    )


@lru_cache(maxsize=2)
def _read_series(folder: str, stamp: tuple) -> np.ndarray:
    files = series_files(Path(folder))
    dss = [(_read(f, pixels=True), f) for f in files]
    dss.sort(key=lambda p: _sort_key(p[0], p[1].name))
    slices = [_pixels(ds, f) for ds, f in dss]
    shapes = {s.shape for s in slices}
    if len(shapes) != 1:
        raise MedfabError(f"the slices of the DICOM series in {folder} differ in size: {sorted(shapes)}",
                          "keep only the slices of one series in this folder")
    vol = np.stack(slices)  # (D, H, W)
    vol.setflags(write=False)
    return vol


def read_dicom(path: str | Path, index: int | None = None) -> np.ndarray:
    """A file ((H, W), or (F, H, W) when multi-frame) or a series folder ((D, H, W)); ``index``: one slice."""
    path = Path(path)
    if path.is_dir():
        stamp = tuple((f.name, f.stat().st_mtime_ns) for f in series_files(path))
        a = _read_series(str(path), stamp)
    else:
        a = _pixels(_read(path, pixels=True), path)
    if index is not None:
        a = a[index]
    if not np.isfinite(a).all():
        raise MedfabError(f"{path} has NaN or infinite pixel values", "re-export the DICOM data")
    return np.array(a, dtype=np.float32)
