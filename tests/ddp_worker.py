"""Run by tests/test_ddp.py under torchrun: train a tiny model on 2 CPU processes (gloo), save each rank's weights."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from tiny_model import tiny_data, tiny_model

from medfab.training.loop import fit

if __name__ == "__main__":
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    data = tiny_data(counts=(10, 3))
    model = tiny_model(data)
    fit(model, data, out=out, kimg=0.032, batch_size=8, progress=False, config={}, log_every=1,
        ckpt_every_minutes=1e-9)
    rank = dist.get_rank()
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, out / f"rank{rank}.pt")
    # Gradient accumulation under DDP: 2 micro-batches of 2 per process, all-reduced on the last one only.
    accum = tiny_model(data)
    fit(accum, data, out=out / "accum", kimg=0.032, batch_size=8, batch_gpu=2, progress=False, config={})
    torch.save({k: v.clone() for k, v in accum.state_dict().items()}, out / "accum" / f"rank{rank}.pt")
    dist.destroy_process_group()
