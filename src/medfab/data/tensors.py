"""Preprocessed tensors ready for training and evaluation: the data layer's output contract.

Every downstream stage (models, training, sampling, evaluation, anomaly detection) reads images through
:func:`load_tensors` and gets a :class:`TensorSet`: float32 arrays in [-1, 1] with integer labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class TensorSet:
    x: np.ndarray          # (N, 1, H, W) for 2D or (N, 1, D, H, W) for 3D, float32 in [-1, 1]
    y: np.ndarray          # (N,) int64 index into ``classes``
    classes: list[str]     # ordered class names
    keys: list[str]        # Sample.key of each row, relative to the data root (provenance; never patient metadata)
    preprocess: dict | None = None  # the resolved PreprocessConfig (JSON-able) that produced ``x``; save it with runs

    def __len__(self) -> int:
        return len(self.y)

    def counts(self) -> dict[str, int]:
        return {c: int((self.y == i).sum()) for i, c in enumerate(self.classes)}

    def select(self, mask: np.ndarray) -> TensorSet:
        idx = np.flatnonzero(mask)
        return TensorSet(self.x[idx], self.y[idx], self.classes, [self.keys[i] for i in idx], self.preprocess)

    def with_classes(self, classes: list[str]) -> TensorSet:
        """Re-index labels onto another ordered class list (names must all be present there)."""
        from medfab.errors import MedfabError

        missing = [c for c in self.classes if c not in classes]
        if missing:
            raise MedfabError(
                f"class(es) {missing} are not among {classes}",
                "use the same class folder names in every data set you compare",
            )
        remap = np.array([classes.index(c) for c in self.classes], dtype=np.int64)
        return TensorSet(self.x, remap[self.y], list(classes), self.keys, self.preprocess)


def load_tensors(
    path: str | Path,
    *,
    size: int = 64,
    split: str | None = None,
    cache_dir: str | Path | None = None,
    preprocess=None,
    progress: bool = True,
    **read_options,
) -> TensorSet:
    """Read a labelled data set at ``path`` and return preprocessed tensors of ``size`` x ``size``.

    ``split`` picks one split folder ("train", "test", ...) when the layout has them (labels keep the
    index of the whole data set's classes, so train and test agree). ``preprocess`` is a
    :class:`medfab.data.preprocess.PreprocessConfig` (default: pad to square, antialiased bilinear
    resize, ``normalise="auto"``: fixed 0..255 for 8-bit images, per-image 0.5-99.5 percentiles otherwise);
    when given, its ``size`` wins over ``size``. ``read_options`` go to
    :func:`medfab.data.readers.read_dataset`: ``reader``, ``labels_csv``, ``volume_mode``, ``slice_axis``,
    ``slice_range``. Results are cached under ``cache_dir`` (default ``$MEDFAB_CACHE`` or
    ``~/.cache/medfab``) and memory-mapped; the resolved preprocessing is in ``TensorSet.preprocess``.
    """
    from medfab.data.pipeline import load_tensors as _load

    return _load(path, size=size, split=split, cache_dir=cache_dir, preprocess=preprocess, progress=progress,
                 **read_options)
