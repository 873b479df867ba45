"""Batch-invariant sampling: the bytes of an image must not depend on the batch it was made in.

The per-image seeds (:class:`medfab.models.noise.StackedRandomGenerator`) make the *noise* of image ``i`` depend
on its seed alone. The network must then compute row ``i`` the same way whatever the batch size, and on the CPU
it does not by default (measured with torch 2.13, random-init medfab models, batch 1 vs 7 vs 64):

* convolutions: PyTorch picks the backend by batch size (``torch._C._select_conv_backend``): a single small
  image (C x H x W <= 20480 with a kernel of at most 3x3, e.g. every level of the diffusion U-Net from 16^2 down)
  goes to the native im2col + GEMM kernel, a batch to oneDNN; a 1x1 convolution of fewer than 16 images on one
  thread goes to the native kernel too. The two sum in another order: up to ~7e-6, in 2D and in 3D alike;
* oneDNN convolutions pick their thread split from the batch size: up to ~4e-7 with 2 threads; none with one;
* BLAS GEMM (``nn.Linear``, ``matmul``) takes another kernel for 1 row than for 64 (gemv vs gemm): up to ~3e-6.

Group norm, batch norm (eval), interpolation, dropout (eval) and element-wise ops gave identical rows; so did
``F.scaled_dot_product_attention`` on one thread, but its CPU kernel splits work over batch x heads x query
blocks, so it is computed per row anyway (it runs only at the coarsest levels: the cost is nil).

Differences of 1e-6 in [-1, 1] flip an 8-bit level for about one pixel in 4,000, so files would differ. Under
:func:`batch_invariant` the CPU path runs single-threaded, and every matrix product and attention with a batch
dimension is computed one row at a time (always the 1-row kernel), as is every convolution (1D-3D, transposed
too) for which PyTorch would choose another backend for one image than for the batch (or whenever its selector
cannot tell). A convolution whose backend does not depend on the batch (oneDNN for both: the GANs' 4x4 kernels,
maps of 32^2 and more) runs batched, as do all other ops. Why not every convolution row-wise: at 64^2, batch 64,
that cost the GANs 35-70 % of their sampling throughput; this rule costs them nothing measurable, and the
diffusion models gain from batching everything else (they used to loop over images themselves). The files are
byte-identical for any batch size (tested for every registered model). On CUDA, TF32 is switched off and cuDNN
autotuning disabled; cuDNN and cuBLAS still choose kernels by shape, so images agree only within ``CUDA_ATOL``
(see :func:`medfab.sampling.fabricate.generate_batch`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

CUDA_ATOL = 1e-3    # max |difference| in [-1, 1] between batch sizes on CUDA (< 1/8 of an 8-bit level)

# Batched op -> (dimensions of a batched first argument, positions / keywords of the other arguments that carry
# the same batch: sliced with it when they have its dimension and length, passed whole (broadcast) otherwise).
_MATMUL = (range(3, 9), (1, "other", "mat2"))
_ROWWISE: dict = {
    F.linear: (range(2, 9), ()),
    torch.matmul: _MATMUL, torch.Tensor.matmul: _MATMUL, torch.Tensor.__matmul__: _MATMUL, torch.bmm: _MATMUL,
    F.scaled_dot_product_attention: (range(3, 9), (1, 2, 3, "key", "value", "attn_mask")),
}
# Convolutions: (spatial dims, transposed); row-wise only where the backend depends on the batch size.
_CONVS = {F.conv1d: (1, False), F.conv2d: (2, False), F.conv3d: (3, False),
          F.conv_transpose1d: (1, True), F.conv_transpose2d: (2, True), F.conv_transpose3d: (3, True)}
_CONV_ARGS = ("stride", "padding", "dilation", "groups")
_CONVT_ARGS = ("stride", "padding", "output_padding", "groups", "dilation")


def _backend(x: torch.Tensor, weight, bias, n: int, transposed: bool, params: dict):
    """The convolution backend PyTorch would run for input ``x`` (its private selector, used by its tests)."""
    def tup(v, default):
        v = default if v is None else v
        return [v] * n if isinstance(v, int) else list(v)

    return torch._C._select_conv_backend(
        x, weight, bias, tup(params.get("stride"), 1), tup(params.get("padding"), 0),
        tup(params.get("dilation"), 1), transposed, tup(params.get("output_padding"), 0),
        int(params.get("groups") or 1), None)


def _conv_is_batch_dependent(func, args: tuple, kwargs: dict) -> bool:
    """True if one image of ``args[0]`` would run on another backend than the whole batch (or if unsure)."""
    n, transposed = _CONVS[func]
    x, weight = args[0], args[1] if len(args) > 1 else kwargs.get("weight")
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    names = _CONVT_ARGS if transposed else _CONV_ARGS
    params = {**dict(zip(names, args[3:])), **kwargs}
    try:
        return _backend(x[:1], weight, bias, n, transposed, params) != _backend(x, weight, bias, n, transposed,
                                                                               params)
    except (AttributeError, RuntimeError, TypeError):   # selector gone or args it cannot take (padding="same")
        return True


class _RowwiseBatchOps(TorchFunctionMode):
    """Compute the batch-dependent ops of a batched input one batch row at a time (see module doc)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        a = args[0] if args else None
        if not isinstance(a, torch.Tensor) or a.dim() < 2 or len(a) < 2:
            return func(*args, **kwargs)
        if func in _CONVS:
            if a.dim() == _CONVS[func][0] + 2 and _conv_is_batch_dependent(func, args, kwargs):
                return torch.cat([func(a[i:i + 1], *args[1:], **kwargs) for i in range(len(a))])
        elif func in _ROWWISE:
            dims, others = _ROWWISE[func]
            if a.dim() in dims:
                return _rowwise(func, args, kwargs, others)
        return func(*args, **kwargs)


def _rowwise(func, args: tuple, kwargs: dict, others: tuple) -> torch.Tensor:
    a = args[0]

    def batched(v) -> bool:
        return isinstance(v, torch.Tensor) and v.dim() == a.dim() and len(v) == len(a)

    pos = [0] + [p for p in others if isinstance(p, int) and p < len(args) and batched(args[p])]
    kws = [k for k in others if isinstance(k, str) and batched(kwargs.get(k))]

    def row(i: int) -> torch.Tensor:
        r_args = [v[i:i + 1] if p in pos else v for p, v in enumerate(args)]
        return func(*r_args, **{k: v[i:i + 1] if k in kws else v for k, v in kwargs.items()})

    return torch.cat([row(i) for i in range(len(a))])


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
        with _RowwiseBatchOps():
            yield
    finally:
        torch.set_num_threads(threads)
