"""2D image files (PNG, JPEG, TIFF, BMP, GIF) -> float32 grey arrays with the original values.

Pillow decides the format from the file's content, so a PNG named ``.jpg`` loads. Modes are mapped so
that no information is thrown away that a grey medical image can carry:

* ``L`` / ``P`` / ``1`` / ``RGB`` / ... -> 8-bit values 0..255 (colour -> grey by ITU-R 601 luminance,
  0.299 R + 0.587 G + 0.114 B, the weights Pillow's own ``convert("L")`` uses, computed in float so that
  no rounding happens);
* ``I;16*`` / ``I`` / ``F`` -> the stored 16-bit, 32-bit or float values, unscaled;
* an alpha channel (``RGBA``, ``LA``, transparent palettes) is composited over black: transparent pixels
  are background.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from medfab.errors import MedfabError

# A truncated file must fail loudly; Pillow's lenient mode would hand back a half-grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False
Image.MAX_IMAGE_PIXELS = 1 << 28  # medical images are large, but not gigapixel

EIGHT_BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "La", "RGBa"}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)  # float64: grey RGB (R=G=B) stays exact


def _unreadable(path: Path, why: Exception) -> MedfabError:
    if isinstance(why, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return MedfabError(
            f"cannot read image {path}: it declares more than {Image.MAX_IMAGE_PIXELS:,} pixels "
            "(a decompression bomb, or a gigapixel scan)",
            "delete it, or downsample it to a normal size before putting it in the data folder",
        )
    why = "not a recognised image format" if isinstance(why, UnidentifiedImageError) else (str(why) or type(why).__name__)
    return MedfabError(
        f"cannot read image {path}: {why}",
        "the file is corrupt, truncated or not an image: replace it or delete it from the data folder",
    )


def image_mode(path: str | Path) -> str:
    """The Pillow mode from the file header (no pixel decoding), e.g. ``"L"``, ``"I;16"``, ``"RGB"``."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.mode
    except Exception as e:  # noqa: BLE001 -- Pillow raises many types (incl. DecompressionBombError) for bad files
        raise _unreadable(path, e) from None


def _to_grey(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return np.asarray(im).astype(np.float32)  # (H, W) stored values, no rescaling
    if mode == "1":
        return np.asarray(im.convert("L"), dtype=np.float32)
    if mode == "L":
        return np.asarray(im, dtype=np.float32)
    if mode in ("LA", "La"):
        a = np.asarray(im.convert("LA"), dtype=np.float32)  # (H, W, 2)
        return a[..., 0] * (a[..., 1] / np.float32(255.0))
    if mode == "PA" or (mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
    elif mode == "P" or mode not in ("RGB", "RGBA", "RGBX", "RGBa"):
        im = im.convert("RGB")  # palette, CMYK, YCbCr, LAB, HSV
    a = np.asarray(im, dtype=np.float64)  # (H, W, 3 or 4)
    grey = a[..., :3] @ _LUMA  # (H, W)
    if a.shape[-1] == 4 and im.mode != "RGBX":
        grey = grey * (a[..., 3] / 255.0)  # composite over black
    return grey.astype(np.float32)


def read_image(path: str | Path) -> tuple[np.ndarray, str]:
    """Decode one image file: ``(array (H, W) float32, pillow mode)``. Multi-page TIFF: the first page."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # over MAX_IMAGE_PIXELS (below twice that Pillow only warns): refuse
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                mode = im.mode
                a = _to_grey(im)
    except MemoryError:
        raise MedfabError(f"not enough memory to decode image {path}", "downsample the image, or free memory") from None
    except Exception as e:  # noqa: BLE001 -- Pillow raises many types (incl. DecompressionBombError) for bad files
        raise _unreadable(path, e) from None
    if mode in ("F", "I") and not np.isfinite(a).all():  # integer modes cannot hold NaN
        raise MedfabError(f"{path} contains NaN or infinite pixel values", "re-export the image without them")
    return a, mode
