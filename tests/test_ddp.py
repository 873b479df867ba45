"""Two CPU processes under torchrun (gloo): one shared model, rank 0 writes, global batch is sharded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from medfab.training import checkpoint as ckpt

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_process_ddp_on_cpu(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER),
           str(tmp_path)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    w0 = torch.load(tmp_path / "rank0.pt")
    w1 = torch.load(tmp_path / "rank1.pt")
    for k in w0:                                     # gradients were averaged: the replicas never diverged
        assert torch.equal(w0[k], w1[k]), k
    a0, a1 = torch.load(tmp_path / "accum" / "rank0.pt"), torch.load(tmp_path / "accum" / "rank1.pt")
    for k in a0:                                     # ... also with gradient accumulation (no_sync)
        assert torch.equal(a0[k], a1[k]), k
    assert ckpt.read_sidecar(ckpt.latest_checkpoint(tmp_path / "accum"))["config"]["training"]["batch_gpu"] == 2
    side = ckpt.read_sidecar(ckpt.latest_checkpoint(tmp_path))
    assert side["step"] == 4 and side["nimg"] == 32  # 0.032 kimg with a global batch of 8 = 2 x 4
    assert side["config"]["training"]["world_size"] == 2
    # Rank 0 alone wrote: one metrics row per step, no duplicated rows from rank 1.
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 4
    assert not list(tmp_path.glob("checkpoints/.*tmp*"))
