"""Does the two-stage pix2pix fabricate new images or copies of its training images? Nearest neighbours.

Usage:
  nice -n 10 .venv/bin/python bench/bench_memorisation.py /work/shared/data/alzheimer4 \
      --cls ModerateDemented --size 64 --minutes 10

Trains ``pix2pix`` (default settings) on one class of the train split (52 images for ModerateDemented) for
``--minutes``, then measures for every image of four sets its distance to the closest TRAINING image:
- ``holdout``   : real images of the same class from the test split (what "new but real" looks like),
- ``fabricated``: pix2pix samples (stage A draws a new map, stage B renders it),
- ``rendered``  : stage B applied to the training images' own maps (what translating copies would give),
- ``train``     : the training images themselves (0: what pure memorisation gives).
Distances: pixel RMSE (min over train) and SSIM (max over train). Fabricated close to holdout and far from
``rendered``/``train`` means new images; fabricated near ``train`` means memorisation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity

from medfab.data.tensors import load_tensors
from medfab.models.registry import build_model
from medfab.training.step import train_step


def load_class(root: Path, split: str, cls: str, size: int) -> np.ndarray:
    """(N, 1, S, S) in [-1, 1] for one class folder via medfab's data path (symlinked, not copied)."""
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(root / split / cls, Path(tmp) / cls)
        return load_tensors(tmp, size=size, progress=False, cache_dir=Path(tmp) / "cache").x


def nn_distances(a: np.ndarray, train: np.ndarray, *,
                 exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per image of ``a``: (min RMSE, max SSIM) against ``train``; images (N, 1, S, S) in [-1, 1]."""
    fa, ft = a.reshape(len(a), -1), train.reshape(len(train), -1)
    d2 = (fa**2).sum(1)[:, None] + (ft**2).sum(1)[None] - 2 * fa @ ft.T              # (Na, Nt)
    rmse = np.sqrt(np.maximum(d2, 0) / fa.shape[1])
    if exclude_self:
        np.fill_diagonal(rmse, np.inf)
    ssim = np.array([[structural_similarity(p[0], q[0], data_range=2.0) for q in train] for p in a])
    if exclude_self:
        np.fill_diagonal(ssim, -np.inf)
    return rmse.min(1), ssim.max(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--cls", default="ModerateDemented")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train, holdout = (load_class(args.data, s, args.cls, args.size) for s in ("train", "test"))
    print(f"{args.cls}: {len(train)} train, {len(holdout)} holdout images at {args.size}px", flush=True)

    torch.manual_seed(args.seed)
    model, _ = build_model("pix2pix", image_size=args.size, num_classes=1)
    opt = model.configure_optimizers()
    xt = torch.from_numpy(train)
    rng = np.random.default_rng(args.seed)
    step, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.minutes * 60:
        idx = torch.from_numpy(rng.choice(len(xt), args.batch, replace=len(xt) < args.batch))
        out = train_step(model, xt[idx], torch.zeros(args.batch, dtype=torch.long), step, opt)
        step += 1
        if step % 50 == 0:
            print(f"step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in out.items()), flush=True)
    epochs = step * args.batch / len(xt)
    print(f"trained {step} steps ({epochs:.0f} epochs) in {args.minutes} min", flush=True)

    g = torch.Generator().manual_seed(args.seed)
    y = torch.zeros(len(train), dtype=torch.long)
    fabricated = model.generate(y, g).numpy()
    rendered = model.render(model.coarse(xt), y, g).numpy()
    sets = {"holdout (real)": nn_distances(holdout, train),
            "fabricated": nn_distances(fabricated, train),
            "rendered train maps": nn_distances(rendered, train),
            "train (leave-one-out)": nn_distances(train, train, exclude_self=True)}
    print(f"\nnearest training image, {args.cls} {args.size}px, median [IQR] over images")
    print(f"{'set':24s} {'min RMSE':>22s} {'max SSIM':>22s}")
    for name, (rmse, ssim) in sets.items():
        q = lambda v: f"{np.median(v):.3f} [{np.percentile(v, 25):.3f}-{np.percentile(v, 75):.3f}]"
        print(f"{name:24s} {q(rmse):>22s} {q(ssim):>22s}")
    ratio = statistics.median(sets["fabricated"][0]) / statistics.median(sets["holdout (real)"][0])
    print(f"\nfabricated / holdout median NN-RMSE: {ratio:.2f} (about 1 = as novel as new real images)")


if __name__ == "__main__":
    main()
