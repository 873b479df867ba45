"""How far is real from real: two disjoint, class-stratified halves of the real training data.

Every fidelity/diversity figure for the synthetic set is shown next to the same figure computed between the
two real halves. For the comparison to be fair both use the same sample sizes: the reference is always real
half A, and it is compared with real half B and with a synthetic subset of exactly half B's size per class
(:func:`match_counts`; where a synthetic class is smaller, half B is cut to its size). A metric such as the
Fréchet distance is biased at small N, so equal sizes matter more than large ones.
"""

from __future__ import annotations

import numpy as np

from medfab.data.tensors import TensorSet
from medfab.errors import MedfabError


def split_halves(real: TensorSet, *, seed: int = 0) -> tuple[TensorSet, TensorSet]:
    """Split ``real`` into two disjoint halves of equal size per class (an odd image out is dropped)."""
    rng = np.random.default_rng(seed)
    a_idx, b_idx = [], []
    for k in range(len(real.classes)):
        idx = rng.permutation(np.flatnonzero(real.y == k))
        h = len(idx) // 2
        a_idx.append(idx[:h])
        b_idx.append(idx[h : 2 * h])
    a, b = np.sort(np.concatenate(a_idx)), np.sort(np.concatenate(b_idx))
    if len(a) < 2:
        raise MedfabError(
            f"the real training set has too few images ({len(real)}) to split into two halves",
            "give at least 4 real training images per class",
        )
    return _take(real, a), _take(real, b)


def match_counts(ts: TensorSet, counts: dict[str, int], *, seed: int = 0) -> TensorSet:
    """A seeded subset of ``ts`` with at most ``counts[class]`` images of each class."""
    rng = np.random.default_rng(seed)
    keep = []
    for k, c in enumerate(ts.classes):
        idx = np.flatnonzero(ts.y == k)
        n = min(len(idx), int(counts.get(c, 0)))
        keep.append(rng.choice(idx, size=n, replace=False) if n < len(idx) else idx)
    return _take(ts, np.sort(np.concatenate(keep)))


def cap_per_class(ts: TensorSet, max_per_class: int | None, *, seed: int = 0) -> TensorSet:
    """At most ``max_per_class`` images of each class (seeded), or ``ts`` itself when no cap is given."""
    if max_per_class is None:
        return ts
    return match_counts(ts, {c: max_per_class for c in ts.classes}, seed=seed)


def _take(ts: TensorSet, idx: np.ndarray) -> TensorSet:
    idx = np.asarray(idx, dtype=np.int64)
    return TensorSet(ts.x[idx], ts.y[idx], ts.classes, [ts.keys[i] for i in idx])
