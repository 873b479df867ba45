"""Refuse a model too large to allocate *before* allocating it.

A config with ``width: 1000000`` (a typo, or a damaged ``config.json``) would ask the allocator for
terabytes and fail with a RuntimeError deep inside torch, or swap the machine to a halt. The model is first
built on PyTorch's ``meta`` device (shapes only, no memory), its parameters are counted, and a model whose
weights alone would not fit in a quarter of the machine's memory is refused with a message.
"""

from __future__ import annotations

import os

from medfab.errors import MedfabError

MAX_PARAMETERS = 2_000_000_000  # about 8 GB of float32 weights: far beyond anything medfab trains


def memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def parameter_count(cls, config) -> int | None:
    """Parameters of ``cls(config)`` counted on the meta device; None when the model cannot be built there."""
    import torch

    try:
        with torch.device("meta"):
            model = cls(config)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # noqa: BLE001 -- a constructor that does real arithmetic: then only the real build tells
        return None


def check_model_size(cls, config, name: str) -> None:
    n = parameter_count(cls, config)
    if n is None:
        return
    # weights + gradients + two Adam moments (+ EMA copy) in float32
    need = n * 4 * 5
    limit = min(MAX_PARAMETERS, memory_bytes() // (4 * 5 * 4))
    if n > limit:
        raise MedfabError(
            f"model '{name}' would have {n:,} parameters (about {need / 2**30:,.0f} GiB to train), "
            f"more than this machine can hold (limit {limit:,})",
            "lower the width settings (e.g. g_width, d_width, width) or image_size in the config",
        )
