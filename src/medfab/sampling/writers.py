"""Image files that say they are synthetic: PNG text chunks for 2D, the NIfTI ``descrip`` field for 3D."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SOFTWARE = "medfab"
NIFTI_DESCRIP = b"medfab SYNTHETIC"


def to_uint(x: np.ndarray, bit_depth: int) -> np.ndarray:
    """[-1, 1] floats -> uint8 (0..255) or uint16 (0..65535), rounding to nearest."""
    top = 255 if bit_depth == 8 else 65535
    v = np.rint((np.clip(x, -1.0, 1.0) + 1.0) * (top / 2.0))
    return v.astype(np.uint8 if bit_depth == 8 else np.uint16)


def extension(spatial_dims: int) -> str:
    return ".png" if spatial_dims == 2 else ".nii.gz"


def write_png(path: Path, image: np.ndarray, *, bit_depth: int, description: str) -> None:
    """``image`` (C, H, W) in [-1, 1]; grey for C=1, RGB for C=3 (8-bit only), else the first channel."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", SOFTWARE)
    info.add_text("Description", description)
    if image.shape[0] == 3 and bit_depth == 8:
        im = Image.fromarray(to_uint(image.transpose(1, 2, 0), 8), mode="RGB")
    else:
        a = to_uint(image[0], bit_depth)                                # (H, W)
        im = Image.fromarray(a)        # uint8 -> "L", uint16 -> "I;16" (a 16-bit PNG)
    im.save(path, pnginfo=info)


def write_nifti(path: Path, volume: np.ndarray, *, bit_depth: int, description: str,
                affine: np.ndarray | None = None) -> None:
    """``volume`` (C, D, H, W) in [-1, 1] -> first channel, stored (D, H, W) with ``affine`` (default: unit)."""
    import nibabel as nib

    img = nib.Nifti1Image(to_uint(volume[0], bit_depth), affine=np.eye(4) if affine is None else np.asarray(affine))
    img.header["descrip"] = NIFTI_DESCRIP                               # 80 bytes max; the full text is
    img.header.set_xyzt_units("mm")                                     # in manifest.csv / model_card.json
    nib.save(img, str(path))


def write_image(path: Path, image: np.ndarray, *, bit_depth: int, description: str) -> None:
    if image.ndim == 3:
        write_png(path, image, bit_depth=bit_depth, description=description)
    else:
        write_nifti(path, image, bit_depth=bit_depth, description=description)


def read_png_text(path: Path) -> dict[str, str]:
    """The text chunks of a PNG (to check the synthetic marker)."""
    from PIL import Image

    with Image.open(path) as im:
        return dict(im.text)


# --- image + segmentation pairs (runs trained with ``medfab train --with-seg``) ---------------------------------
SEG_SUFFIX = "_seg"                       # OUT/<class>/<stem>_seg.nii.gz beside <stem>.nii.gz (what the 3D
                                          # evaluation reads as its segmentation, never as an image)
NIFTI_SEG_DESCRIP = b"medfab SYNTHETIC segmentation"


def split_channels(image: np.ndarray, config: dict | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(image channels, integer tissue labels or None): the argmax over a run's segmentation channels."""
    seg = (config or {}).get("segmentation")
    if not seg:
        return image, None
    n_img = int(seg["image_channels"])
    labels = np.argmax(image[n_img:], axis=0).astype(np.uint8)                 # (D, H, W) tissue index
    return image[:n_img], labels


def write_label_nifti(path: Path, labels: np.ndarray, *, affine: np.ndarray | None = None) -> None:
    """Integer labels (D, H, W) as a uint8 NIfTI label map (intent 'label'), marked synthetic in ``descrip``."""
    import nibabel as nib

    img = nib.Nifti1Image(labels.astype(np.uint8), affine=np.eye(4) if affine is None else np.asarray(affine))
    img.header.set_intent("label")
    img.header["descrip"] = NIFTI_SEG_DESCRIP
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


def seg_path(rel: str, config: dict | None) -> str | None:
    """Where :func:`write_sample` puts the segmentation of the sample at ``rel`` (relative), or None."""
    if not (config or {}).get("segmentation") or not rel.endswith(".nii.gz"):
        return None
    return rel[: -len(".nii.gz")] + SEG_SUFFIX + ".nii.gz"


def write_sample(root: Path, rel: str, image: np.ndarray, *, bit_depth: int, description: str,
                 config: dict | None = None) -> None:
    """Write one fabricated sample under ``root``: the image at ``rel`` and, for a run trained with segmentation
    channels, its tissue labels at :func:`seg_path` (``<stem>_seg.nii.gz``); volumes get the run's recorded affine
    (``config["volume"]``, see medfab.data.volumes), images and old runs are written as by :func:`write_image`.
    """
    image, labels = split_channels(image, config)
    if image.ndim == 3:
        write_png(root / rel, image, bit_depth=bit_depth, description=description)
        return
    affine = ((config or {}).get("volume") or {}).get("affine")
    write_nifti(root / rel, image, bit_depth=bit_depth, description=description, affine=affine)
    seg_rel = seg_path(rel, config)
    if labels is not None and seg_rel is not None:
        write_label_nifti(root / seg_rel, labels, affine=affine)
