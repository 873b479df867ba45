"""The 3D evaluation (volumes family) on IXI T1 volumes, in three scenarios whose verdicts are known:

* ``real``      -- the "synthetic" set is held-out real volumes: every goal should be met;
* ``collapsed`` -- one training volume plus a little noise, repeated: MS-SSIM and voxel variance must fail;
* ``copies``    -- training volumes themselves: the nearest-training-volume check must flag them all.

    nice -n 10 .venv/bin/python bench/bench_eval3d.py --data ../shared/data/ixi_t1 --size 64 [--n-synth 25]

Subjects are split (seeded) into train (100), test (25) and a pool for the "synthetic" sets. The real tissue
volumes come from seg_volumes.csv (--real-seg-volumes); each synthetic volume has a ``<stem>_seg`` beside it
(the IXI DLMUSE parcellation, mapped to tissues). Prints the goals and the time of each run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src.resolve())


def build(data: Path, root: Path, n_train: int, n_test: int, n_synth: int, seed: int) -> dict[str, Path]:
    import nibabel as nib

    t1 = sorted((data / "t1").glob("*.nii.gz"))
    seg = {p.name.replace("_DLMUSE", ""): p for p in (data / "seg").glob("*.nii.gz")}
    t1 = [p for p in t1 if p.name in seg]
    rng = np.random.default_rng(seed)
    order = [t1[i] for i in rng.permutation(len(t1))]
    train, test, pool = order[:n_train], order[n_train : n_train + n_test], order[n_train + n_test :]
    for name, files in (("train", train), ("test", test)):
        for p in files:
            _link(p, root / name / p.name)
    (root / "seg").symlink_to((data / "seg").resolve())  # IXI layout: train/<stem> <-> seg/<stem>_DLMUSE
    sets = {}
    real = root / "synth_real"
    for p in pool[:n_synth]:
        _link(p, real / p.name)
        _link(seg[p.name], real / p.name.replace(".nii.gz", "_seg.nii.gz"))
    sets["real"] = real
    copies = root / "synth_copies"
    for p in train[:n_synth]:
        _link(p, copies / p.name)
        _link(seg[p.name], copies / p.name.replace(".nii.gz", "_seg.nii.gz"))
    sets["copies"] = copies
    collapsed = root / "synth_collapsed"
    collapsed.mkdir()
    img = nib.load(str(train[0]))
    a = img.get_fdata(dtype=np.float32)
    for i in range(n_synth):
        noisy = a + rng.normal(0, 0.02 * float(np.percentile(a, 99)), a.shape).astype(np.float32)
        nib.save(nib.Nifti1Image(noisy, img.affine), collapsed / f"c{i:03d}.nii.gz")
        _link(seg[train[0].name], collapsed / f"c{i:03d}_seg.nii.gz")
    sets["collapsed"] = collapsed
    return sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/ixi_t1"))
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--n-train", type=int, default=100)
    ap.add_argument("--n-test", type=int, default=25)
    ap.add_argument("--n-synth", type=int, default=25)
    ap.add_argument("--scenarios", nargs="+", default=["real", "collapsed", "copies"])
    ap.add_argument("--keep", type=Path, default=None, help="write the evaluation folders here")
    args = ap.parse_args()

    from medfab.evaluation.run import EvalConfig, evaluate
    from medfab.report.html import write_report
    from medfab.report.sections import volumes as S

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sets = build(args.data, root, args.n_train, args.n_test, args.n_synth, seed=0)
        for name in args.scenarios:
            out = (args.keep or root) / f"eval_{name}"
            cfg = EvalConfig(
                real_train=str(root / "train"), real_test=str(root / "test"), synthetic=str(sets[name]),
                out=str(out), size=args.size, real_seg_volumes=str(args.data / "seg_volumes.csv"),
            )  # fmt: skip
            t0 = time.perf_counter()
            res = evaluate(cfg, progress=False)
            dt = time.perf_counter() - t0
            fam = res.families["volumes"]
            write_report(out, out / "report.html")
            print(f"\n== {name}: {fam.status} in {dt:.0f} s (family {fam.seconds:.0f} s) {fam.reason or ''}")
            if fam.status == "ok":
                for goal, synth, real, met in S.goals(fam.data):
                    print(f"  {'met    ' if met else 'NOT MET' if met is not None else '   -   '} {goal}: "
                          f"synthetic {synth} | real {real}")  # fmt: skip
                print("  verdicts:", json.dumps([f"{v.level}: {v.text}" for v in S.verdicts(fam.data)], indent=1))


if __name__ == "__main__":
    main()
