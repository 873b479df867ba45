"""Reliability figures: tracebacks, silent wrong results, leftovers and lost work after kills.

    nice -n 10 .venv/bin/python bench/bench_reliability.py [--kills 20] [--seed 0]

Prints:
1. tracebacks over the hostile corpus (tests/_hostile_corpus.py: every data trap through `data inspect` and
   `train --dry-run`, every hostile run folder through `sample`) and over the CLI fuzz (tests/test_cli_fuzz.py,
   every case) -- goal 0;
2. silent wrong results: a command that exits 0 where it must refuse, or reads other counts per class than the
   folder holds (a file counted twice or under the wrong class) -- goal 0;
3. temporary files left after ``--kills`` random kill -9 + resume cycles of a tiny training (checkpoint every
   0.5 s), counted once the final run has finished -- goal 0; and how many a kill left behind before the next
   run cleaned them (kills that hit a checkpoint write);
4. progress lost per kill: wall time between the last complete checkpoint and the kill, against the
   checkpoint interval -- goal: at most one interval.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from _hostile_corpus import CASES, RUN_CASES, good_images, make_run
from typer.testing import CliRunner

from medfab.cli.main import app

CKPT_EVERY_S = 0.5


def _run(args) -> tuple[int, str, bool]:
    res = CliRunner().invoke(app, [str(a) for a in args])
    escaped = res.exception is not None and not isinstance(res.exception, SystemExit)
    return res.exit_code, res.output, escaped or "Traceback" in res.output or res.exit_code not in (0, 2)


def corpus(tmp: Path) -> tuple[int, int, int, list[str]]:
    """(commands run, tracebacks, silent wrong results, notes)."""
    n = tb = wrong = 0
    notes = []
    for i, case in enumerate(CASES):
        root = good_images(tmp / f"c{i}" / "data", layout=case.layout)
        case.build(root)
        for what, args, expect in [
            ("inspect", ["data", "inspect", root], case.inspect),
            ("train", ["train", "--data", root, "--model", "vae", "--out", tmp / f"c{i}" / "run", "--size", "16",
                       "--kimg", "0.01", "--dry-run", "--no-progress"], case.train),
        ]:
            code, out, traceback = _run(args)
            n += 1
            tb += traceback
            flat = " ".join(out.split())
            counts = ", ".join(f"{c} {k}" for c, k in (case.counts or {}).items())
            silent = (expect == "error" and code == 0) or (
                what == "train" and code == 0 and case.counts and f"(all): {counts}" not in flat)
            wrong += bool(silent)
            if traceback or silent:
                notes.append(f"{case.name} / {what}: exit {code}: {out[-200:]}")
    base = make_run(tmp / "run")
    for name, damage in RUN_CASES.items():
        run = tmp / f"run-{len(notes)}-{name.replace(' ', '_')}"
        shutil.copytree(base, run)
        damage(run)
        code, out, traceback = _run(["sample", "--run", run, "--n-per-class", "1", "--out", run / "s",
                                     "--no-progress"])
        n += 1
        tb += traceback
        silent = code == 0 or (run / "PWNED").exists()
        wrong += silent
        if traceback or silent:
            notes.append(f"run {name}: exit {code}: {out[-200:]}")
    return n, tb, wrong, notes


def fuzz(tmp: Path) -> tuple[int, int, int, list[str]]:
    import test_cli_fuzz as fz

    data = good_images(tmp / "data")
    (tmp / "file.txt").write_text("a file")
    (tmp / "busy").mkdir()
    (tmp / "busy" / "mine.txt").write_text("x")
    p = {"tmp": tmp, "data": data, "file": tmp / "file.txt", "busy": tmp / "busy", "run": make_run(tmp / "run"),
         "new": tmp / "new"}
    n = tb = wrong = 0
    notes = []
    for k, (name, base, flag, value) in enumerate(fz._cases(p)):
        args = [a if a != str(tmp / "new") else str(tmp / f"new{k}") for a in fz._apply(base, flag, value)]
        code, out, traceback = _run(args)
        n += 1
        tb += traceback
        wrong += code == 0
        if traceback or code != 2:
            notes.append(f"medfab {' '.join(args[:4])} ... {flag} {value!r}: exit {code}: {out[-160:]}")
    return n, tb, wrong, notes


def kills(tmp: Path, n_kills: int, seed: int) -> dict:
    """Random kill -9 + resume cycles; returns what was left behind and what was lost."""
    rng = random.Random(seed)
    data = good_images(tmp / "data")
    run = tmp / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1",
           "MEDFAB_CACHE": str(tmp / "cache")}
    cmd = [sys.executable, "-m", "medfab.cli.main", "train", "--data", str(data), "--model", "vae", "--out",
           str(run), "--size", "16", "--kimg", "1000", "--batch-size", "4", "--set", "width=8",
           "--set", f"ckpt_every_minutes={CKPT_EVERY_S / 60}", "--no-progress"]
    left_by_kill, lost, resumed_with_leftovers = [], [], 0
    for _ in range(n_kills):
        before = sorted(run.rglob("*.tmp-*")) if run.exists() else []
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # wait until this process trains (it has written a checkpoint of its own), then kill it at random
        t_start = time.time()
        while time.time() - t_start < 120 and proc.poll() is None:
            ck = [p for p in (run / "checkpoints").glob("ckpt-*.json")] if run.exists() else []
            if ck and max(p.stat().st_mtime for p in ck) > t_start:
                break
            time.sleep(0.05)
        if proc.poll() is not None:
            raise SystemExit(f"training ended by itself: {proc.stderr.read()[-2000:]}")
        time.sleep(rng.uniform(0, 3 * CKPT_EVERY_S))
        t_kill = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        sides = list((run / "checkpoints").glob("ckpt-*.json"))
        last = max(p.stat().st_mtime for p in sides)
        lost.append(t_kill - last)
        left_by_kill.append(len(list(run.rglob("*.tmp-*"))))
        resumed_with_leftovers += bool(before)
    # the final run: a short budget beyond the last checkpoint, to the end
    side = max((run / "checkpoints").glob("ckpt-*.json"), key=lambda p: p.stat().st_mtime)
    kimg = json.loads(side.read_text())["kimg"] + 0.02
    final = subprocess.run(cmd[:cmd.index("--kimg") + 1] + [str(kimg)] + cmd[cmd.index("--kimg") + 2:],
                           env=env, capture_output=True, text=True, check=False)
    return {"kills": n_kills, "final_exit": final.returncode, "final_err": final.stderr[-500:],
            "tmp_left_at_end": len(list(run.rglob("*.tmp-*"))) + len(list(run.rglob(".lock"))),
            "tmp_left_by_kills": sum(left_by_kill), "kills_leaving_tmp": sum(1 for k in left_by_kill if k),
            "lost_s": lost}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ["MEDFAB_CACHE"] = str(tmp / "cache")
        t0 = time.perf_counter()
        n1, tb1, w1, notes1 = corpus(tmp / "corpus")
        n2, tb2, w2, notes2 = fuzz(tmp / "fuzz")
        t1 = time.perf_counter()
        k = kills(tmp / "kills", args.kills, args.seed)
        t2 = time.perf_counter()
    print(f"1. tracebacks: {tb1} in {n1} corpus commands, {tb2} in {n2} fuzzed command lines   (goal 0)")
    print(f"2. silent wrong results: {w1} in the corpus, {w2} in the fuzz   (goal 0)")
    for note in notes1 + notes2:
        print("   -", note.replace("\n", " "))
    print(f"3. temporary files left after {k['kills']} kill -9 + resume cycles: {k['tmp_left_at_end']}   (goal 0); "
          f"{k['tmp_left_by_kills']} left by {k['kills_leaving_tmp']} kill(s) mid-write, each removed by the "
          f"next run; final run exit {k['final_exit']}")
    if k["final_exit"]:
        print("   final run:", k["final_err"])
    lost = sorted(k["lost_s"])
    print(f"4. progress lost per kill (s since the last complete checkpoint; interval {CKPT_EVERY_S} s): "
          f"median {lost[len(lost) // 2]:.2f}, max {lost[-1]:.2f}; kills losing more than one interval: "
          f"{sum(x > CKPT_EVERY_S for x in lost)} of {len(lost)}")
    print(f"(corpus + fuzz {t1 - t0:.0f} s, kill cycles {t2 - t1:.0f} s)")


if __name__ == "__main__":
    main()
