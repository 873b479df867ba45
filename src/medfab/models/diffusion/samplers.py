"""Sampling loops of the probability-flow ODE / reverse SDE, written on EDM's sigma parameterisation.

Each sampler integrates dx/dsigma = (x - D(x; sigma)) / sigma (EDM eq. 1 with s(t) = 1, sigma(t) = t,
written with the denoiser via eq. 3) from sigma_0 = sigma_max to sigma_N = 0 over the steps of EDM eq. 5
(``EDM.sigma_steps``). ``D(x, sigma)`` is any denoiser (the guided network, or an analytic one in the tests);
``generator`` is a ``torch.Generator``, a :class:`~medfab.models.noise.StackedRandomGenerator` or None, and
every random draw goes through :func:`medfab.models.blocks.randn`, so image i depends on its own seed alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from medfab.models.blocks import randn

Denoiser = Callable[[torch.Tensor, float], torch.Tensor]


def heun(D: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, generator=None, *, churn: float = 0.0,
         s_tmin: float = 0.05, s_tmax: float = 50.0, s_noise: float = 1.003) -> torch.Tensor:
    """EDM Algorithm 1 (deterministic 2nd-order Heun); ``churn`` > 0 gives Algorithm 2 (stochastic).

    ``x`` is x_0 = sigma_0 n (already scaled); 2N - 1 network evaluations for N steps.
    """
    N = len(sigmas) - 1
    for i in range(N):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        gamma = min(churn / N, math.sqrt(2) - 1) if s_tmin <= s <= s_tmax else 0.0   # Alg. 2, line 4
        s_hat = s * (1 + gamma)
        if gamma > 0:                                                     # Alg. 2, lines 5-6: add noise
            x = x + math.sqrt(s_hat**2 - s**2) * s_noise * randn(x.shape, generator, x.device)
        d = (x - D(x, s_hat)) / s_hat                                     # Alg. 1, line 4: dx/dsigma
        x_next = x + (s_next - s_hat) * d                                 # Euler step
        if s_next > 0:                                                    # Alg. 1, lines 6-8: 2nd-order fix
            d_next = (x_next - D(x_next, s_next)) / s_next
            x_next = x + (s_next - s_hat) * (0.5 * d + 0.5 * d_next)
        x = x_next
    return x


def ddim(D: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, generator=None, *,
         eta: float = 0.0) -> torch.Tensor:
    """DDIM (Song et al. 2021, eq. 12) in the variance-exploding form x = y + sigma n.

    eta = 0: deterministic (the Euler step of the ODE, x' = D + sigma' (x - D) / sigma); eta = 1: ancestral
    DDPM-like sampling. The predicted noise is kept at std sigma_down and fresh noise sigma_up is added, with
    sigma_down^2 + sigma_up^2 = sigma'^2 (eq. 12's sigma_t(eta) in VE coordinates).
    """
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = D(x, s)
        eps = (x - denoised) / s                                          # predicted unit noise
        s_up = min(s_next, eta * math.sqrt(max(s_next**2 * (s**2 - s_next**2) / s**2, 0.0)))
        s_down = math.sqrt(s_next**2 - s_up**2)
        x = denoised + s_down * eps
        if s_up > 0:
            x = x + s_up * randn(x.shape, generator, x.device)
    return x


def dpmpp_2m(D: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, generator=None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): multistep 2nd order in lambda = -ln sigma.

    Exact for the linear part of the ODE; the data prediction is extrapolated linearly from the last two
    denoiser outputs (r = h_last / h), one network evaluation per step; deterministic (``generator`` unused).
    """
    old = None
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = D(x, s)
        if s_next == 0:                                                   # last step: x_N = D(x; sigma)
            x = denoised
            break
        h = math.log(s / s_next)                                          # lambda' - lambda
        if old is None:                                                   # first step: DPM-Solver++(1) = DDIM
            d = denoised
        else:
            r = math.log(float(sigmas[i - 1]) / s) / h                    # h_last / h
            d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
        x = (s_next / s) * x - math.expm1(-h) * d                         # sigma'/sigma x - (e^-h - 1) D
        old = denoised
    return x


SAMPLERS = {"heun": heun, "ddim": ddim, "dpmpp": dpmpp_2m}
