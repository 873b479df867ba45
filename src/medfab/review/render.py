"""Images as a reviewer receives them: freshly encoded 8-bit grey PNGs with no metadata.

The stored file is read with medfab's readers and written again from its pixels alone, so no text chunk
(e.g. the "synthetic" mark that ``medfab sample`` writes), EXIF, DICOM tag or file name reaches the browser.
A 3D volume is shown as three orthogonal slices (0 sagittal, 1 coronal, 2 axial) on one intensity window
taken from the whole volume, so moving a slider does not change the contrast.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

from medfab.data.sample import Sample
from medfab.review.db import Item

_CACHE_SIZE = 512
_cache: OrderedDict[tuple, bytes] = OrderedDict()
_lock = threading.Lock()


def _array(item: Item) -> np.ndarray:
    from medfab.data.readers import load_array

    return load_array(Sample(Path(item.path), item.label, None, None, item.idx, item.axis, item.reader))


def _window(a: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(a, [0.5, 99.5]) if a.size > 64 else (a.min(), a.max())
    if hi <= lo:
        lo, hi = float(a.min()), float(a.max())
    return float(lo), float(hi if hi > lo else lo + 1.0)


def _png(a: np.ndarray, lo: float, hi: float) -> bytes:
    u8 = np.clip((a - lo) / (hi - lo) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8, mode="L").save(buf, format="PNG")  # no pnginfo: nothing but pixels
    return buf.getvalue()


def volume_shape(item: Item) -> tuple[int, ...]:
    """(H, W) or (D, H, W) of the item's pixels."""
    key = ("shape", item.id)
    with _lock:
        if key in _cache:
            return _cache[key]  # type: ignore[return-value]
    shape = tuple(int(s) for s in _array(item).shape)
    _put(key, shape)
    return shape


def render(item: Item, axis: int | None = None, index: int | None = None) -> bytes:
    """PNG bytes of a 2D item, or of slice ``index`` along ``axis`` of a 3D item (rotated upright)."""
    key = (item.id, axis, index)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    a = _array(item)
    with _lock:
        win = _cache.get(("window", item.id))
    if win is None:  # one window per volume, computed once: every slice shares its contrast
        win = _window(a)
        _put(("window", item.id), win)
    lo, hi = win
    if a.ndim == 3:
        a = np.rot90(np.take(a, index, axis=axis))  # (H, W), same convention as the NIfTI reader's slices
    data = _png(a, lo, hi)
    _put(key, data)
    return data


def _put(key, value) -> None:
    with _lock:
        _cache[key] = value
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
