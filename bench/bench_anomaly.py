"""VAE reconstruction-error anomaly detection vs a supervised CNN, on the phantom tumour task and real data.

    nice -n 10 .venv/bin/python bench/bench_anomaly.py --size 64 --minutes 4 \
        --real /work/shared/data/alzheimer4 --real-normal NonDemented

Phantom: tumour-negative ("no") is normal, train cohort seed S, test cohort seed S + 1000. Real data: the
given normal class vs every other class, trained on its train split, tested on its test split. Beside the
four detectors: the shared SmallCNN trained (supervised, binary, class-weighted) on the same real training
split, which sees abnormal labels the detectors never get: an upper reference, not a competitor.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medfab.anomaly import AnomalyConfig, binary_metrics, evaluate_anomaly, fit_anomaly
from medfab.data.tensors import load_tensors
from medfab.evaluation.classifier import predict_proba, train_classifier


def _cnn_row(train_root: Path, test_root: Path, normal: str, args) -> dict:
    split_tr = "train" if (train_root / "train").is_dir() else None
    split_te = "test" if (test_root / "test").is_dir() else None
    a = load_tensors(train_root, size=args.size, split=split_tr, progress=False)
    b = load_tensors(test_root, size=args.size, split=split_te, progress=False)
    ya = (a.y != a.classes.index(normal)).astype(np.int64)
    yb = b.y != b.classes.index(normal)
    model = train_classifier(np.asarray(a.x), ya, 2, epochs=args.cnn_epochs, width=args.cnn_width, seed=args.seed)
    p = predict_proba(model, np.asarray(b.x))[:, 1]
    return {"method": "supervised CNN", "training": "real (labels)", **binary_metrics(yb, p >= 0.5, p)}


def _print(title: str, rows: list[dict], seconds: dict) -> None:
    print(f"\n## {title}")
    print(f"{'method':<24}{'training':<15}{'acc':>7}{'prec':>7}{'rec':>7}{'F1':>7}{'AUC':>7}   tp/fp/tn/fn")
    f = lambda v: f"{v:7.3f}" if v is not None else "      —"
    for r in rows:
        print(f"{r['method']:<24}{r['training']:<15}" + "".join(f(r[k]) for k in
              ("accuracy", "precision", "recall", "f1", "auc")) + f"   {r['tp']}/{r['fp']}/{r['tn']}/{r['fn']}")
    print("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))


def run_task(title: str, train_root: Path, test_root: Path, normal: str, work: Path, args) -> None:
    cfg = AnomalyConfig(normal_class=normal, size=args.size, seed=args.seed,
                        model={"width": args.width, "latent_dim": args.latent_dim})
    t0 = time.perf_counter()
    run = fit_anomaly(cfg, train_root, work / "run", kimg=args.kimg, minutes=args.minutes, progress=False)
    t1 = time.perf_counter()
    res = evaluate_anomaly(run, test_root, work / "eval" / "anomaly", progress=False)
    t2 = time.perf_counter()
    rows = list(res["rows"])
    if not args.no_cnn:
        rows.append(_cnn_row(train_root, test_root, normal, args))
    t3 = time.perf_counter()
    _print(title, rows, {"VAE fit": t1 - t0, "detect": t2 - t1, "CNN": t3 - t2})
    print(f"figures in {work / 'eval' / 'anomaly'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--minutes", type=float, default=4.0, help="VAE training time per task")
    ap.add_argument("--kimg", type=float, default=None, help="or a budget in thousands of images")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--latent-dim", type=int, default=64)
    ap.add_argument("--phantom-n", type=int, default=800, help="phantom training cohort (test: half)")
    ap.add_argument("--contrast", default=None, help="phantom contrast t1|t2|mixed (default: task default)")
    ap.add_argument("--real", type=Path, default=None, help="labelled set with train/ and test/ splits")
    ap.add_argument("--real-normal", default="NonDemented")
    ap.add_argument("--cnn-epochs", type=int, default=8)
    ap.add_argument("--cnn-width", type=int, default=16)
    ap.add_argument("--no-cnn", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="keep runs and figures here (default: temp)")
    args = ap.parse_args()
    torch.set_num_threads(2)

    from medfab.phantom import make_cohort

    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        tr = make_cohort("tumor", args.phantom_n, args.size, 2, args.seed, work / "phantom_train",
                         balance="equal", contrast=args.contrast)
        te = make_cohort("tumor", args.phantom_n // 2, args.size, 2, args.seed + 1000, work / "phantom_test",
                         balance="equal", contrast=args.contrast)
        run_task(f"phantom tumour (normal = no), {args.size}px", tr, te, "no", work / "phantom", args)
        if args.real is not None:
            run_task(f"{args.real.name} (normal = {args.real_normal}, test split), {args.size}px",
                     args.real, args.real, args.real_normal, work / "real", args)


if __name__ == "__main__":
    main()
