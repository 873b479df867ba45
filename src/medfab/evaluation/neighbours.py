"""Exact k-nearest-neighbour search (Euclidean) by blocked matrix products on any torch device.

Replaces sklearn's brute-force ``NearestNeighbors`` in the privacy audit (same results, see tests/test_privacy.py):
for a block of queries, |r|² - 2 q·r (the squared distance less the query's own |q|², which does not change the
ranking) comes from one fused matrix product (float32, on the device), the ``k + MARGIN`` smallest are kept, and those candidates' distances are recomputed from
the differences (no cancellation, so exact copies get distance 0) and re-sorted. Memory: one (block, N) matrix and
the (block, k + MARGIN, F) candidates, each at most 64 MB.
"""

from __future__ import annotations

import numpy as np
import torch

MARGIN = 4          # extra candidates kept from the float32 product, re-ranked by exact distances
_BLOCK_ELEMENTS = 1 << 24   # queries per block x references: 64 MB of float32 distances


@torch.inference_mode()
def kneighbors(queries: np.ndarray, refs: np.ndarray, k: int = 1, *, exclude_self: bool = False,
               device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Distances (M, k) float64, ascending, and indices (M, k) int64 of each query's ``k`` nearest rows of ``refs``.

    ``queries`` (M, F) and ``refs`` (N, F); ``exclude_self=True`` when ``queries`` is ``refs`` and a row must not
    find itself (sklearn's ``kneighbors(None)``). Ties are broken by the lower reference index.
    """
    dev = torch.device(device)
    r = torch.as_tensor(np.ascontiguousarray(refs), dtype=torch.float32, device=dev)          # (N, F)
    q_all = torch.as_tensor(np.ascontiguousarray(queries), dtype=torch.float32, device=dev)   # (M, F)
    n = len(r)
    if k > n - int(exclude_self):
        raise ValueError(f"k={k} neighbours asked for, but only {n - int(exclude_self)} reference rows")
    kc = min(k + MARGIN, n)
    r2 = (r * r).sum(1)                                                                        # (N,)
    block = max(1, min(_BLOCK_ELEMENTS // n, _BLOCK_ELEMENTS // (kc * r.shape[1])))   # (b, N) and (b, kc, F)
    dist, idx = [], []
    for s in range(0, len(q_all), block):
        q = q_all[s:s + block]                                                                 # (b, F)
        d2 = torch.addmm(r2.expand(len(q), n), q, r.T, alpha=-2)      # (b, N) |r|² - 2 q·r: |q|² does not rank
        if exclude_self:
            rows = torch.arange(len(q), device=dev)
            d2[rows, rows + s] = float("inf")
        cand = d2.topk(kc, dim=1, largest=False).indices                                       # (b, kc)
        exact = ((q[:, None, :] - r[cand]) ** 2).sum(-1)                                       # (b, kc)
        if exclude_self:
            exact = torch.where(cand == (torch.arange(len(q), device=dev) + s)[:, None], float("inf"), exact)
        # sort by (distance, index): stable sort on index first, then on distance
        by_index = cand.sort(dim=1)
        exact = exact.gather(1, by_index.indices)
        order = exact.sort(dim=1, stable=True).indices[:, :k]
        dist.append(exact.gather(1, order).sqrt().double().cpu())
        idx.append(by_index.values.gather(1, order).cpu())
    return torch.cat(dist).numpy(), torch.cat(idx).numpy()
