"""Is the phantom Alzheimer task hard but learnable? Train the shared SmallCNN on one phantom cohort, test
on another (different seed), print balanced accuracy and per-class recall for balanced and imbalanced sets.

    nice -n 10 .venv/bin/python bench/bench_phantom_difficulty.py --n-train 2000 --n-test 800 --size 64

Target: well above chance (25 %) and below 100 %, roughly 60-90 % balanced accuracy.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medfab.data.tensors import load_tensors
from medfab.evaluation.classifier import predict_proba, train_classifier
from medfab.phantom import make_cohort


def run(balance: str, args, tmp: Path) -> float:
    t0 = time.perf_counter()
    tr = make_cohort("alzheimer", args.n_train, args.size, 2, args.seed, tmp / f"train-{balance}",
                     balance=balance, workers=args.workers)
    te = make_cohort("alzheimer", args.n_test, args.size, 2, args.seed + 1000, tmp / f"test-{balance}",
                     balance=balance, workers=args.workers)
    t_make = time.perf_counter() - t0
    # The phantom's stage order, not alphabetical: recall lines read from healthy to severe.
    classes = ["NonDemented", "VeryMildDemented", "MildDemented", "ModerateDemented"]
    a = load_tensors(tr, size=args.size, progress=False).with_classes(classes)
    b = load_tensors(te, size=args.size, progress=False).with_classes(classes)
    t1 = time.perf_counter()
    model = train_classifier(a.x, a.y, len(classes), epochs=args.epochs, width=args.width, seed=args.seed)
    pred = predict_proba(model, b.x).argmax(1)
    t_fit = time.perf_counter() - t1
    recall = [float((pred[b.y == k] == k).mean()) for k in range(len(classes))]
    bacc = float(np.mean(recall))
    print(f"\n[{balance}] train {a.counts()}  test {b.counts()}")
    print(f"[{balance}] balanced accuracy {bacc:.3f}  (chance 0.250)   accuracy {(pred == b.y).mean():.3f}")
    for c, r in zip(classes, recall):
        print(f"[{balance}]   recall {c:<17} {r:.3f}")
    cm = np.zeros((4, 4), dtype=int)
    np.add.at(cm, (b.y, pred), 1)
    print(f"[{balance}] confusion (rows true, cols predicted):\n{cm}")
    print(f"[{balance}] fabricate {t_make:.1f} s, classifier {t_fit:.1f} s")
    return bacc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=800)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--balance", nargs="+", default=["equal", "imbalanced"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        res = {b: run(b, args, Path(d)) for b in args.balance}
    print("\nsummary: " + ", ".join(f"{b} balanced accuracy {v:.3f}" for b, v in res.items()))


if __name__ == "__main__":
    main()
