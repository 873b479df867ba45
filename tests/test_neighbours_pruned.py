"""The pruned neighbour search (principal-axes lower bound) returns exactly sklearn's brute-force neighbours:
where it prunes (low-rank data), where it must give up (white noise), and even when forced on white noise."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from medfab.evaluation import neighbours, neighbours_pruned
from medfab.evaluation.neighbours import bound_vectors, cross_kneighbors, self_kneighbors


def low_rank(n: int, f: int, seed: int, rank: int = 5) -> np.ndarray:
    """Rows near a rank-``rank`` subspace, far from the origin: the bound is tight, float errors are not tiny."""
    g = np.random.default_rng(seed)
    basis = np.random.default_rng(99).normal(size=(rank, f))
    return (g.normal(size=(n, rank)) @ basis + 0.02 * g.normal(size=(n, f)) + 3.0).astype(np.float32)


def white(n: int, f: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, f)).astype(np.float32)


def with_copies(a: np.ndarray, b: np.ndarray):
    a, b = a.copy(), b.copy()
    b[50] = b[60]                                                 # a duplicated reference: an exact tie
    a[3] = b[60]                                                  # a query that copies it: distance 0, index 50
    return a, b


def sklearn_knn(q, r, k, self_=False):
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(r.astype(np.float64))
    return nn.kneighbors(None if self_ else q.astype(np.float64), k)


def assert_same(found, q, r, k, self_=False):
    d, i = found
    d_ref, i_ref = sklearn_knn(q, r, k, self_)
    np.testing.assert_allclose(d, d_ref, rtol=1e-5, atol=1e-5)     # sklearn's |q|² + |r|² - 2 q.r: ~1e-6 at 0
    assert ((i == i_ref) | (r[i] == r[i_ref]).all(-1)).all()        # the same, or a duplicate row (sklearn's
                                                                      # rounding orders exact ties either way)


def spy(monkeypatch) -> list:
    """Record whether each pruned search served (True) or gave up (False). Small test sets: a query's k nearest
    alone are ~1 % of a row, so the give-up fraction is raised to 10 % (white noise keeps ~100 %)."""
    monkeypatch.setattr(neighbours_pruned, "MAX_FRACTION", max(neighbours_pruned.MAX_FRACTION, 0.1))
    served, search = [], neighbours_pruned.pruned_search

    def counted(*args, **kwargs):
        out = search(*args, **kwargs)
        served.append(out is not None)
        return out

    monkeypatch.setattr(neighbours_pruned, "pruned_search", counted)
    return served


def test_bound_is_a_lower_bound_of_every_distance():
    a, b = low_rank(40, 64, 0), white(30, 64, 1)                  # one set on the axes, one far off them
    (za, sa), (zb, _) = bound_vectors(a, b, dims=8)
    x = np.concatenate([a, b]).astype(np.float64)
    z = np.concatenate([za.numpy(), zb.numpy()])
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    lb = ((z[:, None] - z[None]) ** 2).sum(-1)
    assert (lb <= d2 * (1 + 1e-9) + 1e-9).all()
    assert np.median(lb[:40, :40] / np.maximum(d2[:40, :40], 1e-12)) > 0.9        # tight on low-rank rows
    np.testing.assert_allclose(sa.numpy(), np.linalg.norm(a - a.mean(0), axis=1), rtol=1e-6)


@pytest.mark.parametrize("k_a,k_b", [(1, 0), (2, 1), (3, 3)])
def test_pruned_cross_search_equals_sklearn_and_prunes(k_a, k_b, monkeypatch):
    served = spy(monkeypatch)
    a, b = with_copies(low_rank(150, 96, 1), low_rank(300, 96, 2))
    za, zb = bound_vectors(a, b, dims=8)
    near_a, near_b = cross_kneighbors(a, b, k_a, k_b, z=(za, zb))
    assert served == [True]
    assert_same(near_a, a, b, k_a)
    assert near_a[0][3, 0] == 0.0 and near_a[1][3, 0] == 50        # the copy, tie to the lower index
    if k_b:
        assert_same(near_b, b, a, k_b)


@pytest.mark.parametrize("k", [1, 2])
def test_pruned_leave_one_out_equals_sklearn_and_prunes(k, monkeypatch):
    served = spy(monkeypatch)
    x = low_rank(400, 64, 3)
    x[7] = x[3]
    d, i = self_kneighbors(x, k, z=bound_vectors(x, dims=8)[0])
    assert served == [True]
    assert_same((d, i), x, x, k, self_=True)
    assert d[3, 0] == d[7, 0] == 0.0 and i[3, 0] == 7 and i[7, 0] == 3


def test_white_noise_gives_up_and_stays_exact(monkeypatch):
    served = spy(monkeypatch)
    a, b = with_copies(white(120, 128, 4), white(200, 128, 5))
    za, zb = bound_vectors(a, b, dims=8)
    assert_same(cross_kneighbors(a, b, 2, 1, z=(za, zb))[0], a, b, 2)
    assert_same(self_kneighbors(b, 1, z=zb), b, b, 1, self_=True)
    assert served == [False, False]                                # the bound prunes nothing: products ran


@pytest.mark.parametrize("data", ["white", "mixed"])
def test_forced_pruning_on_a_weak_bound_is_still_exact(data, monkeypatch):
    """Whatever survives, the thresholds keep every pair that can win: forced on, results stay exact."""
    monkeypatch.setattr(neighbours_pruned, "MAX_FRACTION", 1.0)
    served = spy(monkeypatch)
    if data == "white":
        a, b = with_copies(white(100, 64, 6), white(180, 64, 7))
    else:                                                          # queries on the axes and far off them
        a, b = with_copies(np.concatenate([low_rank(50, 64, 8), white(50, 64, 9)]), low_rank(180, 64, 10))
    za, zb = bound_vectors(b, a, dims=8)[::-1]                      # axes fitted on the references
    near_a, near_b = cross_kneighbors(a, b, 2, 3, z=(za, zb))
    assert_same(near_a, a, b, 2)
    assert_same(near_b, b, a, 3)
    assert_same(self_kneighbors(b, 2, z=zb), b, b, 2, self_=True)
    assert served == [True, True]


def test_exact_ties_go_to_the_lower_index(monkeypatch):
    """Equidistant references (the query at the centre of +-unit vectors): the lowest indices win, as sklearn."""
    monkeypatch.setattr(neighbours_pruned, "MAX_FRACTION", 1.0)
    f = 64
    refs = np.concatenate([np.eye(f), -np.eye(f)]).astype(np.float32)[::-1].copy()
    queries = np.zeros((3, f), np.float32)
    zq, zr = bound_vectors(refs, queries, dims=8)[::-1]
    d, i = cross_kneighbors(queries, refs, 4, z=(zq, zr))[0]
    np.testing.assert_array_equal(i, np.tile(np.arange(4), (3, 1)))
    np.testing.assert_array_equal(d, 1.0)


def test_short_rows_are_not_pruned():
    assert bound_vectors(white(50, 100, 0), white(20, 100, 1), dims=32) == [None, None]   # < 4 features per axis


def test_audit_neighbours_pruned_equal_the_five_sklearn_searches(monkeypatch):
    from medfab.evaluation.privacy import audit_neighbours, reference_audit_neighbours

    monkeypatch.setattr(neighbours_pruned, "DIMS", 8)
    monkeypatch.setattr(neighbours, "_BLOCK_ELEMENTS", 4096)                 # many blocks in the fallbacks
    served = spy(monkeypatch)
    train, holdout = low_rank(200, 64, 11), low_rank(80, 64, 12)
    synth = np.concatenate([train[:10] + 0.001, low_rank(90, 64, 13)])      # near copies of training rows
    new, ref = audit_neighbours(train, holdout, synth), reference_audit_neighbours(train, holdout, synth)
    assert served and all(served)
    for name in ("d_s", "d_h", "d_t", "d_ts", "d_hs"):
        np.testing.assert_allclose(getattr(new, name), getattr(ref, name), rtol=1e-5, atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(new.i_s, ref.i_s)
    np.testing.assert_array_equal(new.i_h, ref.i_h)
