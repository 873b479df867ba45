"""Class fidelity after a fixed training budget: medfab's default model vs a plain DCGAN.

Trains each variant for ``--minutes`` on the real ``train`` split at 64x64 (same loop, same seed, same
class-balanced batches), fabricates a balanced set (``--n-per-class`` per class, one seed per image) and
asks the shared classifier, trained on the real training images, which class each image shows. Printed
per class: how often the requested class is recognised, next to the same classifier's recall on the real
``test`` split (the ceiling a perfect generator could reach with this classifier).

    nice -n 10 .venv/bin/python bench/bench_quality.py --data /work/shared/data/alzheimer4 --minutes 5
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medfab.data import load_tensors
from medfab.evaluation.classifier import predict_proba, train_classifier
from medfab.models.registry import build_model
from medfab.sampling.fabricate import generate_one, image_seed
from medfab.sampling.writers import to_uint
from medfab.training.checkpoint import latest_checkpoint, read_sidecar
from medfab.training.loop import fit


def _parse_sets(text: str) -> dict:
    from medfab.training.config import parse_sets

    return parse_sets([s for s in text.split(",") if s])


def _fabricate(model, num_classes: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images per class (N, 1, H, W), quantised to 8 bits as `medfab sample` would write them."""
    model.eval()
    xs, ys, i = [], [], 0
    for c in range(num_classes):
        for _ in range(n):
            x = generate_one(model, c, image_seed(seed, i))                     # (1, H, W) in [-1, 1]
            xs.append(to_uint(x, 8).astype(np.float32) / 127.5 - 1)
            ys.append(c)
            i += 1
    return np.stack(xs), np.array(ys)


def _recognised(clf, x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class: share of images whose arg-max class is the requested one, and the mean p(requested)."""
    p = predict_proba(clf, x)
    hit = p.argmax(1) == y
    return (np.array([hit[y == c].mean() for c in range(k)]),
            np.array([p[y == c, c].mean() for c in range(k)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--minutes", type=float, default=5.0, help="training time per variant")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--model", default="dcgan", help="the default model (with its small-data tools)")
    ap.add_argument("--plain", default="diffaug=none,ema=false",
                    help="settings that make the plain DCGAN baseline (comma-separated key=value)")
    ap.add_argument("--n-per-class", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--classifier-epochs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="run folders (default: a temporary folder)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    train = load_tensors(args.data, size=args.size, split="train", progress=False)
    test = load_tensors(args.data, size=args.size, split="test", progress=False).with_classes(train.classes)
    K = len(train.classes)
    print(f"data: train {train.counts()}  test {test.counts()}  ({time.perf_counter() - t0:.0f} s)")

    t0 = time.perf_counter()
    clf = train_classifier(train.x, train.y, K, epochs=args.classifier_epochs, seed=args.seed)
    real_hit, real_p = _recognised(clf, test.x, test.y, K)
    print(f"classifier on real train: {time.perf_counter() - t0:.0f} s, balanced test accuracy "
          f"{real_hit.mean():.3f}")

    out = args.out or Path(tempfile.mkdtemp(prefix="medfab_bench_quality_"))
    variants = {f"{args.model} (default)": {}, "plain dcgan": {**_parse_sets(args.plain)}}
    results = {}
    for label, extra in variants.items():
        name = args.model if not label.startswith("plain") else "dcgan"
        torch.manual_seed(args.seed)
        model, cfg = build_model(name, image_size=args.size, num_classes=K, batch_size=args.batch_size, **extra)
        run = out / ("plain" if label.startswith("plain") else "default")
        t0 = time.perf_counter()
        fit(model, train, out=run, minutes=args.minutes, seed=args.seed, config={"bench": label},
            progress=False, log_every=100, grid_every=1e9)
        meta = read_sidecar(latest_checkpoint(run))
        xs, ys = _fabricate(model.cpu(), K, args.n_per_class, args.seed)
        hit, p = _recognised(clf, xs, ys, K)
        results[label] = {"hit": hit, "p": p, "kimg": meta["kimg"], "steps": meta["step"]}
        print(f"{label}: {meta['kimg']:.1f} kimg in {meta['train_seconds'] / 60:.1f} min "
              f"({meta['kimg'] * 1000 / meta['train_seconds']:.0f} img/s), settings "
              f"{json.dumps({k: v for k, v in cfg.model_dump().items() if k in ('diffaug', 'ema', 'd_spectral_norm', 'loss')})}"
              f", total {time.perf_counter() - t0:.0f} s")

    print(f"\nclass recognised by the real-trained classifier (share of {args.n_per_class} images per class; "
          "mean p(requested class) in brackets)")
    header = f"{'class':<20}{'n train':>8}{'real test':>16}" + "".join(f"{lab:>24}" for lab in results)
    print(header)
    for c, cname in enumerate(train.classes):
        row = f"{cname:<20}{train.counts()[cname]:>8}{real_hit[c]:>9.3f} ({real_p[c]:.2f})"
        row += "".join(f"{r['hit'][c]:>17.3f} ({r['p'][c]:.2f})" for r in results.values())
        print(row)
    row = f"{'mean':<28}{real_hit.mean():>9.3f} ({real_p.mean():.2f})"
    print(row + "".join(f"{r['hit'].mean():>17.3f} ({r['p'].mean():.2f})" for r in results.values()))
    print(f"\nruns: {out}")


if __name__ == "__main__":
    main()
