"""Exact nearest neighbours with most distances skipped: a cheap lower bound prunes the pairs that cannot win.

Project every vector on ``k`` principal axes of the training set (an orthonormal ``P``, re-orthonormalised in
float64) and keep the norm of what is left off the subspace, ``r``. For any x, y

    |x - y|² = |P(x - y)|² + |r_x - r_y|²  >=  |P(x - y)|² + (|r_x| - |r_y|)²  =  |z_x - z_y|²,

with ``z = [P(x - mu), |r|]``: the lower bound is the squared distance of (k + 1)-d vectors, a matrix product ~F/k
times cheaper than the real one. Each query's upper bound U is the k-th smallest exact distance among its
candidates with the smallest bounds; only pairs whose bound is <= U (widened by the float32 / float64 error
bounds) can be among its k nearest, so only those distances are computed exactly, from differences, exactly as
:mod:`medfab.evaluation.neighbours` does. On images (most variance on few axes) that is a few percent of the
pairs. When the bound is weak (white noise: no axis matters) too many pairs survive; the search then returns
``None`` after the cheap passes and the caller runs the plain blocked products: never wrong, and only a few % slower (the projections, one pass of cheap bounds and a probe of
``PROBE`` queries).
"""

from __future__ import annotations

import torch

DIMS = 128                  # principal axes of the bound
MAX_FRACTION = 0.01         # more surviving pairs than this: the plain products are cheaper (a pair's exact distance
                            # from gathered rows costs ~100x its share of a blocked product: memory, not arithmetic)
PROBE = 256                 # queries whose survivors are counted first, to give up early and cheaply
FIT_ROWS = 1000             # rows the axes are fitted on (the bound is valid for any orthonormal axes)
_ROWS = 512                 # rows projected at once (float64 copies)
_BLOCK_ELEMENTS = 1 << 23   # float64 bounds per block of rows (64 MB)
_PAIRS = 1 << 18            # elements of differences held at once
_EPS32, _EPS64 = torch.finfo(torch.float32).eps, torch.finfo(torch.float64).eps
_SLACK = 1e-7               # |z computed - z exact| <= _SLACK |x - mu| (float64 projection and residual: ~1e-8)


class Bound:
    """The axes of the lower bound, fitted on ``rows`` (N, F) float32: :meth:`z` maps rows to (k + 1)-d vectors."""

    def __init__(self, rows: torch.Tensor, dims: int = DIMS, seed: int = 0):
        fit = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:FIT_ROWS].to(rows.device)]
        self.mu = fit.double().mean(0)
        q = min(dims, *fit.shape)
        torch.manual_seed(seed)                                           # svd_lowrank draws a random start
        v = torch.svd_lowrank(fit - self.mu.float(), q=q, niter=2)[2]    # (F, q) float32, nearly orthonormal
        self.p = torch.linalg.qr(v.double())[0]                           # orthonormal to float64 precision

    @property
    def dims(self) -> int:
        return self.p.shape[1]

    def z(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, k + 1) float64 vectors ``[P(x - mu), |residual|]`` and (N,) float64 norms ``|x - mu|``."""
        zs, ss = [], []
        for s in range(0, len(x), _ROWS):
            c = x[s:s + _ROWS].double() - self.mu
            p = c @ self.p
            s2 = (c * c).sum(1)
            zs.append(torch.cat([p, (s2 - (p * p).sum(1)).clamp(min=0).sqrt()[:, None]], 1))
            ss.append(s2.sqrt())
        return torch.cat(zs), torch.cat(ss)


def pair_d2(q: torch.Tensor, r: torch.Tensor, qi: torch.Tensor, rj: torch.Tensor) -> torch.Tensor:
    """float32 squared distances of the pairs (q[qi], r[rj]), from differences (no cancellation), in small chunks."""
    out = torch.empty(len(qi), device=q.device)
    step = max(1, _PAIRS // q.shape[1])
    for s in range(0, len(qi), step):
        diff = q[qi[s:s + step]] - r[rj[s:s + step]]
        out[s:s + step] = (diff * diff).sum(1)
    return out


def sparse_topk(rows: torch.Tensor, cols: torch.Tensor, d2: torch.Tensor, m: int, k: int):
    """Each row's ``k`` smallest (d2, col) among the pairs, ranked by distance then lower col; every row must have
    >= k pairs. Returns distances (m, k) float64 and indices (m, k) int64 as numpy arrays."""
    order = cols.sort(stable=True).indices                               # lexicographic (row, d2, col) by
    order = order[d2[order].sort(stable=True).indices]                   # stable sorts, least key first
    order = order[rows[order].sort(stable=True).indices]
    r = rows[order]
    counts = torch.bincount(r, minlength=m)
    if int(counts.min()) < k:
        raise AssertionError("a row lost its candidates: the pruning bound is wrong")
    pos = torch.arange(len(r), device=r.device) - (counts.cumsum(0) - counts)[r]
    keep = pos < k
    d = torch.empty((m, k), device=r.device)
    i = torch.empty((m, k), dtype=torch.long, device=r.device)
    d[r[keep], pos[keep]], i[r[keep], pos[keep]] = d2[order][keep], cols[order][keep]
    return d.sqrt().double().cpu().numpy(), i.cpu().numpy()


def _threshold(q, r, cand_v: torch.Tensor, cand_i: torch.Tensor, k: int, s_own, s_other_max, dims: int):
    """Squared-bound threshold per query: above it no pair can be among its k nearest (see the module doc).

    ``cand_i`` (M, C): candidate columns (smallest bounds; an infinite ``cand_v`` marks a placeholder)."""
    m, c = cand_i.shape
    qi = torch.arange(m, device=q.device).repeat_interleave(c)
    d2 = pair_d2(q, r, qi, cand_i.reshape(-1)).view(m, c)
    d2 = torch.where(torch.isfinite(cand_v), d2, torch.inf)
    u = d2.double().kthvalue(k, dim=1).values                             # >= the true k-th nearest distance
    u = u * (1 + (q.shape[1] + 3) * _EPS32)                               # float32 rounding of the differences
    slack = _SLACK * (s_own + s_other_max)                                # |z computed - z| of both rows
    return (u.sqrt() + slack) ** 2 + 4 * (dims + 2) * _EPS64 * (s_own ** 2 + s_other_max ** 2)


def pruned_search(q: torch.Tensor, r: torch.Tensor, zq, zr, k_q: int, k_r: int, symmetric: bool, margin: int):
    """Exact neighbours of :func:`medfab.evaluation.neighbours.cross_kneighbors` (``symmetric``: of
    ``self_kneighbors``, with ``q`` is ``r`` and ``k_r`` unused) from the bound vectors ``zq``, ``zr`` (``z, norms``
    of :meth:`Bound.z`). Returns ``(near_q, near_r)`` like they do, or ``None`` when the bound prunes too little."""
    from medfab.evaluation.neighbours import _blocks

    (zq, sq), (zr, sr) = zq, zr
    m, n, dims = len(q), len(r), zq.shape[1] - 1
    if symmetric:
        k_r = k_q
    kc_q, kc_r = min(k_q + margin, n - symmetric), (min(k_r + margin, m - symmetric) if k_r else 0)
    # pass 1: candidates with the smallest bounds (float32 is enough to pick them) -> thresholds
    rv, ri, cv, ci = _blocks(zq.float(), zr.float(), kc_q, kc_r, symmetric)
    if symmetric:                                  # rows saw columns >= their block, columns the rows before
        vals, idx = torch.cat([rv, cv.T], 1), torch.cat([ri, ci.T], 1)
        top = vals.topk(kc_q, dim=1, largest=False)
        rv, ri = top.values, idx.gather(1, top.indices)
    zq2, zr2 = (zq * zq).sum(1), (zr * zr).sum(1)
    probe = torch.randperm(m, generator=torch.Generator().manual_seed(0))[:PROBE].to(q.device)
    t_p = _threshold(q[probe], r, rv[probe], ri[probe], k_q, sq[probe], sr.max(), dims)
    lb = torch.addmm(zr2.expand(len(probe), n), zq[probe], zr.T, alpha=-2).add_(zq2[probe, None])
    if float((lb <= t_p[:, None]).double().mean()) > MAX_FRACTION:       # these queries' survivors alone: too many
        return None
    t_q = _threshold(q, r, rv, ri, k_q, sq, sr.max(), dims)
    if symmetric:
        t_r = t_q
    else:
        t_r = _threshold(r, q, cv.T, ci.T, k_r, sr, sq.max(), dims) if k_r else None
    # pass 2: every pair under a threshold (symmetric: upper triangle, each pair serves both its rows)
    block = max(1, _BLOCK_ELEMENTS // n)
    pairs, total, budget = [], 0, MAX_FRACTION * m * n / (2 if symmetric else 1)
    for s in range(0, m, block):
        e = min(s + block, m)
        lb = torch.addmm(zr2.expand(e - s, n), zq[s:e], zr.T, alpha=-2).add_(zq2[s:e, None])
        keep = lb <= t_q[s:e, None]
        if k_r:
            keep |= lb <= t_r[None, :]
        if symmetric:
            keep &= torch.ones_like(keep).triu_(s + 1)                   # columns j > row i only
        qi, rj = keep.nonzero(as_tuple=True)
        total += len(qi)
        if total > budget:
            return None
        pairs.append((qi + s, rj))
    qi, rj = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
    d2 = pair_d2(q, r, qi, rj)
    if symmetric:
        return sparse_topk(torch.cat([qi, rj]), torch.cat([rj, qi]), torch.cat([d2, d2]), m, k_q), None
    return sparse_topk(qi, rj, d2, m, k_q), (sparse_topk(rj, qi, d2, n, k_r) if k_r else None)
