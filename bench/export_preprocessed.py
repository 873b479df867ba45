"""Write a split data set once more as SIZE x SIZE 8-bit PNGs, preprocessed with ``fit='crop_head'``.

Why (Br35H): its image sizes differ by class, so padding a whole image to a square leaks the label; cropping
to the head's bounding box first (:func:`medfab.data.preprocess.head_box`) removes that shortcut. The CLI
(`medfab train / evaluate / anomaly`) has no switch for the crop yet, so the study scripts crop once here and
hand every command the same cropped folder. The round trip is exact up to 8-bit rounding: the PNGs are
square at SIZE (the commands' resize and pad are then no-ops) and 8-bit data is normalised with the fixed
0..255 range, the rule ``normalise='auto'`` picks for the 8-bit originals too.

    .venv/bin/python bench/export_preprocessed.py OUT/split OUT/data --size 64

Writes OUT/data/<split>/<class>/<name>.png for every split of the input, then OUT/data/.complete.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from medfab.data import load_tensors
from medfab.data.preprocess import PreprocessConfig


def to_uint8(x: np.ndarray) -> np.ndarray:
    """(H, W) float in [-1, 1] -> uint8 with -1 -> 0 and 1 -> 255 (the inverse of fixed (0, 255) normalisation)."""
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def export(src: Path, dst: Path, *, size: int, fit: str, splits: list[str], workers: int) -> dict:
    cfg = PreprocessConfig(size=size, fit=fit)
    counts: dict = {}
    for split in splits:
        ts = load_tensors(src, size=size, split=split, preprocess=cfg, progress=False, workers=workers)
        used: set[str] = set()
        for x, y, key in zip(ts.x, ts.y, ts.keys):
            c = ts.classes[int(y)]
            stem = Path(key).stem
            name, k = stem, 1
            while f"{c}/{name}" in used:           # "a.jpg" and "a.png" of one class stay two files
                name, k = f"{stem}_{k}", k + 1
            used.add(f"{c}/{name}")
            out = dst / split / c / f"{name}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(to_uint8(x[0]), "L").save(out)
        counts[split] = ts.counts()
        print(f"{split}: {ts.counts()}")
    return {"source": str(src.resolve()), "preprocess": cfg.model_dump(mode="json"), "counts": counts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path, help="split data set: SRC/<split>/<class>/...")
    ap.add_argument("dst", type=Path)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--fit", default="crop_head", choices=["crop_head", "pad"])
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    splits = [s for s in ("train", "val", "test") if (args.src / s).is_dir()]
    if not splits:
        raise SystemExit(f"{args.src} has no train/, val/ or test/ folder: run `medfab data split` first")
    info = export(args.src, args.dst, size=args.size, fit=args.fit, splits=splits, workers=args.workers)
    (args.dst / ".complete").write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
