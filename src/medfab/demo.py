"""`make demo`: the whole pipeline on the built-in phantom, in minutes on a laptop CPU.

phantom cohort -> inspect -> train the default model -> fabricate -> evaluate -> HTML report.
Each step is the same `medfab` command a user would type; the demo prints them so they can be re-run.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console

console = Console()


def _run(args: list[str]) -> None:
    from medfab.cli.main import app

    console.rule(f"[bold]medfab {' '.join(shlex.quote(a) for a in args)}")
    t0 = time.perf_counter()
    try:
        code = app(args, standalone_mode=False)   # returns the exit code of a typer.Exit
    except SystemExit as e:
        code = e.code
    if code not in (0, None):
        console.print(f"[bold red]demo stopped: the step above failed (exit {code})[/]")
        raise SystemExit(code)
    console.print(f"[dim]  took {time.perf_counter() - t0:.0f} s[/]")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m medfab.demo", description=__doc__)
    p.add_argument("--out", default="demo_out", help="folder for every output of the demo (replaced)")
    p.add_argument("--minutes", type=float, default=4.0, help="training budget in minutes")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--n", type=int, default=1000, help="phantom images")
    # The VAE is the model that learns something useful in a few CPU minutes; pix2pix, dcgan and
    # wgan-gp need a longer budget (or a GPU): pass --model pix2pix --minutes 60.
    p.add_argument("--model", default="vae")
    p.add_argument("--set", action="append", default=None,
                   help="model setting key=value (default for the demo's VAE: width=16)")
    p.add_argument("--dims", type=int, choices=(2, 3), default=2,
                   help="3: the 3D pipeline on phantom volumes and their tissue masks with progan3d "
                        "(defaults: --size 32 --n 160)")
    a = p.parse_args(argv)
    if a.dims == 3:
        main_3d(a, argv or [])
        return

    out = Path(a.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    s = str(a.size)
    _run(["phantom", "--task", "alzheimer", "--n", str(a.n), "--size", s, "--dims", "2", "--seed", "0",
          "--balance", "40:30:20:10",
          "--out", str(out / "phantom_all")])
    _run(["data", "split", str(out / "phantom_all"), "--out", str(out / "phantom"), "--test", "0.25",
          "--val", "0", "--seed", "0", "--copy"])
    _run(["data", "inspect", str(out / "phantom")])
    sets = a.set if a.set is not None else (["width=16"] if a.model == "vae" else [])
    _run(["train", "--data", str(out / "phantom"), "--model", a.model, "--out", str(out / "run"),
          "--size", s, "--minutes", str(a.minutes), "--seed", "0"]
         + [x for kv in sets for x in ("--set", kv)])
    _run(["sample", "--run", str(out / "run"), "--match-counts", "--out", str(out / "synthetic"), "--seed", "0"])
    _run(["evaluate", "--real-train", str(out / "phantom" / "train"), "--real-test", str(out / "phantom" / "test"),
          "--synthetic", str(out / "synthetic"), "--out", str(out / "eval"), "--size", s, "--quick"])
    _run(["report", str(out / "eval"), "--out", str(out / "report.html")])
    console.rule("[bold green]demo finished")
    console.print(f"total {time.perf_counter() - t0:.0f} s")
    console.print(f"report:          {out / 'report.html'}  (open it in a browser)")
    console.print(f"synthetic data:  {out / 'synthetic'}  (manifest.csv, model_card.json)")
    console.print(f"training run:    {out / 'run'}  (config.json, checkpoints, samples, TensorBoard logs)")


def _has_3d_evaluation() -> bool:
    """The 3D evaluation (volumes family) and its report are another module; the demo runs them when present."""
    import importlib.util

    return importlib.util.find_spec("medfab.evaluation.volumes") is not None


def _segs_beside(real: Path, seg_dir: Path) -> None:
    """Copy each real volume's mask beside it as <stem>_seg.nii.gz, where the 3D evaluation looks for it.

    Done after training: the training reader takes every NIfTI file in a class folder as an image.
    """
    for img in sorted(real.rglob("*.nii.gz")):
        stem = img.name[: -len(".nii.gz")]
        src = seg_dir / f"{stem}_seg.nii.gz"
        if not stem.endswith("_seg") and src.is_file():
            shutil.copyfile(src, img.with_name(src.name))


def main_3d(a: argparse.Namespace, argv: list[str]) -> None:
    """phantom volumes + tissue masks -> split -> train progan3d on image + tissues -> sample -> evaluate -> report."""
    from medfab.phantom.cohort import SEG_DIR

    size = str(a.size if "--size" in argv else 32)
    n = str(a.n if "--n" in argv else 160)
    minutes = str(a.minutes)
    out = Path(a.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    _run(["phantom", "--task", "alzheimer", "--n", n, "--size", size, "--dims", "3", "--seed", "0",
          "--balance", "equal", "--out", str(out / "phantom_all")])
    _run(["data", "split", str(out / "phantom_all"), "--out", str(out / "phantom"), "--test", "0.25",
          "--val", "0", "--seed", "0", "--copy"])
    # Narrow networks and short stages: 4^3 -> 32^3 within the budget on two CPU cores.
    sets = a.set if a.set is not None else ["fmap_base=256", "fade_kimg=0.1", "stable_kimg=0.1", "batch_size=8",
                                            "grid_every=0.2"]
    # The phantom's tissue masks (0 bg, 1 csf, 2 gm, 3 wm) train as extra channels: the samples get <stem>_seg.
    seg = out / "phantom_all" / SEG_DIR
    _run(["train", "--data", str(out / "phantom"), "--model", "progan3d", "--dims", "3", "--out", str(out / "run"),
          "--size", size, "--minutes", minutes, "--seed", "0", "--with-seg", str(seg), "--seg-map", "identity"]
         + [x for kv in sets for x in ("--set", kv)])
    _run(["sample", "--run", str(out / "run"), "--n-per-class", "10", "--out", str(out / "synthetic"),
          "--seed", "0"])
    _segs_beside(out / "phantom", seg)
    if _has_3d_evaluation():
        _run(["evaluate", "--real-train", str(out / "phantom" / "train"), "--real-test", str(out / "phantom" / "test"),
              "--synthetic", str(out / "synthetic"), "--out", str(out / "eval"), "--size", size, "--dims", "3",
              "--quick"])
        _run(["report", str(out / "eval"), "--out", str(out / "report.html")])
    else:
        console.print("[yellow]skipped evaluate and report: this medfab has no 3D evaluation "
                      "(medfab.evaluation.volumes)[/]")
    console.rule("[bold green]3D demo finished")
    console.print(f"total {time.perf_counter() - t0:.0f} s")
    console.print(f"synthetic volumes: {out / 'synthetic'}  (NIfTI, manifest.csv, model_card.json)")
    console.print(f"training run:      {out / 'run'}  (config.json, checkpoints, grids/: middle slices)")


if __name__ == "__main__":
    main(sys.argv[1:])
