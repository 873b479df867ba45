"""Memory accounting for growing volumes: a measured peak per stage, and a clear out-of-memory message.

A 3D GAN's activations grow 8x with every level, so the stage that fits is the first thing a user of
``progan3d`` needs to know. On CUDA the peak is ``torch.cuda.max_memory_allocated`` (reset at each stage
start, so each report is that stage's own peak); on the CPU it is the process's maximum resident set size
(``resource.getrusage``), which never decreases, plus an estimate from parameter and activation sizes.
"""

from __future__ import annotations

import sys

import torch

from medfab.errors import MedfabError

GIB = 2.0**30


def is_oom(e: BaseException) -> bool:
    return isinstance(e, MemoryError) or "out of memory" in str(e).lower()


def oom_error(resolution: int, spatial_dims: int, batch: int) -> MedfabError:
    return MedfabError(
        f"out of memory training progan3d at {resolution}^{spatial_dims} with a micro-batch of {batch}",
        "lower --batch-size or --batch-gpu (micro-batch, gradients are accumulated), lower --size, "
        "or recompute activations with --set grad_checkpoint=true",
    )


def peak_bytes(device: torch.device) -> tuple[float, str]:
    """(bytes, what was measured) for ``device``."""
    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated(device)), "cuda max_memory_allocated"
    try:
        import resource
    except ImportError:                                          # Windows
        return float("nan"), "unavailable"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(rss if sys.platform == "darwin" else rss * 1024), "max RSS of the process"


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def estimate_bytes(n_params: int, resolution: int, spatial_dims: int, batch: int, widths_at_res: int,
                   *, grad_checkpoint: bool = False) -> float:
    """A rough float32 training footprint: weights, grads and Adam's two moments, plus activations.

    Activations: the two finest blocks of G and D each keep about 6 maps of ``widths_at_res`` channels per
    sample at full resolution, and WGAN-GP's double backward keeps D's three times (real, fake, interpolates).
    Checkpointing keeps only block inputs (about a third).
    """
    voxels = resolution**spatial_dims
    act = batch * voxels * widths_at_res * 4.0 * (6 + 3 * 6)
    if grad_checkpoint:
        act /= 3
    return 4.0 * n_params * 4 + act
