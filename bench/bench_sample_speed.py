"""Sampling speed of ``medfab sample`` (images/s, PNG files written) per model, vs the one-image-per-call path.

Usage:  nice -n 10 .venv/bin/python bench/bench_sample_speed.py [--sizes 64] [--n 256] [--device cpu|cuda]

For each model a run folder is written with untrained weights (sampling cost does not depend on training), then
timed:
* ``new``: :func:`medfab.sampling.fabricate` (what ``medfab sample`` runs after loading), batches of
  ``--batch-size``, per-image seeds, batch-invariant kernels, on ``--device``;
* ``old``: the reference measured in the same run, the pre-issue-8 loop: one ``model.generate`` call per image with
  its own ``torch.Generator``, on the CPU with the default thread count, writing the same PNG files.
The ratio new/old is the figure to read (the machine may be loaded).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch


def make_run(name: str, size: int, root: Path) -> Path:
    """A run folder holding the untrained model (config.json + one checkpoint), as ``medfab train`` writes it."""
    from medfab.models.registry import build_model
    from medfab.training import checkpoint as ckpt

    k = 4
    torch.manual_seed(0)
    model, _ = build_model(name, image_size=size, num_classes=k)
    out = root / f"{name}_{size}"
    out.mkdir(parents=True)
    config = {"model": model.config.model_dump(),
              "data": {"classes": [f"c{i}" for i in range(k)], "counts": {f"c{i}": 8 for i in range(k)},
                       "shape": [1, size, size]}}
    ckpt.atomic_write_json(out / "config.json", config)
    ckpt.save_checkpoint(out, model, {}, step=0, nimg=0, train_seconds=0.0, config=config)
    return out


def old_path(run: Path, out: Path, n: int) -> float:
    """img/s of the pre-issue loop: one generate call per image, torch.Generator per image, CPU."""
    from medfab.sampling.writers import write_image
    from medfab.training import checkpoint as ckpt

    model, cfg = ckpt.load_run(run)
    k = len(cfg["data"]["classes"])
    out.mkdir()
    with torch.no_grad():
        model.generate(torch.tensor([0]), generator=torch.Generator().manual_seed(0))   # warm-up
    t = time.perf_counter()
    with torch.no_grad():
        for i in range(n):
            g = torch.Generator().manual_seed(i)
            x = model.generate(torch.tensor([i % k]), generator=g)[0].float().cpu().numpy()
            write_image(out / f"{i}.png", x, bit_depth=8, description="SYNTHETIC image fabricated by medfab")
    return n / (time.perf_counter() - t)


def new_path(run: Path, out: Path, n: int, batch_size: int, device: str) -> float:
    """img/s of ``fabricate`` once the run is loaded (the load, ~1 s, is timed apart and subtracted)."""
    from medfab.sampling.fabricate import fabricate
    from medfab.training import checkpoint as ckpt

    fabricate(run, out / "warm", n_per_class=max(1, batch_size // 4), progress=False, batch_size=batch_size,
              device=device)                                        # warm-up (CUDA context, kernels)
    t = time.perf_counter()
    ckpt.load_run(run)
    load = time.perf_counter() - t
    t = time.perf_counter()
    fabricate(run, out / "s", n_per_class=n // 4, progress=False, batch_size=batch_size, device=device)
    return (n // 4 * 4) / (time.perf_counter() - t - load)


def main() -> None:
    from medfab.models.registry import MODEL_NAMES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64])
    ap.add_argument("--models", nargs="+", default=list(MODEL_NAMES))
    ap.add_argument("--n", type=int, default=256, help="images per model for the new path")
    ap.add_argument("--n-old", type=int, default=64, help="images per model for the old path")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    rows = []
    root = Path(tempfile.mkdtemp(prefix="bench_sample_"))
    try:
        for size in args.sizes:
            for name in args.models:
                run = make_run(name, size, root)
                old = old_path(run, root / f"old_{name}_{size}", args.n_old)
                new = new_path(run, root / f"new_{name}_{size}", args.n, args.batch_size, args.device)
                rows.append((name, size, old, new))
                print(f"{name:8s} {size:4d}px  old {old:8.1f} img/s  new {new:8.1f} img/s  x{new / old:6.1f}",
                      flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nmedfab sample, PNG files written; new: batch {args.batch_size} on {args.device}; "
          f"old: 1 image per call on the CPU ({torch.get_num_threads()} threads)")
    print(f"{'model':8s} {'size':>5s} {'old img/s':>10s} {'new img/s':>10s} {'ratio':>7s}")
    for name, size, old, new in rows:
        print(f"{name:8s} {size:5d} {old:10.1f} {new:10.1f} {new / old:7.1f}")


if __name__ == "__main__":
    main()
