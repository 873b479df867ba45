"""Batch-invariant sampling: the bytes of an image must not depend on the batch it was made in.

The per-image seeds (:class:`medfab.models.noise.StackedRandomGenerator`) make the *noise* of image ``i`` depend
on its seed alone. The network must then compute row ``i`` the same way whatever the batch size, and on the CPU
it does not by default (measured with torch 2.x, random-init medfab models, batch 1 vs 7 vs 64):

* oneDNN convolutions pick their blocking and thread split from the batch size and the thread count:
  differences up to ~4e-7 with 2 threads; none with one thread;
* BLAS GEMM (``nn.Linear``, ``matmul``) takes another kernel for 1 row than for 64 (gemv vs gemm): up to ~3e-6;
* 3D convolutions (progan3d) differ by batch size even on one thread (~1e-6).

Differences of 1e-6 in [-1, 1] flip an 8-bit level for about one pixel in 4,000, so files would differ. Under
:func:`batch_invariant` the CPU path runs single-threaded and every matrix product with a batch dimension is
computed one row at a time (always the 1-row kernel), as is every 3D convolution (a volume's convolution
dwarfs the per-row overhead), which makes the files byte-identical for any batch size
(tested for every registered model). Batching still pays: the convolutions run once per batch. On CUDA, TF32
is switched off and cuDNN autotuning disabled; cuDNN and cuBLAS still choose kernels by shape, so images agree
only within ``CUDA_ATOL`` (see :func:`medfab.sampling.fabricate.generate_batch`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

CUDA_ATOL = 1e-3    # max |difference| in [-1, 1] between batch sizes on CUDA (< 1/8 of an 8-bit level)


class _RowwiseProducts(TorchFunctionMode):
    """Compute ``F.linear`` / ``matmul`` / ``bmm`` / ``conv3d`` of a batched input one batch row at a time."""

    _FUNCS = frozenset({F.linear, torch.matmul, torch.bmm, torch.Tensor.matmul, torch.Tensor.__matmul__, F.conv3d})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self._FUNCS and args and isinstance(args[0], torch.Tensor) and args[0].dim() >= 2 \
                and len(args[0]) > 1:
            a, rest = args[0], args[1:]
            if func is F.linear or (func is F.conv3d and a.dim() == 5):   # (B, ..., K) x (N, K); (B, C, D, H, W)
                return torch.cat([func(a[i:i + 1], *rest, **kwargs) for i in range(len(a))])
            b = rest[0] if rest else None
            if isinstance(b, torch.Tensor) and a.dim() >= 3 and b.dim() == a.dim() and len(b) == len(a):
                return torch.cat([func(a[i:i + 1], b[i:i + 1], **kwargs) for i in range(len(a))])
        return func(*args, **kwargs)


@contextlib.contextmanager
def batch_invariant(device: torch.device | str) -> Iterator[None]:
    """Context for ``model.generate`` calls whose row ``i`` must not depend on the batch (see module doc)."""
    device = torch.device(device)
    if device.type == "cuda":
        m, c, bench = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
                       torch.backends.cudnn.benchmark)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = False
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = m, c
            torch.backends.cudnn.benchmark = bench
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _RowwiseProducts():
            yield
    finally:
        torch.set_num_threads(threads)
