"""Tell a file's format from its first bytes, not its name.

Extensions lie (a PNG saved as ``.jpg``, a DICOM file without extension), so every reader decides by
content. Only the first 132 bytes are read (DICOM's "DICM" sits at offset 128), which keeps a scan of
thousands of files cheap.
"""

from __future__ import annotations

import gzip
from pathlib import Path

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif"}
DICOM_EXTS = {".dcm", ".dicom", ".ima"}
NIFTI_EXTS = {".nii", ".nii.gz"}
# Files that are never data: OS litter and archive metadata. Hidden (dot) files are skipped as well.
_JUNK = {"thumbs.db", "desktop.ini", "__macosx"}


def is_hidden(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in _JUNK


def full_suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _is_nifti_header(head: bytes) -> bool:
    # NIfTI-1: sizeof_hdr == 348 (either byte order), magic "n+1\0"/"ni1\0" at 344. NIfTI-2: 540, magic at 4.
    if len(head) >= 4 and head[:4] in (b"\x5c\x01\x00\x00", b"\x00\x00\x01\x5c"):
        return True
    return len(head) >= 4 and head[:4] in (b"\x1c\x02\x00\x00", b"\x00\x00\x02\x1c")


def sniff(path: Path) -> str | None:
    """Return ``"image"``, ``"dicom"``, ``"nifti"``, ``"npz"`` or ``None`` (not a format medfab reads)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return None
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")):
        return "image"
    if head[:4] in (b"II*\x00", b"MM\x00*") or head.startswith(b"BM") or head[:6] in (b"GIF87a", b"GIF89a"):
        return "image"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if _is_nifti_header(head):
        return "nifti"
    if head.startswith(b"\x1f\x8b"):  # gzip: a .nii.gz if the decompressed start is a NIfTI header
        try:
            with gzip.open(path, "rb") as g:
                return "nifti" if _is_nifti_header(g.read(4)) else None
        except (OSError, EOFError):
            return None
    if head.startswith(b"PK\x03\x04") and path.name.lower().endswith(".npz"):
        return "npz"
    return None


def guess_by_name(path: Path) -> str | None:
    """The format a file's extension claims (used only when its content is not recognised).

    A file that claims to be an image but whose bytes are not is kept as a sample, so that loading it
    fails with a clear error instead of the file silently disappearing from the data set. DICOM files
    written without the 128-byte preamble are also found this way.
    """
    ext = full_suffix(path)
    if ext in IMAGE_EXTS:
        return "image"
    if ext in DICOM_EXTS:
        return "dicom"
    if ext in NIFTI_EXTS:
        return "nifti"
    return None
