"""Exponential moving average of a generator's weights (``G_ema``), the network every GAN samples from.

With 52 training images a GAN's generator oscillates from step to step; averaging its weights gives
smoother, better samples at no training cost (Karras et al. 2018, "Progressive Growing of GANs", §A.1).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` in eval mode (it is never trained, only averaged into)."""
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


def ema_decay(step: int, decay: float) -> float:
    """Decay with warm-up: min(decay, (1 + step) / (10 + step)).

    Early steps use a short average, so G_ema follows the fast-changing G instead of remembering its random
    initialisation for ~1/(1 - decay) steps (the same ramp as TensorFlow's ExponentialMovingAverage).
    """
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, *, step: int, decay: float) -> None:
    """ema <- d * ema + (1 - d) * model with the warmed-up decay ``ema_decay(step, decay)``."""
    lerp_ema(ema, model, ema_decay(step, decay))


@torch.no_grad()
def lerp_ema(ema: nn.Module, model: nn.Module, d: float) -> None:
    """ema <- d * ema + (1 - d) * model for parameters; buffers (BN running stats) are copied."""
    e_params = list(ema.parameters())
    m_params = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(e_params, m_params, 1.0 - d)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)
