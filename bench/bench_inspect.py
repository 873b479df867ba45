"""Time `medfab data inspect` on a real data set, save its output, and measure the near-duplicate detector.

    nice -n 10 .venv/bin/python bench/bench_inspect.py /work/shared/data/alzheimer4 --out bench/out

Prints (and writes to OUT/inspect.txt, OUT/inspect.json):
1. the inspect report and its wall time, as a ratio to a reference measured in the same run: decoding every
   image once with Pillow (the least any inspection must do);
2. whether the known cross-split pair is found (alzheimer4: test/VeryMildDemented/27 (17).jpg ~
   train/VeryMildDemented/verymildDem1757.jpg);
3. detection rates on 200 random images turned into re-encoded / noised / resized copies, and the false
   matches among them, at the default threshold.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

KNOWN = ("test/VeryMildDemented/27 (17).jpg", "train/VeryMildDemented/verymildDem1757.jpg")


def decode_all(root: Path) -> tuple[float, list[Path]]:
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    t = time.perf_counter()
    for f in files:
        np.asarray(Image.open(f).convert("L"), dtype=np.float32)
    return time.perf_counter() - t, files


def perturbations(a: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """(H, W) uint8 -> the same image as a user's pipeline might have re-exported it."""

    def jpeg(x, q):
        buf = io.BytesIO()
        Image.fromarray(x).save(buf, "JPEG", quality=q)
        return np.asarray(Image.open(buf), np.float32)

    h, w = a.shape
    return {
        "png 16-bit (x257)": a.astype(np.float32) * 257,
        "jpeg q50": jpeg(a, 50),
        "noise sd 5/255": np.clip(a + rng.normal(0, 5, a.shape), 0, 255),
        "noise sd 10/255": np.clip(a + rng.normal(0, 10, a.shape), 0, 255),
        "resize x0.8": np.asarray(
            Image.fromarray(a).resize((int(w * 0.8), int(h * 0.8)), Image.BILINEAR), np.float32
        ),
        "brightness x0.9": a.astype(np.float32) * 0.9,
        "shift 2 px": np.roll(a, (2, 2), (0, 1)).astype(np.float32),
    }


def detector_rates(files: list[Path], n: int = 200, seed: int = 0) -> list[str]:
    from medfab.data import duplicates as dup

    rng = np.random.default_rng(seed)
    pick = [files[i] for i in rng.choice(len(files), size=min(n, len(files)), replace=False)]
    originals = [np.asarray(Image.open(f).convert("L")) for f in pick]
    lines = []
    # the data set's range, as inspect computes it: medians of thumbnail percentiles over the originals
    raw = np.stack([dup.thumbnail(a.astype(np.float32)) for a in originals])
    lo, hi = dup.intensity_range(np.percentile(raw, 0.5, axis=(1, 2)), np.percentile(raw, 99.5, axis=(1, 2)))
    kinds = list(perturbations(originals[0], rng))
    for kind in kinds:
        copies = [perturbations(a, rng)[kind] for a in originals]
        if kind.startswith("png 16"):  # inspect scales each bit depth by its own range
            t_c = dup.normalise_thumbnails(np.stack([dup.thumbnail(c) for c in copies]), lo * 257, hi * 257)
        else:
            t_c = dup.normalise_thumbnails(np.stack([dup.thumbnail(c) for c in copies]), lo, hi)
        t = np.concatenate([dup.normalise_thumbnails(raw, lo, hi), t_c])  # (2n, 32, 32)
        pairs, _ = dup.near_duplicate_pairs(t, dup.perceptual_hashes(t))
        m = len(originals)
        found = {(int(a), int(b)) for a, b in pairs}
        hit = sum((i, i + m) in found for i in range(m))
        lines.append(f"  {kind:18s} found {hit:3d}/{m}   other pairs flagged: {len(found) - hit}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    ref_s, files = decode_all(args.data)  # also warms the file cache, so both timings read from memory
    ref_s, files = decode_all(args.data)
    env = dict(os.environ, COLUMNS="120", TERM="dumb")
    t = time.perf_counter()
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "medfab.cli.main",
            "data",
            "inspect",
            str(args.data),
            "--json",
            str(args.out / "inspect.json"),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    inspect_s = time.perf_counter() - t
    (args.out / "inspect.txt").write_text(res.stdout)
    print(res.stdout)
    if res.returncode != 0:
        print(res.stderr)
        sys.exit(res.returncode)
    report = json.loads((args.out / "inspect.json").read_text())
    pairs = {tuple(sorted(p[:2])) for p in report["near_duplicates"]}
    summary = [
        f"files: {len(files)}",
        f"reference (decode every image once with Pillow): {ref_s:.1f} s",
        (
            f"medfab data inspect (process start to exit):      {inspect_s:.1f} s "
            f"= {inspect_s / ref_s:.1f}x the reference"
        ),
        f"known cross-split pair found: {tuple(sorted(KNOWN)) in pairs}",
        (
            f"near-duplicate pairs: {len(report['near_duplicates'])} "
            f"({report['cross_split_near']} cross-split), "
            f"exact-duplicate groups: {len(report['exact_duplicates'])}"
        ),
        (
            f"detector on {min(200, len(files))} random images and a perturbed copy of each "
            f"(threshold RMSE {report['near_threshold']}):"
        ),
        *detector_rates(files),
    ]
    (args.out / "inspect.txt").write_text(res.stdout + "\n" + "\n".join(summary) + "\n")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
