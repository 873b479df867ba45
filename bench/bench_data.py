"""Throughput of read + preprocess + cache on a folder of images, cold (empty cache) and cached.

    nice -n 10 .venv/bin/python bench/bench_data.py --data /work/shared/data/alzheimer4

Prints images/s for each size, and each figure as a ratio to a reference measured in the same run:
plain Pillow decoding of every file (``Image.open(f).load()``), the floor any reader pays.
The cache goes to a temporary folder that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (the machine is shared)")
    ap.add_argument("--workers", type=int, default=None, help="decoding processes (default: load_tensors' auto)")
    args = ap.parse_args()

    import torch
    from PIL import Image

    from medfab.data import load_tensors, read_dataset

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ds = read_dataset(args.data)
    t_list = time.perf_counter() - t0
    n = len(ds)
    print(f"{args.data}: {n} samples, {len(ds.classes)} classes, listed in {t_list:.2f} s ({n / t_list:.0f} files/s)")

    def reference() -> float:
        t0 = time.perf_counter()
        for s in ds.samples:
            with Image.open(s.path) as im:
                im.load()
        return n / (time.perf_counter() - t0)

    ref = reference()
    print(f"reference: Pillow decode only {ref:.0f} img/s (measured again after each size: machine is shared)")

    print(f"workers: {args.workers or 'auto'} (cpu_count {os.cpu_count()})")
    print(f"{'size':>6} {'run':>7} {'img/s':>9} {'x ref':>7}")
    for size in (int(v) for v in args.sizes.split(",")):
        cache = Path(tempfile.mkdtemp(prefix="medfab-bench-"))
        try:
            for run in ("cold", "cached"):
                t0 = time.perf_counter()
                ts = load_tensors(args.data, size=size, cache_dir=cache, progress=False, workers=args.workers)
                rate = len(ts) / (time.perf_counter() - t0)
                print(f"{size:>6} {run:>7} {rate:>9.0f} {rate / ref:>7.2f}")
            again = reference()
            print(f"{'':>6} reference again {again:.0f} img/s (drift {again / ref:.2f}x)")
            ref = again
            mb = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 2**20
            print(f"{'':>6} cache {mb:.0f} MiB, x {ts.x.shape} {ts.x.dtype}, preprocess {ts.preprocess['normalise']}"
                  f" {ts.preprocess['fixed_range']}")
        finally:
            shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
