"""Training speed of medfab's models against straightforward reference implementations, on this CPU.

Usage:  nice -n 10 .venv/bin/python bench/bench_train_speed.py [--sizes 64 128] [--models dcgan ...]

For each model and size, reference and medfab steps are timed in interleaved rounds (ref, ours, ref, ours,
...) on the same random batch, so machine noise hits both alike; the table gives training images/s (median
over rounds) and the median per-round ratio ours / reference (> 1: medfab is faster). Same network sizes:
DCGAN / WGAN-GP with ngf = ndf = 64 and z = 100, pix2pix with ngf = ndf = 64, VAE with width 32.
medfab runs with its defaults otherwise (DiffAugment, EMA, spectral norm, class conditioning on; pix2pix
also trains its stage-A map prior), the references with none of that.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from reference_nets import DCGANRef, Pix2PixRef, VAERef, WGANGPRef

from medfab.models.registry import build_model

K = 4  # classes


def ours(name: str, size: int):
    fields = {"dcgan": {"g_width": 64, "d_width": 64, "z_dim": 100, "max_channels": 4096},
              "wgan-gp": {"g_width": 64, "d_width": 64, "z_dim": 100, "max_channels": 4096},
              "pix2pix": {"g_width": 64, "d_width": 64},
              "vae": {"width": 32}}[name]
    model, _ = build_model(name, image_size=size, num_classes=K, **fields)
    opt = model.configure_optimizers()
    state = {"step": 0}

    def step(x, y):
        model.train_step(x, y, state["step"], opt)
        state["step"] += 1
    return step


def reference(name: str, size: int):
    if name == "dcgan":
        return DCGANRef(size).step
    if name == "wgan-gp":
        return WGANGPRef(size).step
    if name == "pix2pix":
        return Pix2PixRef(size).step
    return VAERef(size, K).step


def timed(step, x, y, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        step(x, y)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--models", nargs="+", default=["dcgan", "wgan-gp", "vae", "pix2pix"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for size in args.sizes:
        for name in args.models:
            torch.manual_seed(0)
            x = torch.rand(args.batch, 1, size, size) * 2 - 1              # (B, 1, S, S)
            y = torch.randint(0, K, (args.batch,))
            ref_step, our_step = reference(name, size), ours(name, size)
            timed(ref_step, x, y, 1), timed(our_step, x, y, 1)             # warm-up (allocator, kernels)
            t_ref, t_our = [], []
            for _ in range(args.rounds):
                t_ref.append(timed(ref_step, x, y, args.steps))
                t_our.append(timed(our_step, x, y, args.steps))
            n_img = args.batch * args.steps
            ratio = statistics.median(r / o for r, o in zip(t_ref, t_our))
            ips_ref, ips_our = n_img / statistics.median(t_ref), n_img / statistics.median(t_our)
            rows.append((name, size, ips_ref, ips_our, ratio))
            print(f"{name:8s} {size:4d}px  ref {rows[-1][2]:7.2f} img/s  medfab {rows[-1][3]:7.2f} img/s  "
                  f"ratio {ratio:.2f}", flush=True)
    print(f"\ntraining images/s, batch {args.batch}, {args.threads} threads, median of {args.rounds} rounds")
    print(f"{'model':8s} {'size':>5s} {'reference':>10s} {'medfab':>10s} {'medfab/ref':>11s}")
    for name, size, r, o, ratio in rows:
        print(f"{name:8s} {size:5d} {r:10.2f} {o:10.2f} {ratio:11.2f}")


if __name__ == "__main__":
    main()
