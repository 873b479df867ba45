"""One process per output folder: a second `train` or `sample` into the same folder is refused, naming the first;
a killed holder leaves no stale lock and no temporary files behind the next run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _hostile_corpus import good_images, make_run
from typer.testing import CliRunner

from medfab.cli.main import app
from medfab.errors import MedfabError
from medfab.runlock import acquire, lock_run, remove_stale_temporaries

SRC = Path(__file__).resolve().parents[1] / "src"


def _start(*args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "medfab.cli.main", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_owner(lock: Path, proc: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return json.loads(lock.read_text())["pid"]
        except (OSError, ValueError, KeyError):
            pass
        if proc.poll() is not None:
            pytest.fail(f"the first process ended early: {proc.stdout.read()}")
        time.sleep(0.05)
    pytest.fail("the first process never took the lock")


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_lock_names_its_owner_and_dies_with_it(tmp_path):
    held = lock_run(tmp_path / "run", command="medfab train --out run")
    with pytest.raises(MedfabError) as e:
        acquire(tmp_path / "run" / ".lock", what="run folder run")
    assert f"process {os.getpid()}" in e.value.message and "medfab train --out run" in e.value.message
    assert "wait for that command" in e.value.hint
    held.release()
    again = lock_run(tmp_path / "run")  # released: free again, and the lock file is gone with its holder
    again.release()
    assert not (tmp_path / "run").exists()  # the folder made for the lock held nothing else


def test_stale_temporaries_are_removed(tmp_path):
    ck = tmp_path / "checkpoints"
    ck.mkdir(parents=True)
    stale = [ck / ".ckpt-000001.000.safetensors.tmp-999999", tmp_path / ".config.json.tmp-999999"]
    for f in stale:
        f.write_bytes(b"x" * 100)
    (ck / "ckpt-000001.000.safetensors").write_bytes(b"kept")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert [p.name for p in ck.iterdir()] == ["ckpt-000001.000.safetensors"]


def test_second_train_is_refused_and_a_killed_one_leaves_nothing(tmp_path):
    data = good_images(tmp_path / "data")
    run = tmp_path / "run"
    first = _start("train", "--data", data, "--model", "vae", "--out", run, "--size", "16", "--minutes", "5",
                   "--set", "width=8", "--no-progress")
    try:
        pid = _wait_for_owner(run / ".lock", first)
        res = CliRunner().invoke(app, ["train", "--data", str(data), "--model", "vae", "--out", str(run),
                                       "--size", "16", "--kimg", "0.01", "--set", "width=8", "--no-progress"])
        assert res.exit_code == 2, res.output
        said = " ".join(res.output.split())  # messages wrap at the console width
        assert "in use by" in said and f"process {pid}" in said, res.output
    finally:
        _kill(first)
    # A kill -9 during a checkpoint write leaves a temporary file; the next run removes it and takes the lock.
    (run / "checkpoints").mkdir(exist_ok=True)
    (run / "checkpoints" / f".ckpt-000000.004.safetensors.tmp-{pid}").write_bytes(b"\0" * 1000)
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--model", "vae", "--out", str(run), "--size",
                                   "16", "--kimg", "0.004", "--batch-size", "4", "--set", "width=8",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert not list(run.rglob("*.tmp-*")) and not (run / ".lock").exists()


def test_second_sample_into_one_folder_is_refused(tmp_path):
    run = make_run(tmp_path / "run")
    out = tmp_path / "synth"
    first = _start("sample", "--run", run, "--n-per-class", "400000", "--out", out, "--no-progress")
    try:
        pid = _wait_for_owner(tmp_path / ".synth.lock", first)
        res = CliRunner().invoke(app, ["sample", "--run", str(run), "--n-per-class", "2", "--out", str(out),
                                       "--no-progress"])
        assert res.exit_code == 2, res.output
        said = " ".join(res.output.split())  # messages wrap at the console width
        assert "in use by" in said and f"process {pid}" in said, res.output
    finally:
        _kill(first)
    res = CliRunner().invoke(app, ["sample", "--run", str(run), "--n-per-class", "2", "--out", str(out),
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert len(list(out.rglob("*.png"))) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "synth"]  # no lock, no half-built set
