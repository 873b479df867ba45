"""Fuzz the command line: every out-of-range number, wrong type, missing or wrong-kind path is refused with exit
status 2 and a message, before any work starts -- never a traceback.

Each case takes a command line that would run and breaks exactly one flag. The cases are all combinations of
the tables below, shuffled with a fixed seed and capped (bounded and reproducible); MEDFAB_FUZZ_N raises the cap.
"""

from __future__ import annotations

import os
import random
import time

import pytest
from _hostile_corpus import good_images, make_run
from typer.testing import CliRunner

from medfab.cli.main import app

INT_BAD = ["0", "-5", "100000000000", "abc", "1.5", ""]
FLOAT_BAD = ["0", "-1", "nan", "inf", "abc", "1e30"]
FRACTION_BAD = ["0", "-0.1", "1", "1.5", "nan", "x"]


def _cases(p: dict) -> list[tuple[str, list[str], str, str]]:
    """(name, base command, flag, bad value): ``flag`` is replaced (or added) in ``base`` with ``value``."""
    d, run, file, busy = p["data"], p["run"], p["file"], p["busy"]
    missing = str(p["tmp"] / "does-not-exist")
    base = {
        "train": ["train", "--data", d, "--model", "vae", "--out", p["new"], "--size", "16", "--kimg", "0.01",
                  "--dry-run", "--no-progress"],
        "sample": ["sample", "--run", run, "--n-per-class", "1", "--out", p["new"], "--no-progress"],
        "inspect": ["data", "inspect", d],
        "split": ["data", "split", d, "--out", p["new"]],
        "phantom": ["phantom", "--task", "tumor", "--n", "4", "--size", "32", "--out", p["new"]],
        "evaluate": ["evaluate", "--real-train", d, "--real-test", d, "--synthetic", d, "--out", p["new"],
                     "--size", "16", "--quick", "--families", "fidelity"],
        "anomaly fit": ["anomaly", "fit", "--data", d, "--normal-class", "A", "--out", p["new"], "--size", "16",
                        "--kimg", "0.01", "--no-progress"],
        "anomaly eval": ["anomaly", "eval", "--run", run, "--test", d, "--out", p["new"], "--no-progress"],
        "report": ["report", missing],
    }
    bad = {
        "train": {"--size": INT_BAD, "--kimg": FLOAT_BAD, "--minutes": FLOAT_BAD, "--cpu-minutes": FLOAT_BAD,
                  "--batch-size": INT_BAD,
                  "--seed": ["-1", "abc", "1e3"], "--data": [missing, file], "--config": [missing, d],
                  "--out": [file, busy], "--model": ["nope", ""], "--set": ["width", "nope=1", "width=-3"]},
        "sample": {"--n-per-class": INT_BAD, "--balance-to": ["0", "-3", "abc"], "--seed": ["-1", "x"],
                   "--bit-depth": ["12", "0", "abc"], "--run": [missing, file, d], "--out": [file, busy],
                   "--checkpoint": [missing]},
        "inspect": {"data inspect PATH": [missing, file], "--near-rmse": ["-1", "abc", "nan"],
                    "--volume-mode": ["4d"]},
        "split": {"data split PATH": [missing], "--test": FRACTION_BAD[1:], "--val": ["-0.1", "2", "x"],
                  "--out": [file, busy], "--labels-csv": [missing]},
        "phantom": {"--n": INT_BAD, "--size": INT_BAD, "--dims": ["1", "4", "x"], "--task": ["nope"],
                    "--out": [file, busy], "--workers": ["0", "-1"]},
        "evaluate": {"--size": INT_BAD, "--real-train": [missing, file], "--synthetic": [missing],
                     "--epochs": ["0", "-1"], "--seeds": ["0"], "--max-per-class": ["0", "-2"], "--out": [file]},
        "anomaly fit": {"--size": INT_BAD, "--val-fraction": FRACTION_BAD, "--kimg": FLOAT_BAD,
                        "--cpu-minutes": FLOAT_BAD,
                        "--data": [missing, file], "--training": ["nope"], "--out": [file, busy]},
        "anomaly eval": {"--run": [missing, file], "--test": [missing, file]},
        "report": {"report EVAL": [missing, file]},
    }
    out = []
    for name, flags in bad.items():
        for flag, values in flags.items():
            out += [(name, [str(a) for a in base[name]], flag, str(v)) for v in values]
    return out


def _apply(base: list[str], flag: str, value: str) -> list[str]:
    if " " in flag:  # a positional argument: the word after the command words
        words = flag.split()[:-1]
        return words + [value] + base[len(words) + 1:]
    if flag in base:
        i = base.index(flag)
        return base[: i + 1] + [value] + base[i + 2:]
    return base + [flag, value]


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    data = good_images(tmp / "data")
    (tmp / "file.txt").write_text("a file")
    busy = tmp / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("someone's files")
    return {"tmp": tmp, "data": data, "file": tmp / "file.txt", "busy": busy, "run": make_run(tmp / "run")}


def test_every_bad_flag_is_exit_2_without_traceback(paths, tmp_path):
    cases = _cases({**paths, "new": tmp_path / "new"})
    random.Random(0).shuffle(cases)
    cases = cases[: int(os.environ.get("MEDFAB_FUZZ_N", "120"))]
    runner = CliRunner()
    failures = []
    for name, base, flag, value in cases:
        new = tmp_path / f"new{len(failures)}"
        args = [a if a != str(tmp_path / "new") else str(new) for a in _apply(base, flag, value)]
        t0 = time.perf_counter()
        res = runner.invoke(app, args)
        took = time.perf_counter() - t0
        escaped = res.exception is not None and not isinstance(res.exception, SystemExit)
        if res.exit_code != 2 or "Traceback" in res.output or escaped or took > 20:
            failures.append(f"medfab {' '.join(args)} -> exit {res.exit_code} in {took:.1f} s: "
                            f"{(res.output or repr(res.exception))[-300:]}")
        assert not new.exists() or not any(new.iterdir()), f"wrote into {new}: {args}"
    assert not failures, "\n\n".join(failures)
