"""Fast inference (BatchNorm folded, channels-last, small CPU batches) gives the trained network's features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medfab.evaluation.classifier import SmallCNN, embed, inference_copy, predict_proba


def trained_like(spatial_dims: int) -> SmallCNN:
    """A SmallCNN whose BatchNorms are far from the identity, as after training (folding must not be a no-op)."""
    torch.manual_seed(spatial_dims)
    model = SmallCNN(3, width=4, spatial_dims=spatial_dims)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm3d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.2, 3.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.3)
    return model.eval()


@pytest.mark.parametrize("shape", [(1, 32, 32), (1, 16, 16, 16)])
def test_folded_inference_equals_the_trained_network(shape):
    model = trained_like(len(shape) - 1)
    x = np.random.default_rng(0).uniform(-1, 1, size=(11, *shape)).astype(np.float32)
    with torch.no_grad():
        ref_f = model.features(torch.from_numpy(x)).double().numpy()
        ref_p = torch.softmax(model(torch.from_numpy(x)), -1).double().numpy()
    threads = torch.get_num_threads()
    fast = inference_copy(model)
    assert not any(isinstance(m, nn.BatchNorm2d | nn.BatchNorm3d) for m in fast.modules())    # folded
    assert sum(isinstance(m, nn.BatchNorm2d | nn.BatchNorm3d) for m in model.modules()) == 8   # original kept
    for bs in (None, 1, 4, 256):                                       # a ragged last batch, one batch
        np.testing.assert_allclose(embed(model, x, batch_size=bs), ref_f, rtol=1e-5, atol=1e-6 * abs(ref_f).max())
    np.testing.assert_allclose(predict_proba(model, x), ref_p, rtol=1e-5, atol=1e-7)
    assert model.body[0].weight.is_contiguous()                        # the caller's model is left as it was
    assert torch.get_num_threads() == threads                          # the CPU worker threads restore it


def test_cpu_worker_threads_give_the_single_thread_features():
    model, x = trained_like(2), np.random.default_rng(1).uniform(-1, 1, size=(20, 1, 32, 32)).astype(np.float32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = embed(model, x, batch_size=3)
        torch.set_num_threads(3)                                       # 3 workers over 7 batches, in order
        np.testing.assert_allclose(embed(model, x, batch_size=3), one, rtol=1e-6, atol=1e-7)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)
