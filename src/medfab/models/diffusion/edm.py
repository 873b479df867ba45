"""The noise process of Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative
Models" (EDM): preconditioning of the network, the training noise distribution and the loss weighting.

Notation of the paper: data y ~ p_data with std sigma_data; a noisy image x = y + n, n ~ N(0, sigma^2 I); the
denoiser D(x; sigma) estimates y. The network F_theta is wrapped (eq. 7, Table 1)

    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F_theta(c_in(sigma) x; c_noise(sigma))

so that F_theta sees unit-variance input and has a unit-variance target at every sigma.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# F_theta(c_in x, c_noise, y) -> (B, C, ...): the U-Net, or any network with that signature.
Network = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class EDM:
    sigma_data: float = 0.5      # std of the training images (in [-1, 1]); EDM's value for images
    P_mean: float = -1.2         # training noise: ln sigma ~ N(P_mean, P_std^2)  (Table 1, "Training")
    P_std: float = 1.2
    sigma_min: float = 0.002     # sampling noise range (Table 1, "Sampling"; eq. 5)
    sigma_max: float = 80.0
    rho: float = 7.0

    def coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(c_skip, c_out, c_in, c_noise) of Table 1 ("Network and preconditioning"), elementwise in sigma."""
        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * self.sigma_data / (sigma**2 + sd2).sqrt()
        c_in = 1 / (sigma**2 + sd2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise

    def denoise(self, net: Network, x: torch.Tensor, sigma: torch.Tensor | float,
                y: torch.Tensor, **net_kwargs) -> torch.Tensor:
        """D(x; sigma) of eq. 7 for a batch x (B, C, ...) at noise levels ``sigma`` (a scalar or (B,))."""
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).expand(x.shape[0])   # (B,)
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        c_skip, c_out, c_in = (c.view(-1, *(1,) * (x.dim() - 1)) for c in (c_skip, c_out, c_in))
        F_x = net(c_in * x, c_noise, y, **net_kwargs)
        return c_skip * x + c_out * F_x.float()

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (Table 1): = 1 / c_out^2, so the
        effective target of F_theta has unit weight at every sigma (eq. 8)."""
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def sample_sigma(self, n: int, device: torch.device) -> torch.Tensor:
        """ln sigma ~ N(P_mean, P_std^2), (n,), from the global RNG (the loop seeds it every step)."""
        return (self.P_mean + self.P_std * torch.randn(n, device=device)).exp()

    def loss(self, net: Network, y0: torch.Tensor, labels: torch.Tensor, **net_kwargs) -> torch.Tensor:
        """Per-image loss (B,): lambda(sigma) ||D(y + n; sigma) - y||^2 (eq. 2 and 8), mean over pixels."""
        sigma = self.sample_sigma(y0.shape[0], y0.device)                       # (B,)
        n = torch.randn_like(y0) * sigma.view(-1, *(1,) * (y0.dim() - 1))
        D = self.denoise(net, y0 + n, sigma, labels, **net_kwargs)
        return self.loss_weight(sigma) * (D - y0.float()).pow(2).flatten(1).mean(1)

    def sigma_steps(self, steps: int) -> torch.Tensor:
        """The time discretisation of eq. 5:
        sigma_i = (s_max^(1/rho) + i/(N-1) (s_min^(1/rho) - s_max^(1/rho)))^rho for i < N, then sigma_N = 0;
        (N + 1,) float64 (the samplers step between consecutive entries)."""
        i = torch.arange(steps, dtype=torch.float64)
        inv = 1 / self.rho
        lo, hi = self.sigma_min**inv, self.sigma_max**inv
        s = (hi + i / max(steps - 1, 1) * (lo - hi)) ** self.rho
        return torch.cat([s, torch.zeros(1, dtype=torch.float64)])


def ideal_gaussian_denoiser(mu: float, s: float) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """D(x; sigma) for data ~ N(mu, s^2) per pixel: mu + (x - mu) s^2 / (sigma^2 + s^2) (s = 0: one point).

    The exact posterior mean, used to test the samplers against the analytic probability-flow ODE solution.
    """
    return lambda x, sigma: mu + (x - mu) * (s**2 / (float(sigma) ** 2 + s**2))

