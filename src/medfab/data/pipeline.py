"""Provisional loader (folder-per-class images only); replaced by readers + preprocess + cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medfab.data.tensors import TensorSet
from medfab.errors import MedfabError

_EXT = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}


def load_tensors(path, *, size=64, split=None, cache_dir=None, preprocess=None, progress=True) -> TensorSet:
    root = Path(path)
    if not root.exists():
        raise MedfabError(f"{root} does not exist", "give the folder that holds one sub-folder per class")
    if split is not None:
        root = root / split
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    xs, ys, keys = [], [], []
    for ci, c in enumerate(classes):
        for f in sorted((root / c).iterdir()):
            if f.suffix.lower() not in _EXT:
                continue
            im = Image.open(f).convert("F")
            w, h = im.size
            s = max(w, h)
            canvas = Image.new("F", (s, s), 0.0)
            canvas.paste(im, ((s - w) // 2, (s - h) // 2))
            a = np.asarray(canvas.resize((size, size), Image.BOX), dtype=np.float32)
            lo, hi = float(a.min()), float(a.max())
            a = (a - lo) / (hi - lo) * 2 - 1 if hi > lo else np.zeros_like(a) - 1
            xs.append(a[None])
            ys.append(ci)
            keys.append(str(f.relative_to(Path(path))))
    return TensorSet(np.stack(xs).astype(np.float32), np.array(ys, dtype=np.int64), classes, keys)
