"""Privacy audit: hand-computed copy rate, memorisation raises copy rate and membership AUC, real vs real does not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from medfab.data.tensors import TensorSet
from medfab.errors import MedfabError
from medfab.evaluation.diversity import pixel_features
from medfab.evaluation.privacy import audit_space, privacy_audit


def smooth_fields(n: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.normal(size=(n, 1, size, size)), sigma=(0, 0, 2, 2))
    return (x / np.abs(x).max(axis=(1, 2, 3), keepdims=True)).astype(np.float32)


def constants(values) -> np.ndarray:
    """Constant images: the RMS distance between two of them is the difference of their values."""
    return np.asarray(values, np.float32)[:, None, None, None] * np.ones((1, 1, 8, 8), np.float32)


def test_copy_rate_and_authenticity_by_hand():
    train = np.array([[0.0], [10.0], [20.0], [30.0]])              # own NN distance 10 for every one
    holdout = np.array([[1.0], [12], [23], [34], [-5], [36], [37], [38], [40], [-4.5]])
    synth = np.array([[0.5], [11.0], [21.4], [28.5], [15.0]])       # NN distances 0.5, 1, 1.4, 1.5, 5
    r = audit_space(train, holdout, synth)
    d_h = np.array([1, 2, 3, 4, 5, 6, 7, 8, 10, 4.5])
    thr = np.percentile(d_h, 5)                                      # 1 + 0.05 * 9 * (2 - 1) = 1.45
    assert r["copy_threshold"] == pytest.approx(thr) == pytest.approx(1.45)
    assert r["copy_rate"] == pytest.approx(3 / 5) and r["n_copies"] == 3    # 0.5, 1, 1.4 < 1.45
    assert r["holdout_copy_rate"] == pytest.approx(1 / 10)
    assert r["nn_distance"]["synthetic"]["min"] == pytest.approx(0.5)
    assert r["closest_pairs"][0] == {"synth_index": 0, "train_index": 0, "distance": 0.5,
                                     "ratio": pytest.approx(0.5 / 9.5)}
    # every synthetic point is closer to its NN than that NN's own neighbour (10): none is authentic;
    # holdout 40 sits exactly 10 from train -> authentic (not strictly closer)
    assert r["authenticity"]["synthetic"] == 0.0 and r["authenticity"]["holdout"] == pytest.approx(0.1)
    explicit = audit_space(train, holdout, synth, threshold=2.0)
    assert explicit["copy_rate"] == pytest.approx(4 / 5) and explicit["threshold_source"] == "explicit"


def test_membership_auc_by_hand():
    train = np.array([[0.0], [10.0], [20.0]])
    holdout = np.array([[5.0], [15.0], [25.0]])
    synth = np.array([[0.1], [10.2], [20.3]])                        # hugs the members
    r = audit_space(train, holdout, synth)
    # members are 0.1-0.3 from a synthetic point, non-members 4.7-5.2: every pair ranked right -> AUC 1
    assert r["membership_auc"] == 1.0
    r2 = audit_space(train, holdout, np.array([[5.1], [15.2], [24.7]]))   # hugs the non-members
    assert r2["membership_auc"] == 0.0


def test_privacy_audit_pixel_space_on_constant_images():
    tr = TensorSet(constants([-0.8, -0.4, 0.0, 0.4, 0.8]), np.zeros(5, np.int64), ["a"], [f"t{i}" for i in range(5)])
    hold = constants(np.linspace(-0.75, 0.75, 10))
    syn = constants([0.01, 0.41, -0.7])                               # RMS distances 0.01, 0.01, 0.1
    r = privacy_audit(tr, hold, syn, copy_threshold=0.05, pixel_size=4)
    assert r["copy_rate"] == pytest.approx(2 / 3)
    assert r["pixel"]["closest_pairs"][0]["train_key"] in {"t2", "t3"}
    assert r["pixel"]["nn_distance"]["synthetic"]["min"] == pytest.approx(0.01, abs=1e-5)


def test_memorised_copies_raise_copy_rate_and_auc_real_vs_real_stays_at_baseline():
    train, holdout, fresh = smooth_fields(80, 32, 0), smooth_fields(80, 32, 1), smooth_fields(80, 32, 2)
    noisy_copies = np.clip(train + np.random.default_rng(3).normal(0, 0.05, train.shape), -1, 1).astype(np.float32)
    f = pixel_features
    leak = privacy_audit(train, holdout, noisy_copies, features_train=f(train, 8), features_holdout=f(holdout, 8),
                         features_synth=f(noisy_copies, 8))
    base = privacy_audit(train, holdout, fresh, features_train=f(train, 8), features_holdout=f(holdout, 8),
                         features_synth=f(fresh, 8))
    for space in ("pixel", "features"):
        assert leak[space]["copy_rate"] > 0.9 and leak[space]["membership_auc"] > 0.95, space
        assert leak[space]["authenticity"]["synthetic"] < 0.1, space
        assert base[space]["copy_rate"] < 0.2 and abs(base[space]["membership_auc"] - 0.5) < 0.15, space
        assert abs(base[space]["authenticity"]["difference"]) < 0.2, space
    assert leak["pixel"]["nn_ratio"]["synthetic"]["median"] < base["pixel"]["nn_ratio"]["synthetic"]["median"]


def test_privacy_audit_rejects_bad_input():
    x = smooth_fields(12, 16, 0)
    with pytest.raises(MedfabError):
        privacy_audit(x, x[:5], x)                                    # too few holdout images
    with pytest.raises(MedfabError):
        privacy_audit(x, x, x, features_train=pixel_features(x))       # features for one set only
    with pytest.raises(MedfabError):
        privacy_audit(x, x, smooth_fields(12, 32, 1))                  # sizes differ


@pytest.mark.parametrize("dim", [3, 300])
def test_blocked_neighbour_search_equals_sklearn(dim, monkeypatch):
    """kneighbors (blocked float32 products + exact re-ranking) returns sklearn's neighbours and distances."""
    from sklearn.neighbors import NearestNeighbors

    from medfab.evaluation import neighbours

    monkeypatch.setattr(neighbours, "_BLOCK_ELEMENTS", 4096)           # many small blocks
    rng = np.random.default_rng(dim)
    refs, queries = rng.normal(size=(257, dim)), rng.normal(size=(131, dim))
    refs[7] = refs[3]                                                  # a duplicated row: its own NN at 0
    queries[5] = refs[11]                                              # an exact copy
    nn = NearestNeighbors(n_neighbors=3, algorithm="brute").fit(refs)
    d_ref, i_ref = nn.kneighbors(queries, 3)
    d, i = neighbours.kneighbors(queries, refs, 3)
    np.testing.assert_array_equal(i, i_ref)
    np.testing.assert_allclose(d, d_ref, rtol=1e-5, atol=1e-6)
    assert d[5, 0] == 0.0
    d_self_ref, i_self_ref = nn.kneighbors(None, 2)                    # self excluded
    d_self, i_self = neighbours.kneighbors(refs, refs, 2, exclude_self=True)
    np.testing.assert_allclose(d_self, d_self_ref, rtol=1e-5, atol=1e-6)
    assert d_self[3, 0] == d_self[7, 0] == 0.0 and i_self[3, 0] == 7 and i_self[7, 0] == 3
    ok = i_self_ref[:, 0] == i_self[:, 0]
    assert ok.all()


@pytest.mark.parametrize("dim", [3, 300])
@pytest.mark.parametrize("block_elements", [4096, 1 << 24])          # many blocks, one block
def test_both_directions_and_leave_one_out_equal_sklearn(dim, block_elements, monkeypatch):
    """One pass over a x b gives sklearn's neighbours both ways; the half-matrix leave-one-out search gives its
    kneighbors(None), also among MARGIN near-ties (rows 1e-4 apart, inside the float32 error of the product)."""
    from sklearn.neighbors import NearestNeighbors

    from medfab.evaluation import neighbours

    monkeypatch.setattr(neighbours, "_BLOCK_ELEMENTS", block_elements)
    rng = np.random.default_rng(dim + 1)
    a, b = rng.normal(size=(131, dim)), rng.normal(size=(257, dim))
    b[20:24] = b[19] + rng.normal(0, 1e-4, size=(4, dim))             # near-ties: 1 + MARGIN rows
    a[3], b[50] = b[60], b[60]                                         # an exact copy, a duplicate
    (d_a, i_a), (d_b, i_b) = neighbours.cross_kneighbors(a, b, 2, 3)
    for (d, i), q, r, k in (((d_a, i_a), a, b, 2), ((d_b, i_b), b, a, 3)):
        d_ref, i_ref = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(r).kneighbors(q)
        np.testing.assert_allclose(d, d_ref, rtol=1e-5, atol=1e-6)
        assert ((i == i_ref) | (r[i] == r[i_ref]).all(-1)).all()      # the same, or a duplicate row (exact tie)
    assert d_a[3, 0] == 0.0 and i_a[3, 0] == 50
    for k in (1, 3):
        d, i = neighbours.self_kneighbors(b, k)
        d_ref, i_ref = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(b).kneighbors(None, k)
        np.testing.assert_allclose(d, d_ref, rtol=1e-5, atol=1e-6)
        assert ((i == i_ref) | (b[i] == b[i_ref]).all(-1)).all()
        assert (i != np.arange(len(b))[:, None]).all()
    assert (neighbours.self_kneighbors(b[:2], 1)[1] == [[1], [0]]).all()     # the smallest set


def test_audit_neighbours_equal_the_five_sklearn_searches(monkeypatch):
    from medfab.evaluation import neighbours
    from medfab.evaluation.privacy import audit_neighbours, reference_audit_neighbours

    monkeypatch.setattr(neighbours, "_BLOCK_ELEMENTS", 4096)
    train, holdout = smooth_fields(70, 16, 0), smooth_fields(40, 16, 1)
    synth = np.concatenate([train[:10] + 0.01, smooth_fields(50, 16, 2)])
    rows = [x.reshape(len(x), -1) for x in (train, holdout, synth)]
    new, ref = audit_neighbours(*rows), reference_audit_neighbours(*rows)
    for name in ("d_s", "d_h", "d_t", "d_ts", "d_hs"):
        np.testing.assert_allclose(getattr(new, name), getattr(ref, name), rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(new.i_s, ref.i_s)
    np.testing.assert_array_equal(new.i_h, ref.i_h)
