"""Which images form the batch of step ``t`` (a pure function of (seed, t)), and where the images live.

Each step's indices are drawn with replacement from a counter-based hash (splitmix64, Steele et al. 2014) of
``(seed, t, i)``, computed with int64 tensor ops on the data's device: no sampler state to checkpoint (a resumed
run sees exactly the batches an uninterrupted run would), no host work per step, the same indices on the CPU and
on any GPU, and every DDP process agrees on the global batch and takes its own slice of it.

:class:`DeviceData` holds the training tensor where the step runs: on the GPU when it fits in half the free
memory, else in pinned host memory with non-blocking copies; on the CPU a torch tensor gathered with
``index_select`` (no numpy -> torch copy per step).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

_MASK64 = (1 << 64) - 1


def _signed(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >= 1 << 63 else v


_GAMMA = _signed(0x9E3779B97F4A7C15)
_M1 = _signed(0xBF58476D1CE4E5B9)
_M2 = _signed(0x94D049BB133111EB)


def _srl(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def splitmix64(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on int64 tensors (wrap-around arithmetic, identical on every device)."""
    z = z + _GAMMA
    z = (z ^ _srl(z, 30)) * _M1
    z = (z ^ _srl(z, 27)) * _M2
    return z ^ _srl(z, 31)


def _splitmix_int(v: int) -> int:
    """Host version of :func:`splitmix64` for one python int (unsigned result)."""
    z = (v + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class BatchPlan:
    def __init__(self, y, num_classes: int, *, seed: int, balanced: bool, device: torch.device | str = "cpu"):
        y = torch.as_tensor(np.asarray(y), dtype=torch.int64)
        self.seed, self.balanced, self.n = seed, balanced, len(y)
        self.device = torch.device(device)
        counts = torch.bincount(y, minlength=num_classes)
        # order: image indices sorted by class; class c owns order[start[c] : start[c] + count[c]].
        self.order = torch.argsort(y, stable=True).to(self.device)
        self.start = (torch.cumsum(counts, 0) - counts).to(self.device)
        self.count = counts.to(self.device)
        self.present = torch.nonzero(counts).flatten().to(self.device)   # a class without images cannot be drawn
        self._arange: torch.Tensor | None = None

    def global_batch(self, step: int, batch_size: int) -> torch.Tensor:
        """Indices (batch_size,) int64 on the plan's device for step ``step``, identical on every rank."""
        key = _signed(_splitmix_int(_splitmix_int(self.seed & _MASK64) ^ step))
        if self._arange is None or len(self._arange) != batch_size:
            self._arange = torch.arange(batch_size, dtype=torch.int64, device=self.device)
        z = splitmix64(self._arange + key)
        hi, lo = _srl(z, 32), z & 0xFFFFFFFF                  # two independent 32-bit uniforms per image
        if not self.balanced:
            return (hi * self.n) >> 32
        # Class first, uniformly, then an image of that class: each class is seen equally often.
        cls = self.present[(hi * len(self.present)) >> 32]
        return self.order[self.start[cls] + ((lo * self.count[cls]) >> 32)]

    def local_batch(self, step: int, batch_size: int, rank: int, world_size: int) -> torch.Tensor:
        """This rank's share (batch_size // world_size,) of the global batch."""
        per = batch_size // world_size
        return self.global_batch(step, batch_size)[rank * per:(rank + 1) * per]


class DeviceData:
    """The training images and labels where the step runs; ``batch(idx)`` gathers one batch on ``device``."""

    def __init__(self, x, y, device: torch.device, *, channels_last: bool = False):
        self.device = device
        with warnings.catch_warnings():                   # a read-only memmap is fine: it is never written
            warnings.simplefilter("ignore", UserWarning)
            X = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)   # (N, C, H, W[, D])
        self.on_device = True
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            if X.numel() * X.element_size() < 0.5 * free:
                X = X.to(device)
            else:                                         # too big: gather on the host, copy asynchronously
                self.on_device = False
                X = X.pin_memory()
        self.X = X
        self.Y = torch.as_tensor(np.asarray(y), dtype=torch.int64).to(device)
        self.format = None
        if channels_last:
            self.format = torch.channels_last if X.ndim == 4 else torch.channels_last_3d
        self.index_device = device if self.on_device else torch.device("cpu")

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x (b, C, H, W[, D]) float32, y (b,) int64) on the device, for indices on ``index_device``."""
        x = self.X.index_select(0, idx)
        if not self.on_device:
            x = x.pin_memory().to(self.device, non_blocking=True)
            idx = idx.to(self.device, non_blocking=True)
        if self.format is not None:
            x = x.contiguous(memory_format=self.format)
        return x, self.Y.index_select(0, idx)
