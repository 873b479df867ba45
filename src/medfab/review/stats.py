"""Estimators of a visual Turing test: exact binomial interval, Fleiss' kappa, quality comparison.

Each is checked in the tests against a reference (scipy's ``binomtest``, the worked example of Fleiss' kappa
in Fleiss 1971 / Wikipedia, scipy's ``mannwhitneyu``).
"""

from __future__ import annotations

import math

import numpy as np


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion k / n, from beta quantiles."""
    from scipy.stats import beta

    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    a = (1.0 - confidence) / 2.0
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1.0 - a, k + 1, n - k))
    return lo, hi


def binomial_p(k: int, n: int, p: float = 0.5) -> float:
    """Two-sided exact binomial test of k successes in n trials against chance ``p``."""
    from scipy.stats import binomtest

    return float(binomtest(k, n, p).pvalue)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of an (N subjects, k categories) table of rating counts, every row summing to n raters.

    P_i = (sum_j n_ij^2 - n) / (n (n - 1)), P_bar = mean_i P_i, p_j = sum_i n_ij / (N n),
    P_e = sum_j p_j^2, kappa = (P_bar - P_e) / (1 - P_e)   (Fleiss 1971).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] < 1:
        raise ValueError(f"counts must be (N subjects, k categories), got shape {counts.shape}")
    n = counts.sum(axis=1)
    if not np.all(n == n[0]) or n[0] < 2:
        raise ValueError("every subject needs the same number (>= 2) of ratings")
    n = n[0]
    N = counts.shape[0]
    P_i = ((counts**2).sum(axis=1) - n) / (n * (n - 1))
    p_j = counts.sum(axis=0) / (N * n)
    P_bar, P_e = P_i.mean(), (p_j**2).sum()
    if P_e >= 1.0:  # every rating in one category: agreement is perfect but kappa is undefined
        return float("nan")
    return float((P_bar - P_e) / (1.0 - P_e))


def mean_sd(x: list[float]) -> tuple[float | None, float | None]:
    if not x:
        return None, None
    a = np.asarray(x, dtype=np.float64)
    return float(a.mean()), (float(a.std(ddof=1)) if a.size > 1 else None)


def mann_whitney_p(x: list[float], y: list[float]) -> float | None:
    """Two-sided Mann-Whitney U p-value; None when a group is empty; 1.0 when every value is the same."""
    from scipy.stats import mannwhitneyu

    if not x or not y:
        return None
    if len(set(x) | set(y)) == 1:
        return 1.0
    p = float(mannwhitneyu(x, y, alternative="two-sided").pvalue)
    return p if math.isfinite(p) else None
