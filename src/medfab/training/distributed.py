"""One code path for CPU, one GPU and many GPUs: a single process is DDP with world size 1.

Under ``torchrun`` the environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR...) is set and we join the
process group (gloo on CPU, nccl on GPU). Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    device: torch.device
    flag_group: object = None      # a gloo group for host-side flags when the default group is nccl

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun; otherwise a world of one on ``device``.

    ``device`` is ``auto|cpu|cuda|cuda:K`` (:func:`medfab.device.resolve_device`). Under torchrun each process
    takes its local rank's GPU (``auto`` and ``cuda``), or the CPU (``cpu``).
    """
    from medfab.device import resolve_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = dev.type == "cuda"
        if cuda:
            torch.cuda.set_device(local)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        # Stop/time/checkpoint flags are agreed every step: over gloo on the CPU they never wait for the GPU.
        group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
        dev = torch.device("cuda", local) if cuda else torch.device("cpu")
        return DistInfo(dist.get_rank(), dist.get_world_size(), dev, group)
    return DistInfo(0, 1, dev)


def barrier(info: DistInfo) -> None:
    if info.world_size > 1:
        dist.barrier()


def broadcast_flags(flags: list[bool], info: DistInfo) -> list[bool]:
    """Each flag True on every rank if it is True on any rank (e.g. a SIGTERM that reached one process)."""
    if info.world_size == 1:
        return [bool(f) for f in flags]
    t = torch.tensor([1.0 if f else 0.0 for f in flags])          # host tensor: no device sync
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=info.flag_group)
    return [bool(v > 0) for v in t.tolist()]


def wrap_ddp(model: torch.nn.Module, info: DistInfo) -> None:
    """Replace each sub-network named in ``model.ddp_modules`` by its DDP wrapper (in place)."""
    if info.world_size == 1:
        return
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [info.device.index] if info.device.type == "cuda" else None
    # A model may hold parameters that a step does not use (e.g. a learned likelihood scale that only
    # one loss option needs); plain DDP then fails at the next step. Detecting them costs one graph
    # traversal per forward; a model that knows it has none can set ``ddp_find_unused_parameters = False``.
    find_unused = bool(getattr(model, "ddp_find_unused_parameters", True))
    for name in type(model).ddp_modules:
        net = getattr(model, name)
        # Buffers (BatchNorm statistics, spectral-norm vectors) keep DDP's default: rank 0's copy is sent
        # to every rank at each forward, so all replicas compute with identical networks.
        setattr(model, name, DDP(net, device_ids=ids, find_unused_parameters=find_unused))


def unwrap_ddp(model: torch.nn.Module) -> None:
    """Undo :func:`wrap_ddp` so that state_dict keys and sampling never see the ``module.`` wrapper."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    for name in type(model).ddp_modules:
        net = getattr(model, name, None)
        if isinstance(net, DDP):
            setattr(model, name, net.module)


@contextlib.contextmanager
def unwrapped(model: torch.nn.Module):
    """Temporarily see the plain sub-networks (for checkpoints and rank-0-only sample grids)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    saved = {n: getattr(model, n) for n in type(model).ddp_modules
             if isinstance(getattr(model, n, None), DDP)}
    for n, net in saved.items():
        setattr(model, n, net.module)
    try:
        yield model
    finally:
        for n, net in saved.items():
            setattr(model, n, net)
