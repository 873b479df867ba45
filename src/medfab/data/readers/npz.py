"""MedMNIST-style ``.npz`` files: ``{split}_images`` / ``{split}_labels`` arrays (or plain ``images``/``labels``).

Images are ``(N, H, W)`` grey, ``(N, H, W, 3)`` colour (-> luminance) or ``(N, D, H, W)`` volumes.
Label names are ``str(int)`` unless the file has a ``label_names`` or ``classes`` array, indexed by label.
A sample is one row: ``Sample(path=file, split=..., index=row, reader="npz")``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from medfab.data.sample import Sample
from medfab.errors import MedfabError

SPLITS = ("train", "val", "test")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _open(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 -- zipfile, pickle and format errors alike
        raise MedfabError(f"cannot read {path}: {e}", "give a .npz file written by numpy.savez") from None


def _array_name(split: str | None) -> str:
    return f"{split}_images" if split else "images"


def npz_samples(path: Path) -> tuple[list[Sample], list[str]]:
    """All rows of the file as samples, and the sorted class names."""
    with _open(path) as z:
        names = set(z.files)
        splits = [s for s in SPLITS if f"{s}_images" in names]
        parts = [(s, f"{s}_labels") for s in splits] or ([(None, "labels")] if "images" in names else [])
        if not parts:
            raise MedfabError(
                f"{path} has arrays {sorted(names)} but no 'train_images'/'test_images' or 'images'",
                "save images as '<split>_images' with '<split>_labels' (MedMNIST layout) or 'images' + 'labels'",
            )
        label_names = None
        for key in ("label_names", "classes"):
            if key in names:
                label_names = [str(v) for v in z[key].tolist()]
        samples: list[Sample] = []
        for split, label_key in parts:
            if label_key not in names:
                raise MedfabError(f"{path} has '{_array_name(split)}' but no '{label_key}'", "add the labels array")
            y = np.asarray(z[label_key])
            if y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]
            if y.ndim != 1:
                raise MedfabError(
                    f"{path}: '{label_key}' has shape {y.shape}; medfab needs one class per image",
                    "multi-label data sets (e.g. ChestMNIST) are not supported: pick one label column",
                )
            n = z[_array_name(split)].shape[0]  # decompresses the array once; np.load has no header-only path
            if n != len(y):
                raise MedfabError(f"{path}: {n} images but {len(y)} labels in '{label_key}'", "fix the file")
            for i, v in enumerate(y.tolist()):
                if label_names is not None:
                    if not 0 <= int(v) < len(label_names):
                        raise MedfabError(f"{path}: label {v} has no entry in label_names", "fix label_names")
                    label = label_names[int(v)]
                else:
                    label = str(int(v))
                samples.append(Sample(path, label, split, None, i, None, "npz"))
    return samples, sorted({s.label for s in samples}, key=_natural)


def _natural(c: str):
    return (0, int(c), c) if c.lstrip("-").isdigit() else (1, 0, c)


@lru_cache(maxsize=4)
def _images(path: str, mtime_ns: int, name: str) -> np.ndarray:
    with _open(Path(path)) as z:
        a = np.asarray(z[name])
    if a.ndim == 4 and a.shape[-1] in (3, 4):  # (N, H, W, C) colour -> (N, H, W) luminance
        a = a[..., :3].astype(np.float32) @ _LUMA
    a = a.astype(np.float32, copy=False)
    a.setflags(write=False)
    return a


def read_npz_row(path: str | Path, split: str | None, index: int) -> np.ndarray:
    path = Path(path)
    a = _images(str(path), path.stat().st_mtime_ns, _array_name(split))[index]
    if not np.isfinite(a).all():
        raise MedfabError(f"{path} row {index} ({split}) has NaN or infinite values", "clean the array")
    return np.array(a, dtype=np.float32)
