"""Utility table (train on real / synthetic / mixed, test on real) on folder-per-class data sets.

    python bench/bench_utility.py --train DATA/train --test DATA/test --synthetic FAKE --size 64

Sanity check: ``--synthetic`` = the real train folder gives ratio_to_real = 1 (synthetic-only is then the real
set itself). ``--max-per-class``, ``--epochs`` and ``--shares`` shrink the study for a CPU-only machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def cap_per_class(ts, n: int | None, seed: int):
    """At most ``n`` images of each class, drawn without replacement (seeded); the whole set when n is None."""
    if n is None:
        return ts
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(ts), dtype=bool)
    for c in range(len(ts.classes)):
        idx = np.flatnonzero(ts.y == c)
        keep[rng.permutation(idx)[:n]] = True
    return ts.select(keep)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", required=True, type=Path)
    p.add_argument("--test", required=True, type=Path)
    p.add_argument("--synthetic", required=True, type=Path)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--shares", type=float, nargs="*", default=[0, 0.25, 0.5, 0.75, 1.0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--max-per-class", type=int, default=None, help="cap train and synthetic sets per class")
    p.add_argument("--no-mixed", action="store_true", help="skip the real+synthetic and top-up regimes")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=None, help="write the full result here")
    a = p.parse_args()

    import torch

    from medfab.data.tensors import load_tensors
    from medfab.evaluation.utility import utility_study

    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    train = cap_per_class(load_tensors(a.train, size=a.size, progress=False), a.max_per_class, seed=0)
    test = load_tensors(a.test, size=a.size, progress=False)
    same = a.synthetic.resolve() == a.train.resolve()
    if same:
        synth = train
    else:
        synth = cap_per_class(load_tensors(a.synthetic, size=a.size, progress=False), a.max_per_class, seed=1)
    print(f"loaded in {time.perf_counter() - t0:.0f} s: train {train.counts()}, test {test.counts()}, "
          f"synthetic {synth.counts()}{' (= train)' if same else ''}")
    t0 = time.perf_counter()
    r = utility_study(train, test, synth, seeds=a.seeds, shares=a.shares, epochs=a.epochs, width=a.width,
                      mixed=not a.no_mixed, device=a.device)
    print(f"study in {time.perf_counter() - t0:.0f} s ({len(a.seeds)} seeds, {a.epochs} epochs)\n")
    cols = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1")
    print(f"{'training data':<26}{'n':>7}" + "".join(f"{c:>22}" for c in cols))
    for row in r["table"]:
        print(f"{row['training_data']:<26}{row['n_train']:>7}"
              + "".join(f"{row[c]:>14.3f} ± {row[c + '_std']:.3f}" for c in cols))
    print("\nratio_to_real:", json.dumps(r["ratio_to_real"]))
    for name, d in r["recall_delta"].items():
        print(f"recall delta {name}:", {c: round(v, 3) for c, v in d.items()})
    for note in r["notes"]:
        print("note:", note)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
