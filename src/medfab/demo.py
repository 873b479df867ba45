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
    a = p.parse_args(argv)

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


if __name__ == "__main__":
    main(sys.argv[1:])
