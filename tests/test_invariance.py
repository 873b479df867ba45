"""batch_invariant on the CPU: row i of every op the models sample with is the same for batch 1 and batch 7."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medfab.sampling import invariance
from medfab.sampling.invariance import batch_invariant


def _rows_match_alone(f, n: int) -> None:
    """f(rows) on all n rows equals, row by row and bit for bit, f on that row alone (under batch_invariant)."""
    with batch_invariant("cpu"):
        batch = f(slice(0, n))
        for i in range(n):
            assert torch.equal(f(slice(i, i + 1))[0], batch[i]), f"row {i} of {n}"


# (func, input shape, weight shape, keywords): the diffusion U-Net's 3x3 convs on 16^2 and its 1x1 qkv on 8^2
# (PyTorch runs these on another backend for one image than for a batch), the GANs' 4x4 strided and
# transposed convs (same backend: they run batched), a progan3d-like 3D conv, and padding="same".
CONVS = [(F.conv2d, (7, 32, 16, 16), (64, 32, 3, 3), {"padding": 1}),
         (F.conv2d, (7, 128, 8, 8), (384, 128, 1, 1), {}),
         (F.conv2d, (20, 128, 8, 8), (384, 128, 1, 1), {}),            # >= 16 images: oneDNN again
         (F.conv2d, (7, 64, 32, 32), (128, 64, 4, 4), {"stride": 2, "padding": 1}),
         (F.conv_transpose2d, (7, 64, 8, 8), (64, 32, 4, 4), {"stride": 2, "padding": 1}),
         (F.conv3d, (7, 8, 8, 8, 8), (8, 8, 3, 3, 3), {"padding": 1}),
         (F.conv2d, (7, 32, 16, 16), (32, 32, 3, 3), {"padding": "same"})]


@pytest.mark.parametrize(("func", "xs", "ws", "kw"), CONVS, ids=lambda v: getattr(v, "__name__", None))
def test_convolution_rows_do_not_depend_on_the_batch(func, xs, ws, kw):
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(xs, generator=g), torch.randn(ws, generator=g) * 0.1, torch.randn(ws[0], generator=g)
    if func is F.conv_transpose2d:
        b = torch.randn(ws[1], generator=g)
    _rows_match_alone(lambda r: func(x[r], w, b, **kw), len(x))


@pytest.mark.skipif(not hasattr(torch._C, "_select_conv_backend"), reason="no backend selector: all row-wise")
def test_only_convolutions_whose_backend_depends_on_the_batch_run_row_wise():
    """The cheap rule of the module doc, as measured: the U-Net's small 3x3 maps split, the GANs' 4x4 don't."""
    x16, w3 = torch.randn(7, 32, 16, 16), torch.randn(64, 32, 3, 3)
    x32, w4 = torch.randn(7, 64, 32, 32), torch.randn(128, 64, 4, 4)
    with batch_invariant("cpu"):
        assert invariance._conv_is_batch_dependent(F.conv2d, (x16, w3, None, 1, 1), {})
        assert not invariance._conv_is_batch_dependent(F.conv2d, (x32, w4), {"stride": 2, "padding": 1})
        assert not invariance._conv_is_batch_dependent(F.conv_transpose2d, (x32, w4.transpose(0, 1)),
                                                       {"stride": 2, "padding": 1})


def test_attention_rows_do_not_depend_on_the_batch():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(7, 2, 64, 16, generator=g) for _ in range(3))
    mask = torch.randn(7, 2, 64, 64, generator=g)
    sdpa = F.scaled_dot_product_attention
    _rows_match_alone(lambda r: sdpa(q[r], k[r], v[r]), 7)
    _rows_match_alone(lambda r: sdpa(q[r], k[r], v[r], attn_mask=mask[r]), 7)          # a mask per row
    _rows_match_alone(lambda r: sdpa(q[r], key=k[r], value=v[r], attn_mask=mask[0, 0]), 7)   # one for all


def test_products_rows_do_not_depend_on_the_batch():
    g = torch.Generator().manual_seed(2)
    x, w = torch.randn(7, 5, 96, generator=g), torch.randn(64, 96, generator=g)
    _rows_match_alone(lambda r: F.linear(x[r, 0], w), 7)
    _rows_match_alone(lambda r: torch.matmul(x[r], w.T), 7)                       # (B, M, K) @ (K, N)
    _rows_match_alone(lambda r: x[r] @ w.T.expand(7, 96, 64)[r], 7)               # both batched
    _rows_match_alone(lambda r: torch.bmm(x[r], w.T.expand(7, 96, 64)[r]), 7)


def test_cpu_context_restores_threads_and_leaves_unbatched_inputs_alone():
    n = torch.get_num_threads()
    x, w = torch.randn(32, 16, 16), torch.randn(8, 32, 3, 3)         # unbatched (C, H, W): its C is no batch
    with batch_invariant("cpu"):
        assert torch.get_num_threads() == 1
        y = F.conv2d(x, w, padding=1)
    assert torch.get_num_threads() == n
    torch.set_num_threads(1)
    try:
        assert torch.equal(y, F.conv2d(x, w, padding=1))
    finally:
        torch.set_num_threads(n)
