"""Timings of MS-SSIM diversity, PRDC and the privacy audit on N real vs N synthetic images.

    python bench/bench_eval_speed.py --n 5000 --size 128 [--real DATA/train] [--device cpu|cuda]

The privacy audit is timed twice in the same run: ``new`` (medfab.evaluation.privacy.audit_neighbours: each
distance matrix computed once by blocked float32 products on --device, read in both directions, train x train
by symmetry) and ``old`` (the same audit with the five separate neighbour searches by sklearn's brute-force
NearestNeighbors, as before issue 8); ``--skip-old`` leaves the old one out, ``--old-full-res`` adds the old one at
full resolution (slow: float64 products of N x size^2 rows). The new searches first try the exact pruning of
medfab.evaluation.neighbours_pruned; how many of them it served (the rest fell back to the products) is printed.

Machines are noisy, so every time is also given as a ratio to a reference measured in the same run: one
float32 matrix product (N x 4096) @ (4096 x N), the core operation of a brute-force neighbour search.
Without ``--real`` the images are smooth random fields.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np


def smooth_fields(n: int, size: int, seed: int) -> np.ndarray:
    """(n, 1, size, size) float32 in [-1, 1]: upsampled noise, cheap to make at 5,000 x 128^2."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.randn(n, 1, size // 8, size // 8, generator=g), size=size, mode="bilinear")
    return (x / x.abs().amax(dim=(1, 2, 3), keepdim=True)).numpy()


@contextlib.contextmanager
def count_pruned(tally: list):
    """Append True / False per pruned search attempted (False: the bound pruned too little, products ran)."""
    from medfab.evaluation import neighbours_pruned

    search = neighbours_pruned.pruned_search

    def counted(*args, **kwargs):
        found = search(*args, **kwargs)
        tally.append(found is not None)
        return found

    neighbours_pruned.pruned_search = counted
    try:
        yield
    finally:
        neighbours_pruned.pruned_search = search


@contextlib.contextmanager
def sklearn_neighbours():
    """The pre-issue-8 audit: five separate searches by sklearn's brute-force NearestNeighbors, float64."""
    from medfab.evaluation import privacy

    new = privacy.audit_neighbours
    privacy.audit_neighbours = privacy.reference_audit_neighbours
    try:
        yield
    finally:
        privacy.audit_neighbours = new


def timed(fn, *args, **kwargs) -> float:
    t = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--real", type=Path, default=None, help="folder-per-class images to use as the real set")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--skip-full-res", action="store_true", help="skip the privacy audit at full resolution")
    p.add_argument("--device", default="cpu", help="where the new neighbour search runs")
    p.add_argument("--skip-old", action="store_true", help="skip the sklearn (pre-issue-8) privacy audit")
    p.add_argument("--old-full-res", action="store_true", help="also time the sklearn audit at full resolution")
    a = p.parse_args()

    import sklearn.metrics  # imported before timing: neither audit pays for it
    import sklearn.neighbors  # noqa: F401
    import torch

    from medfab.evaluation.diversity import msssim_pairs
    from medfab.evaluation.prdc import prdc
    from medfab.evaluation.privacy import privacy_audit

    if a.threads:
        torch.set_num_threads(a.threads)
    if a.real:
        from medfab.data.tensors import load_tensors

        real = load_tensors(a.real, size=a.size, progress=False).x
        reps = int(np.ceil(a.n / len(real)))
        real = np.concatenate([real] * reps)[:a.n]
        holdout = np.flip(real, -1).copy()
    else:
        real, holdout = smooth_fields(a.n, a.size, 0), smooth_fields(a.n, a.size, 1)
    synth = smooth_fields(a.n, a.size, 2)
    rng = np.random.default_rng(0)
    m = rng.normal(size=(a.n, 4096)).astype(np.float32)

    print(f"{a.n} real vs {a.n} synthetic at {a.size}^2 ({'real' if a.real else 'random'} data), "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'measure':<50}{'seconds':>10}{'x reference':>14}", flush=True)
    ref = None

    def report(name: str, t: float) -> None:
        print(f"{name:<50}{t:>10.2f}{t / ref:>14.1f}", flush=True)

    ref = timed(lambda: m @ m.T)
    report("reference: (N x 4096) @ (4096 x N) float32", ref)
    report("MS-SSIM, 200 pairs", timed(msssim_pairs, synth, 200))
    for dim in (128, 2048):
        f_real, f_fake = rng.normal(size=(a.n, dim)), rng.normal(size=(a.n, dim))
        report(f"PRDC k=5, {dim}-d features", timed(prdc, f_real, f_fake, 5))
    f = [rng.normal(size=(a.n, 128)) for _ in range(3)]
    feats = {"features_train": f[0], "features_holdout": f[1], "features_synth": f[2]}
    tally: list = []
    with count_pruned(tally):
        new = timed(privacy_audit, real, holdout, synth, **feats, device=a.device)
    report(f"privacy audit, pixels at 64^2 + 128-d features: new ({a.device})", new)
    print(f"  pruned searches: {sum(tally)} of {len(tally)} tried", flush=True)
    if not a.skip_old:
        with sklearn_neighbours():
            old = timed(privacy_audit, real, holdout, synth, **feats)
        report("privacy audit, pixels at 64^2 + 128-d features: old (sklearn)", old)
        print(f"{'  speed-up new vs old':<50}{old / new:>10.1f}x", flush=True)
    if not a.skip_full_res:
        tally.clear()
        with count_pruned(tally):
            new = timed(privacy_audit, real, holdout, synth, pixel_size=None, device=a.device)
        report(f"privacy audit, pixels at {a.size}^2: new ({a.device})", new)
        print(f"  pruned searches: {sum(tally)} of {len(tally)} tried", flush=True)
        if a.old_full_res:
            with sklearn_neighbours():
                old = timed(privacy_audit, real, holdout, synth, pixel_size=None)
            report(f"privacy audit, pixels at {a.size}^2: old (sklearn)", old)
            print(f"{'  speed-up new vs old':<50}{old / new:>10.1f}x", flush=True)
    report("reference again (drift check)", timed(lambda: m @ m.T))


if __name__ == "__main__":
    main()
