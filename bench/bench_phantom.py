"""Phantom speed: 1,000 2D slices at 128^2 (goal < 60 s on 2 cores) and N 3D volumes at 64^3.

    nice -n 10 .venv/bin/python bench/bench_phantom.py --n2d 1000 --n3d 50

Machines are noisy (8 engineers share 2 cores), so each figure is given three ways: wall seconds, CPU
seconds (this process + its workers: what an idle machine would need), and the CPU ratio to a reference
measured in the same run: encoding the same number of same-sized random 8-bit PNGs (a floor any writer pays).
"""

from __future__ import annotations

import argparse
import io
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the worker processes)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


class Clock:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, _cpu() - self.cpu


def _reference(n: int, size: int) -> Clock:
    from PIL import Image

    rng = np.random.default_rng(0)
    with Clock() as c:
        for _ in range(n):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(buf, format="PNG")
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n2d", type=int, default=1000)
    ap.add_argument("--size2d", type=int, default=128)
    ap.add_argument("--n3d", type=int, default=50)
    ap.add_argument("--size3d", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()

    from medfab.phantom import make_cohort
    from medfab.phantom.anatomy import load_atlas

    with Clock() as c:
        load_atlas()
    print(f"atlas load (disk cache or build): {c.wall:.2f} s")
    ref = _reference(args.n2d, args.size2d)
    print(f"reference: {args.n2d} random PNGs {args.size2d}^2 encoded: wall {ref.wall:.2f} s, cpu {ref.cpu:.2f} s")

    def report(what: str, n: int, unit: str, c: Clock) -> None:
        print(f"{what}: wall {c.wall:.1f} s ({n / c.wall:.1f} {unit}/s), cpu {c.cpu:.1f} s "
              f"({n / c.cpu:.1f} {unit}/cpu-s), {c.cpu / ref.cpu:.1f}x reference cpu")

    with tempfile.TemporaryDirectory() as d:
        for w in args.workers:
            with Clock() as c:
                make_cohort("alzheimer", args.n2d, args.size2d, 2, 0, Path(d) / f"a{w}", workers=w)
            report(f"2D alzheimer {args.n2d} x {args.size2d}^2, workers={w}", args.n2d, "slices", c)
        with Clock() as c:
            make_cohort("tumor", args.n2d, args.size2d, 2, 0, Path(d) / "t", workers=1)
        report(f"2D tumor     {args.n2d} x {args.size2d}^2, workers=1", args.n2d, "slices", c)
        for w in args.workers:
            with Clock() as c:
                make_cohort("alzheimer", args.n3d, args.size3d, 3, 0, Path(d) / f"v{w}", workers=w)
            report(f"3D alzheimer {args.n3d} x {args.size3d}^3, workers={w}", args.n3d, "volumes", c)

if __name__ == "__main__":
    main()
