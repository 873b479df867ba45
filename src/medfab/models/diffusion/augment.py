"""Non-leaking augmentation for diffusion training (EDM, Karras et al. 2022, §5 and App. B.4 "augment_pipe").

Each training image is, with probability ``p``, flipped left-right and/or shifted by a few whole pixels (the
shifted-in border takes the background value -1). The network is told what was done (``labels``), so it learns
the augmented images as their own conditional distribution and never has to produce them: sampling passes
zero labels, i.e. "not augmented", and the augmentations do not leak into the samples. More distinct training
inputs for a 52-image class means less reason to memorise any one of them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_dim(spatial_dims: int) -> int:
    """Length of the augmentation label: [flip, shift per spatial axis]."""
    return 1 + spatial_dims


def augment(x: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x', labels): x (B, C, *S) in [-1, 1] -> augmented x' and labels (B, 1 + spatial_dims) in [-1, 1].

    Parameters are drawn first (global RNG, on the CPU: no device sync), then applied deterministically, as
    torchio's random transforms do.
    """
    B, sd, S = x.shape[0], x.dim() - 2, x.shape[-1]
    m = max(1, S // 16)                                                # max shift: 1/16 of the side
    on = torch.rand(B) < p
    flip = (torch.rand(B) < 0.5) & on
    shift = torch.randint(-m, m + 1, (B, sd)) * on[:, None]            # (B, sd) whole pixels
    xp = F.pad(x, [m, m] * sd, value=-1.0)
    out = []
    for i in range(B):
        xi = xp[i].flip(-1) if flip[i] else xp[i]
        out.append(xi[(slice(None),) + tuple(slice(m - s, m - s + S) for s in shift[i].tolist())])
    labels = torch.cat([flip[:, None].float(), shift.float() / m], dim=1)
    return torch.stack(out), labels.to(x.device)
