"""Exact k-nearest-neighbour search (Euclidean) by blocked matrix products on any torch device.

Replaces sklearn's brute-force ``NearestNeighbors`` in the privacy audit (same results, see tests/test_privacy.py).
The cost is the (M, N) matrix of squared distances |a|² + |b|² - 2 a·b (one fused float32 product per block of
rows, on the device), so every statistic is read off one pass over it:

* :func:`cross_kneighbors`: each row of ``a``'s nearest rows of ``b`` (top-k along a block's rows) *and* each row
  of ``b``'s nearest rows of ``a`` (top-k along its columns, merged over the blocks), from the same products;
* :func:`self_kneighbors`: leave-one-out neighbours within one set from the upper triangle of its (symmetric)
  matrix only, half the products: block I of rows is multiplied by the columns from its own start on; the rows
  read their candidates from that, the columns past the block read theirs from the same product.

Only ``k + MARGIN`` candidates per row survive the float32 product; the distances of those that can still be among
the k nearest (within the float32 error bound of the k-th, usually just k) are recomputed from the differences (no
cancellation, so exact copies get distance 0) and ranked by (distance, index), so ties go to the lower index.
Memory: one (block, N) matrix of at most 64 MB, plus (k + MARGIN) candidates per row and column.

With ``z`` (from :func:`bound_vectors`), both searches first try :mod:`medfab.evaluation.neighbours_pruned`: the same
exact neighbours from a cheap lower bound that skips most pairs; it falls back to the products when the bound is
weak.
"""

from __future__ import annotations

import numpy as np
import torch

MARGIN = 4                  # extra candidates kept from the float32 product, re-ranked by exact distances
_BLOCK_ELEMENTS = 1 << 24   # rows per block x columns: 64 MB of float32 distances
_PAIR_ELEMENTS = 1 << 18    # differences held at once by the exact re-ranking (1 MB: stays in cache)
_INF = float("inf")


def _tensor(x, dev) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32, device=dev)


def _merge(vals: torch.Tensor, idx: torch.Tensor, new_vals: torch.Tensor, new_idx: torch.Tensor, kc: int):
    """The ``kc`` smallest of two candidate lists along dim 0: (kc, N) each."""
    v, i = torch.cat([vals, new_vals]), torch.cat([idx, new_idx])
    best = v.topk(min(kc, len(v)), dim=0, largest=False)
    return best.values, i.gather(0, best.indices)


def _blocks(a: torch.Tensor, b: torch.Tensor, kc_row: int, kc_col: int, symmetric: bool):
    """One pass over the (M, N) squared-distance matrix of ``a`` and ``b``, in blocks of rows.

    Returns approximate candidates: rows (M, kc_row) values and column indices, columns (kc_col, N) values and row
    indices (kc_col = 0: none). ``symmetric`` (``a`` is ``b``): only the upper triangle is computed, the diagonal
    is excluded, rows see the columns from their block's start on, columns the rows of the blocks before theirs.
    """
    dev, (m, n) = a.device, (len(a), len(b))
    a2, b2 = (a * a).sum(1), (b * b).sum(1)                                            # (M,), (N,)
    block = max(1, _BLOCK_ELEMENTS // n)
    if symmetric:                                     # >= 8 blocks: the upper triangle is ~(1 + 1/8) / 2 of it
        block = min(block, -(-m // 8))
    row_v, row_i = [], []
    col_v = torch.full((kc_col, n), _INF, device=dev)
    col_i = torch.zeros((kc_col, n), dtype=torch.long, device=dev)
    for s in range(0, m, block):
        e = min(s + block, m)
        c0 = s if symmetric else 0                                                     # first column computed
        d2 = torch.addmm(b2[c0:].expand(e - s, n - c0), a[s:e], b[c0:].T, alpha=-2)   # (b, N - c0)
        d2.add_(a2[s:e, None])
        if symmetric:
            d2.diagonal().fill_(_INF)                                                  # column c0 + j is row s + j
        top = d2.topk(min(kc_row, n - c0), dim=1, largest=False)
        row_v.append(top.values)
        row_i.append(top.indices + c0)
        if kc_col:
            cs = e if symmetric else 0                                                 # columns fed from this block
            if cs < n:
                part = d2[:, cs - c0:]
                t = part.topk(min(kc_col, e - s), dim=0, largest=False)
                col_v[:, cs:], col_i[:, cs:] = _merge(col_v[:, cs:], col_i[:, cs:], t.values, t.indices + s,
                                                      kc_col)
    if symmetric:                                     # the last block has fewer columns: pad before stacking
        w = max(len(v[0]) for v in row_v)
        row_v = [torch.nn.functional.pad(v, (0, w - v.shape[1]), value=_INF) for v in row_v]
        row_i = [torch.nn.functional.pad(i, (0, w - i.shape[1])) for i in row_i]
    return torch.cat(row_v), torch.cat(row_i), col_v, col_i


def _exact(q: torch.Tensor, r: torch.Tensor, approx: torch.Tensor, cand: torch.Tensor, k: int):
    """Exact (distance, index) top-``k`` of each row's candidates ``cand`` (M, C) into ``r``.

    ``approx`` (M, C), ascending: the float32 squared distances; an infinite one marks a placeholder or an excluded
    pair. Only the first ``k`` candidates and those whose ``approx`` is within twice the float32 error bound of the
    k-th are recomputed (usually k per row): the others are certainly farther. As before, a row with more than
    ``MARGIN`` other rows within float32 error of its k-th neighbour is ranked among its kept candidates only.
    Returns distances (M, k) float64 and indices (M, k) int64 as numpy arrays.
    """
    m, c = cand.shape
    f = q.shape[1]
    # |error| of |q|² + |r|² - 2 q·r summed in float32, any order: below 2 F eps (|q|² + |r|²)  (Higham, ch. 3)
    err = 2 * f * torch.finfo(torch.float32).eps * ((q * q).sum(1) + (r * r).sum(1).max())              # (M,)
    finite = torch.isfinite(approx)
    need = finite & ((torch.arange(c, device=q.device) < k) | (approx <= approx[:, k - 1:k] + 2 * err[:, None]))
    qi, pos = need.nonzero(as_tuple=True)                                                  # (P,) pairs to recompute
    rj = cand[qi, pos]
    exact_p = torch.empty(len(qi), device=q.device)
    step = max(1, _PAIR_ELEMENTS // f)
    for s in range(0, len(qi), step):                                                    # small chunks: in cache
        diff = q[qi[s:s + step]] - r[rj[s:s + step]]
        exact_p[s:s + step] = (diff * diff).sum(1)
    exact = torch.full((m, c), _INF, device=q.device)
    exact[qi, pos] = exact_p
    by_index = cand.sort(dim=1)                       # sort by (distance, index): stable on index, then distance
    exact = exact.gather(1, by_index.indices)
    order = exact.sort(dim=1, stable=True).indices[:, :k]
    return exact.gather(1, order).sqrt().double().cpu().numpy(), by_index.values.gather(1, order).cpu().numpy()


def _check_k(k: int, n: int, what: str) -> None:
    if k > n:
        raise ValueError(f"k={k} neighbours asked for, but only {n} {what}")


@torch.inference_mode()
def bound_vectors(*sets: np.ndarray, device="cpu", dims: int | None = None) -> list:
    """The pruning bound's vectors ``(z, norms)`` of each set, axes fitted on the first; ``None`` each where pruning
    cannot pay (fewer than 4 features per axis: the products are then cheap already)."""
    from medfab.evaluation.neighbours_pruned import DIMS, Bound

    dims = dims or DIMS
    if sets[0].shape[1] < 4 * dims or len(sets[0]) < 2:
        return [None] * len(sets)
    dev = torch.device(device)
    bound = Bound(_tensor(sets[0], dev), dims)
    return [bound.z(_tensor(x, dev)) for x in sets]


@torch.inference_mode()
def cross_kneighbors(a: np.ndarray, b: np.ndarray, k_a: int, k_b: int = 0, *, device="cpu", z=None):
    """Each row of ``a`` (M, F): its ``k_a`` nearest rows of ``b`` (N, F); each row of ``b``: its ``k_b`` nearest rows
    of ``a``, from the same matrix products. Returns ``(d_a, i_a), (d_b, i_b)``: distances (·, k) float64,
    ascending, and indices int64 (``None`` for ``k_b = 0``). ``z``: :func:`bound_vectors` of ``(a, b)``, to prune.
    """
    from medfab.evaluation.neighbours_pruned import pruned_search

    dev = torch.device(device)
    ta, tb = _tensor(a, dev), _tensor(b, dev)
    _check_k(k_a, len(tb), "rows to search")
    _check_k(k_b, len(ta), "rows to search")
    if z is not None and z[0] is not None:
        found = pruned_search(ta, tb, z[0], z[1], k_a, k_b, False, 2 * MARGIN)
        if found is not None:
            return found
    kc_a, kc_b = min(k_a + MARGIN, len(tb)), (min(k_b + MARGIN, len(ta)) if k_b else 0)
    rv, ri, cv, ci = _blocks(ta, tb, kc_a, kc_b, symmetric=False)
    near_a = _exact(ta, tb, rv, ri, k_a)
    near_b = _exact(tb, ta, cv.T.contiguous(), ci.T.contiguous(), k_b) if k_b else None
    return near_a, near_b


@torch.inference_mode()
def self_kneighbors(x: np.ndarray, k: int = 1, *, device="cpu", z=None) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out: each row's ``k`` nearest *other* rows of ``x`` (sklearn's ``kneighbors(None)``), from half
    the matrix products. Distances (N, k) float64, ascending, and indices (N, k) int64. ``z``: :func:`bound_vectors`
    of ``x``, to prune.
    """
    from medfab.evaluation.neighbours_pruned import pruned_search

    t = _tensor(x, torch.device(device))
    _check_k(k, len(t) - 1, "other rows")
    if z is not None:
        found = pruned_search(t, t, z, z, k, 0, True, 2 * MARGIN)
        if found is not None:
            return found[0]
    kc = min(k + MARGIN, len(t) - 1)
    rv, ri, cv, ci = _blocks(t, t, kc, kc, symmetric=True)
    vals, idx = torch.cat([rv, cv.T], 1), torch.cat([ri, ci.T], 1)    # disjoint: columns >= / rows < the block
    top = vals.topk(kc, dim=1, largest=False)
    return _exact(t, t, top.values, idx.gather(1, top.indices), k)


def kneighbors(queries: np.ndarray, refs: np.ndarray, k: int = 1, *, exclude_self: bool = False,
               device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Distances (M, k) float64, ascending, and indices (M, k) int64 of each query's ``k`` nearest rows of ``refs``.

    ``exclude_self=True`` when ``queries`` is ``refs`` and a row must not find itself (sklearn's
    ``kneighbors(None)``). Ties are broken by the lower reference index.
    """
    if exclude_self:
        return self_kneighbors(refs, k, device=device)
    return cross_kneighbors(queries, refs, k, device=device)[0]


def sklearn_kneighbors(queries, refs, k=1, *, exclude_self=False, device="cpu"):
    """The reference (and the pre-issue-8 search): sklearn's brute-force ``NearestNeighbors``, float64."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(refs)
    return nn.kneighbors(None if exclude_self else queries, k)
