"""Time the evaluation families on N real vs N synthetic images, and how the time grows with N.

    nice -n 10 .venv/bin/python bench/bench_evaluate.py --n 1000 5000 20000 --size 128 \
        [--data /work/shared/data/alzheimer4] [--families histograms brain_mass ...]

Timings are printed in seconds and as a ratio to a fixed reference workload measured in the same run
(machines here are shared and noisy: compare ratios, not seconds). "Real" images are the alzheimer4 train
split (replicated up to N) when --data is given, smooth synthetic phantoms otherwise; "synthetic" images are
a blurred, noisy, shuffled copy (so texture-dependent costs such as GLSZM zones are not flattered).

Families are a table of (name, callable(real, synth, ctx) -> figures); slow feature extractors are measured
on at most --measure-cap images per set and extrapolated linearly (marked '~'), since their cost is per image.
Other evaluation families are added to FAMILIES below.

FeatureNet extraction is also timed old vs new in the same run, on N real + N synthetic images (extrapolated from
--measure-cap per set): ``old`` = the pre-issue-8 ``embed`` (no_grad, NCHW, CPU), ``new`` = ``FeatureNet.transform``
(inference mode, BatchNorm folded, channels-last, batches of 8 on the CPU, on --device); also the convolutions'
GFLOP/s against a float32 matrix product's measured just after (the ceiling for an unchanged network).

The default ``medfab evaluate`` on alzheimer4 at 64² is timed by the command printed with ``--print-default``
(run it in the background: it takes minutes).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from scipy import ndimage

Family = Callable[[np.ndarray, np.ndarray, dict], dict]


# ----------------------------------------------------------------------------------------------- inputs
def phantom_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, 1, size, size) float32 in [-1, 1]: ellipse heads with smooth texture on a dark background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    base = []
    for i in range(min(n, 64)):              # 64 distinct heads, replicated: generation is not what we time
        a = rng.uniform(0.25, 0.42)
        head = (yy / a) ** 2 + (xx / (0.85 * a)) ** 2 < 1
        tex = ndimage.gaussian_filter(rng.normal(size=(size, size)), size / 32) * size / 16
        base.append(np.clip(np.where(head, 0.3 + 0.3 * tex, -1.0), -1, 1))
    return np.stack(base)[np.arange(n) % len(base), None].astype(np.float32)


def real_images(path: str, n: int, size: int) -> np.ndarray:
    from medfab.data.tensors import load_tensors

    x = load_tensors(path, size=size, split="train", progress=False).x
    return np.ascontiguousarray(x[np.arange(n) % len(x)])


def degrade(x: np.ndarray, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty_like(x)
    for i in range(0, len(x), 1000):                       # chunks: 20k images at 128² are 1.3 GB per copy
        c = ndimage.gaussian_filter(x[i:i + 1000], (0, 0, 0.8, 0.8))
        out[i:i + 1000] = np.clip(c + rng.normal(0, 0.05, c.shape).astype(np.float32), -1, 1)
    return out[rng.permutation(len(x))]


def reference_seconds(repeats: int = 2) -> float:
    """A fixed CPU workload (5 float64 512² matmuls + a 1M-element sort, ~0.1 s on an idle core): the
    yardstick for ratios, re-measured before every row because the load on a shared machine drifts."""
    rng = np.random.default_rng(0)
    a, v = rng.normal(size=(512, 512)), rng.normal(size=1_000_000)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(5):
            a @ a
        np.sort(v)
        best = min(best, time.perf_counter() - t)
    return best


# --------------------------------------------------------------------------------------------- families
def histograms(real, synth, ctx) -> dict:
    from medfab.evaluation.histograms import compare_histograms

    r = compare_histograms(real, synth)
    return {"js": r["js"], "w1": r["w1"]}


def brain_mass(real, synth, ctx) -> dict:
    from medfab.evaluation.brain_mass import compare_mass

    r = compare_mass(real, synth)
    return {"ks": r["ks"], "w1": r["w1"]}


def _capped(fn, real, synth, cap):
    """Run a per-image feature extractor on at most ``cap`` images per set; extrapolate time linearly."""
    m = min(len(real), cap)
    t = time.perf_counter()
    fr, fs = fn(real[:m], synth[:m])
    sec = (time.perf_counter() - t) * len(real) / m
    idx = np.arange(len(real)) % m                       # replicate to N rows for the distance timing
    return fr[idx], fs[idx], sec, m < len(real)


def distance_family(extractor: str) -> Family:
    """Features (fitted on real) -> FD and KID, each with a 95 % bootstrap interval."""

    def run(real, synth, ctx) -> dict:
        from medfab.evaluation.distances import bootstrap, frechet_distance, kid
        from medfab.evaluation.features import extract_pair

        kw = dict(ctx.get(extractor, {}))
        fr, fs, feat_s, extrapolated = _capped(lambda r, s: extract_pair(extractor, r, s, **kw), real, synth,
                                               ctx["cap"] if extractor in ctx["slow"] else len(real))
        t = time.perf_counter()
        fd = bootstrap(frechet_distance, fr, fs, n_boot=ctx["n_boot"], sample_size=ctx["sample_size"])
        fd_s = time.perf_counter() - t
        t = time.perf_counter()
        k = bootstrap(kid, fr, fs, n_boot=ctx["n_boot"], sample_size=ctx["sample_size"])
        kid_s = time.perf_counter() - t
        return {"seconds": feat_s + fd_s + kid_s, "extrapolated": extrapolated, "features_s": feat_s,
                "fd_boot_s": fd_s, "kid_boot_s": kid_s, "dim": fr.shape[1], "fd": fd["value"], "kid": k["value"]}

    return run


def _old_embed(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The pre-issue-8 ``classifier.embed``: no_grad, default (NCHW) layout, on the CPU."""
    import torch

    model = model.cpu().to(memory_format=torch.contiguous_format).eval()
    with torch.no_grad():
        out = [model.features(torch.as_tensor(x[i:i + batch_size], dtype=torch.float32))
               for i in range(0, len(x), batch_size)]
    return torch.cat(out).double().numpy()


def conv_flops(model, image_shape) -> float:
    """Multiply-adds x 2 of every convolution for one image (the bulk of SmallCNN's work), counted by hooks."""
    import torch

    total = []
    hooks = [m.register_forward_hook(lambda m, i, o: total.append(2 * o.numel() * m.weight[0].numel()))
             for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Conv3d)]
    with torch.no_grad():
        model.cpu().features(torch.zeros(1, *image_shape))
    for h in hooks:
        h.remove()
    return float(sum(total))


def matmul_gflops() -> float:
    """float32 GFLOP/s of a 1024^3 matrix product right now: what the convolutions could at best reach."""
    a = np.random.default_rng(0).normal(size=(1024, 1024)).astype(np.float32)
    best = np.inf
    for _ in range(3):
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
    return 2 * 1024**3 / best / 1e9


def featurenet_old_vs_new(net, real, synth, n: int, cap: int, device: str) -> None:
    """FeatureNet extraction of n real + n synthetic images, old vs new, timed on ``cap`` per set."""
    m = min(n, cap)
    t = time.perf_counter()
    old = np.concatenate([_old_embed(net.model, real[:m]), _old_embed(net.model, synth[:m])])
    old_s = (time.perf_counter() - t) * n / m
    net.to(device)
    net.transform(real[:8])                                   # warm-up (CUDA context, oneDNN primitives)
    t = time.perf_counter()
    new = np.concatenate([net.transform(real[:m]), net.transform(synth[:m])]) * net.scale + net.mean
    new_s = (time.perf_counter() - t) * n / m
    net.to("cpu")
    err = float(np.abs(new - old).max() / (np.abs(old).max() + 1e-12))
    mark = "~" if m < n else ""
    print(f"featurenet extraction, {n} real + {n} synthetic: old {mark}{old_s:.1f} s (CPU), new {mark}{new_s:.1f} s "
          f"({device}); speed-up {old_s / new_s:.1f}x; max relative difference {err:.1e}", flush=True)
    gflop = conv_flops(net.model, real.shape[1:]) / 1e9 * 2 * n           # every image of both sets
    print(f"  convolutions: {gflop / (2 * n):.3f} GFLOP per image; old {gflop / old_s:.1f} GFLOP/s, new "
          f"{gflop / new_s:.1f} GFLOP/s; float32 matmul now: {matmul_gflops():.1f} GFLOP/s", flush=True)


FAMILIES: list[tuple[str, Family]] = [
    ("histograms", histograms),
    ("brain_mass", brain_mass),
    ("fd_kid_pixel", distance_family("pixel")),
    ("fd_kid_featurenet", distance_family("featurenet")),
    ("fd_kid_radiomic", distance_family("radiomic")),
]


# ------------------------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[5000], help="images per set (several: scaling)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--data", default=None, help="alzheimer4 root (train split used); default: phantoms")
    ap.add_argument("--families", nargs="+", default=None, help=f"subset of {[n for n, _ in FAMILIES]}")
    ap.add_argument("--n-boot", type=int, default=100)
    ap.add_argument("--sample-size", type=int, default=None, help="fixed bootstrap sample size")
    ap.add_argument("--measure-cap", type=int, default=2000,
                    help="slow extractors (radiomic, featurenet) are timed on at most this many images per set")
    ap.add_argument("--featurenet-epochs", type=int, default=1)
    ap.add_argument("--featurenet-train", type=int, default=1000, help="real images the feature net trains on")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="where the new FeatureNet extraction runs")
    ap.add_argument("--print-default", action="store_true",
                    help="print the command that times the default `medfab evaluate` on --data and exit")
    args = ap.parse_args()
    if args.print_default:
        d = args.data or "/work/shared/data/alzheimer4"
        print(f"OMP_NUM_THREADS=1 nice -n 10 /usr/bin/time -v .venv/bin/medfab evaluate --real-train {d}/train "
              f"--real-test {d}/test --synthetic {d}/train --out /tmp/eval_default --size 64")
        return

    import torch

    torch.set_num_threads(args.threads)
    chosen = [(n, f) for n, f in FAMILIES if args.families is None or n in args.families]
    n_max = max(args.n)
    real_all = real_images(args.data, n_max, args.size) if args.data else phantom_images(n_max, args.size)
    synth_all = degrade(real_all)
    ref = reference_seconds()
    print(f"reference workload: {ref:.3f} s (each ratio = seconds / the reference measured just before it)")
    ctx: dict = {"n_boot": args.n_boot, "sample_size": args.sample_size, "cap": args.measure_cap,
                 "slow": {"radiomic", "featurenet"}}
    if any(n == "fd_kid_featurenet" for n, _ in chosen):
        from medfab.data.tensors import TensorSet
        from medfab.evaluation.features.feature_net import FeatureNet

        m = min(args.featurenet_train, n_max)
        # Labels only matter for what the net learns, not for its cost: two classes by head size proxy.
        y = (real_all[:m].reshape(m, -1).mean(1) > np.median(real_all[:m].reshape(m, -1).mean(1))).astype(int)
        t = time.perf_counter()
        net = FeatureNet.fit(TensorSet(real_all[:m], y, ["a", "b"], [""] * m), epochs=args.featurenet_epochs)
        fit_s = time.perf_counter() - t
        print(f"featurenet fit: {m} images x {args.featurenet_epochs} epoch(s) at {args.size}^2: {fit_s:.1f} s "
              f"(ratio {fit_s / ref:.1f}; {fit_s / (m * args.featurenet_epochs) * 1e3:.2f} ms per image-epoch)")
        ctx["featurenet"] = {"net": net}
        featurenet_old_vs_new(net, real_all, synth_all, n_max, args.measure_cap, args.device)

    print(f"{'N':>6} {'family':<20} {'seconds':>9} {'ratio':>8} {'ref_s':>6}  figures")
    for n in sorted(args.n):
        real, synth = real_all[:n], synth_all[:n]
        for name, fn in chosen:
            ref = reference_seconds()
            t = time.perf_counter()
            out = fn(real, synth, ctx)
            sec = out.pop("seconds", time.perf_counter() - t)
            mark = "~" if out.pop("extrapolated", False) else " "
            figs = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items())
            print(f"{n:>6} {name:<20} {mark}{sec:>8.1f} {sec / ref:>8.1f} {ref:>6.2f}  {figs}", flush=True)
    print(f"reference workload (end of run): {reference_seconds():.3f} s")


if __name__ == "__main__":
    main()
