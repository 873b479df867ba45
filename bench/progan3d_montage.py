"""Mid-slice montage of a progan3d run: each row one volume, columns the three orthogonal middle slices of the image
and (for runs trained with --with-seg) of its tissue labels; a first block of real training volumes if given.

Usage: .venv/bin/python bench/progan3d_montage.py --run RUN --out montage.png [--n 6] [--real ../shared/data/ixi_t1/t1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def mid_slices(v: np.ndarray) -> list[np.ndarray]:
    """(D, H, W) -> the three middle slices, each rotated to display upright."""
    d, h, w = (s // 2 for s in v.shape)
    return [np.rot90(v[d]), np.rot90(v[:, h]), np.rot90(v[:, :, w])]


def row(x: np.ndarray, n_img: int) -> np.ndarray:
    """(C, S, S, S) in [-1, 1] -> one uint8 row: image slices, then label slices scaled to 0..255."""
    tiles = [(s + 1) * 127.5 for s in mid_slices(x[0])]
    if x.shape[0] > n_img:
        labels = np.argmax(x[n_img:], axis=0).astype(np.float32)
        tiles += [s * (255.0 / max(1, x.shape[0] - n_img - 1)) for s in mid_slices(labels)]
    return np.concatenate(tiles, axis=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=6)
    p.add_argument("--real", type=Path, default=None, help="folder of training volumes to show first")
    a = p.parse_args()

    from PIL import Image

    from medfab.models.noise import StackedRandomGenerator
    from medfab.training import checkpoint as ckpt

    model, cfg = ckpt.load_run(a.run)
    n_img = int((cfg.get("segmentation") or {}).get("image_channels", model.config.channels))
    with torch.no_grad():
        x = model.generate(torch.zeros(a.n, dtype=torch.long), StackedRandomGenerator(range(a.n))).numpy()
    rows = [row(v, n_img) for v in x]
    if a.real is not None:
        from medfab.data.pipeline import dataset_tensors
        from medfab.data.volumes import single_class_dataset

        ts = dataset_tensors(single_class_dataset(a.real), size=model.config.image_size, progress=False)
        rows = [row(np.asarray(ts.x[i]), 1)[:, : 3 * model.config.image_size] for i in range(min(a.n, len(ts)))] + rows
        width = max(r.shape[1] for r in rows)
        rows = [np.pad(r, ((0, 0), (0, width - r.shape[1])), constant_values=0) for r in rows]
    grid = np.clip(np.concatenate(rows, axis=0), 0, 255).astype(np.uint8)
    Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.NEAREST).save(a.out)
    print(f"wrote {a.out}: {len(rows)} rows; stage {model.stage} at {int(model.nimg)} images")


if __name__ == "__main__":
    main()
