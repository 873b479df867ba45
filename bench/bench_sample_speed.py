"""Sampling speed (images/s) of each medfab model with its default settings, on this CPU.

Usage:  nice -n 10 .venv/bin/python bench/bench_sample_speed.py [--sizes 64 128] [--batch 64]

Untrained weights: sampling cost does not depend on training. Median over ``--repeats`` calls of
``model.generate(y, generator)`` on a batch of mixed classes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from medfab.models.registry import MODEL_NAMES, build_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--models", nargs="+", default=list(MODEL_NAMES))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for size in args.sizes:
        for name in args.models:
            model, _ = build_model(name, image_size=size, num_classes=4)
            y = torch.arange(args.batch) % 4
            model.generate(y[:4], torch.Generator().manual_seed(0))     # warm-up
            times = []
            for r in range(args.repeats):
                t = time.perf_counter()
                model.generate(y, torch.Generator().manual_seed(r))
                times.append(time.perf_counter() - t)
            rows.append((name, size, args.batch / statistics.median(times)))
            print(f"{name:8s} {size:4d}px {rows[-1][2]:8.1f} img/s", flush=True)
    print(f"\nsampling images/s, batch {args.batch}, {args.threads} threads, median of {args.repeats}")
    print(f"{'model':8s} {'size':>5s} {'img/s':>8s}")
    for name, size, ips in rows:
        print(f"{name:8s} {size:5d} {ips:8.1f}")


if __name__ == "__main__":
    main()
