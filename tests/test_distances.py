"""Fréchet distance, KID and bootstrap intervals against MONAI, torchmetrics and closed forms."""

import numpy as np
import pytest
import torch

from medfab.errors import MedfabError
from medfab.evaluation.distances import bootstrap, frechet_distance, frechet_from_stats, kid, poly_mmd2


def _features(seed, n=300, f=8, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(f, f))                      # correlated features: non-diagonal covariance
    return (rng.normal(size=(n, f)) @ mix) * scale + shift


def test_fd_matches_monai():
    from monai.metrics import FIDMetric

    a, b = _features(0), _features(1, shift=0.5, scale=1.3)
    ref = FIDMetric()(torch.from_numpy(b), torch.from_numpy(a)).item()
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-8)


def test_fd_closed_form_two_gaussians():
    # Diagonal covariances commute: d² = |mu1 - mu2|² + sum(s1 + s2 - 2 sqrt(s1 s2)).
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 0.25])
    exact = 1 + 0 + 4 + (1 + 4 - 4) + (4 + 1 - 4) + 0
    assert frechet_from_stats(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(exact, abs=1e-10)
    # From samples, the plug-in estimate converges to the same value.
    rng = np.random.default_rng(0)
    f1 = mu1 + rng.normal(size=(40000, 3)) * np.sqrt(s1)
    f2 = mu2 + rng.normal(size=(40000, 3)) * np.sqrt(s2)
    assert frechet_distance(f1, f2) == pytest.approx(exact, rel=0.03)


def test_fd_identical_and_near_singular():
    a = _features(0)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    few = _features(2, n=5, f=12)                     # fewer rows than features: singular covariance
    d = frechet_distance(few, _features(3, n=5, f=12))
    assert np.isfinite(d) and d >= 0


def test_kid_matches_torchmetrics_full_subset():
    from torchmetrics.image.kid import KernelInceptionDistance

    a, b = _features(0, n=60), _features(1, n=60, shift=0.3)
    # subset = whole set: every random subset is a permutation, and unbiased MMD² is permutation-invariant.
    metric = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=3, subset_size=60)
    metric.update(torch.from_numpy(a), real=True)
    metric.update(torch.from_numpy(b), real=False)
    ref_mean, _ = metric.compute()
    mean, std = kid(a, b, subset_size=60, n_subsets=3)
    assert mean == pytest.approx(ref_mean.item(), rel=1e-8)
    assert std == pytest.approx(0.0, abs=1e-9)


def test_kid_subsets_match_torchmetrics_poly_mmd():
    from torchmetrics.image.kid import poly_mmd

    a, b = _features(0, n=200), _features(1, n=150, shift=0.3)
    rng = np.random.default_rng(7)                    # replay kid()'s draws
    ref = []
    for _ in range(5):
        ia, ib = rng.choice(200, 50, replace=False), rng.choice(150, 50, replace=False)
        ref.append(poly_mmd(torch.from_numpy(a[ia]), torch.from_numpy(b[ib])).item())
        assert poly_mmd2(a[ia], b[ib]) == pytest.approx(ref[-1], rel=1e-9)
    mean, std = kid(a, b, subset_size=50, n_subsets=5, seed=7)
    assert mean == pytest.approx(np.mean(ref), rel=1e-9)
    assert std == pytest.approx(np.std(ref), rel=1e-9)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    same, shifted = kid(x, y)[0], kid(x, y + 1.0)[0]
    assert abs(same) < 0.1 * shifted                  # same distribution: near 0; a shift: clearly above


def test_bootstrap_interval():
    a, b = _features(0), _features(1, shift=1.0)
    r = bootstrap(frechet_distance, a, b, n_boot=40, seed=3)
    assert r["value"] == pytest.approx(frechet_distance(a, b))
    assert r["lo"] <= r["value"] <= r["hi"] and r["n"] == 300 and r["n_boot"] == 40
    assert r == bootstrap(frechet_distance, a, b, n_boot=40, seed=3)          # seeded
    fixed = bootstrap(frechet_distance, a, b, n_boot=40, sample_size=100)
    assert fixed["n"] == 100 and fixed["lo"] <= fixed["value"] <= fixed["hi"]
    k = bootstrap(lambda x, y: kid(x, y, subset_size=50, n_subsets=5), a, b, n_boot=10)
    assert k["lo"] <= k["hi"] and all(isinstance(v, (int, float)) for v in k.values())


@pytest.mark.parametrize("bad", ["nan", "one_row", "width"])
def test_distance_input_errors(bad):
    a, b = _features(0, n=20), _features(1, n=20)
    if bad == "nan":
        b[3, 2] = np.nan
    elif bad == "one_row":
        b = b[:1]
    else:
        b = b[:, :5]
    for fn in (frechet_distance, kid):
        with pytest.raises(MedfabError):
            fn(a, b)
