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
    keys: list[str]        # Sample.key of each row (provenance; never patient metadata)

    def __len__(self) -> int:
        return len(self.y)

    def counts(self) -> dict[str, int]:
        return {c: int((self.y == i).sum()) for i, c in enumerate(self.classes)}

    def select(self, mask: np.ndarray) -> "TensorSet":
        idx = np.flatnonzero(mask)
        return TensorSet(self.x[idx], self.y[idx], self.classes, [self.keys[i] for i in idx])

    def with_classes(self, classes: list[str]) -> "TensorSet":
        """Re-index labels onto another ordered class list (names must all be present there)."""
        from medfab.errors import MedfabError

        missing = [c for c in self.classes if c not in classes]
        if missing:
            raise MedfabError(
                f"class(es) {missing} are not among {classes}",
                "use the same class folder names in every data set you compare",
            )
        remap = np.array([classes.index(c) for c in self.classes], dtype=np.int64)
        return TensorSet(self.x, remap[self.y], list(classes), self.keys)


def load_tensors(
    path: str | Path,
    *,
    size: int = 64,
    split: str | None = None,
    cache_dir: str | Path | None = None,
    preprocess=None,
    progress: bool = True,
) -> TensorSet:
    """Read a labelled data set at ``path`` and return preprocessed tensors of ``size`` x ``size``.

    ``split`` picks one split folder ("train", "test", ...) when the layout has them. ``preprocess`` is a
    :class:`medfab.data.preprocess.PreprocessConfig` (default: greyscale, pad to square, area resize,
    per-image min-max to [-1, 1]). Results are cached on disk under ``cache_dir`` (memory-mapped).
    """
    from medfab.data.pipeline import load_tensors as _load

    return _load(path, size=size, split=split, cache_dir=cache_dir, preprocess=preprocess, progress=progress)
