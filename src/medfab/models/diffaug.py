"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The same random, differentiable transforms are applied to every image D sees, real and fake, so D cannot
memorise the few real images while G still gets gradients through the augmentation. Written for 2D and 3D.
Following torchio's split: :func:`sample_params` draws the random parameters (seeded by ``generator``),
:func:`apply` is deterministic given them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from medfab.errors import MedfabError

POLICIES = ("translation", "cutout", "color")
FILL = -1.0   # background value of images in [-1, 1]: shifted-in and cut-out regions look like background


@dataclass
class AugmentParams:
    brightness: torch.Tensor | None = None    # (B,) added, U(-0.5, 0.5)
    contrast: torch.Tensor | None = None      # (B,) scale around each image's mean, U(0.5, 1.5)
    shift: torch.Tensor | None = None         # (B, S) integer shift per spatial axis, |s| <= ratio * side
    cut_centre: torch.Tensor | None = None    # (B, S) integer centre of the cut-out box
    cut_size: tuple[int, ...] = ()            # box side per axis: ratio * side


def parse_policy(policy: str) -> tuple[str, ...]:
    """"translation,cutout,color" -> ("translation", "cutout", "color"); "" or "none" -> ()."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip() and p.strip() != "none")
    bad = [p for p in names if p not in POLICIES]
    if bad:
        raise MedfabError(f"unknown DiffAugment policy '{bad[0]}'",
                          f"use a comma-separated subset of {', '.join(POLICIES)} (or 'none')")
    return names


def _uniform(n: int, generator, device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device if generator else device).to(device)


def _randint(high: int, shape, generator, device) -> torch.Tensor:
    g_dev = generator.device if generator is not None else device
    return torch.randint(0, high, shape, generator=generator, device=g_dev).to(device)


def sample_params(x: torch.Tensor, policy: tuple[str, ...], *, translation_ratio: float = 0.125,
                  cutout_ratio: float = 0.5, generator: torch.Generator | None = None) -> AugmentParams:
    """Draw the augmentation of each image of ``x`` (B, C, *spatial); all randomness from ``generator``."""
    b, sides, dev = x.shape[0], x.shape[2:], x.device
    p = AugmentParams()
    if "color" in policy:
        p.brightness = _uniform(b, generator, dev) - 0.5
        p.contrast = _uniform(b, generator, dev) + 0.5
    if "translation" in policy:
        cols = [_randint(2 * int(s * translation_ratio + 0.5) + 1, (b,), generator, dev)
                - int(s * translation_ratio + 0.5) for s in sides]
        p.shift = torch.stack(cols, 1)                                   # (B, S)
    if "cutout" in policy:
        p.cut_size = tuple(int(s * cutout_ratio + 0.5) for s in sides)
        cols = [_randint(s + (1 - c % 2), (b,), generator, dev) for s, c in zip(sides, p.cut_size)]
        p.cut_centre = torch.stack(cols, 1)                              # (B, S)
    return p


def _grid(sides, device) -> list[torch.Tensor]:
    """Integer coordinate of every voxel per axis, each (1, *sides)."""
    return [g.unsqueeze(0) for g in torch.meshgrid(*[torch.arange(s, device=device) for s in sides],
                                                    indexing="ij")]


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (x.dim() - 1)))


def apply(x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
    """Deterministic, differentiable augmentation of ``x`` (B, C, *spatial) with the drawn parameters."""
    if p.brightness is not None:
        x = x + _bcast(p.brightness, x)
        mean = x.mean(dim=tuple(range(1, x.dim())), keepdim=True)
        x = (x - mean) * _bcast(p.contrast, x) + mean
    sides = x.shape[2:]
    if p.shift is not None or p.cut_centre is not None:
        grid = _grid(sides, x.device)
    if p.shift is not None:
        # out[i] = x[i - shift], background where i - shift leaves the image: a gather keeps it differentiable
        b, c = x.shape[:2]
        src = [g - p.shift[:, a].view(-1, *([1] * len(sides))) for a, g in enumerate(grid)]   # (B, *sides)
        inside = torch.stack([(s >= 0) & (s < n) for s, n in zip(src, sides)]).all(0)        # (B, *sides)
        flat = torch.zeros_like(src[0])
        for s, n in zip(src, sides):
            flat = flat * n + s.clamp(0, n - 1)
        idx = flat.view(b, 1, -1).expand(b, c, -1)                                           # (B, C, N)
        out = torch.gather(x.reshape(b, c, -1), 2, idx).view_as(x)
        x = torch.where(inside.unsqueeze(1), out, torch.full_like(out, FILL))
    if p.cut_centre is not None:
        box = torch.stack([(g - p.cut_centre[:, a].view(-1, *([1] * len(sides)))).abs() <= size // 2
                           for a, (g, size) in enumerate(zip(grid, p.cut_size))]).all(0)     # (B, *sides)
        x = torch.where(box.unsqueeze(1), torch.full_like(x, FILL), x)
    return x


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], *, generator: torch.Generator | None = None,
                 translation_ratio: float = 0.125, cutout_ratio: float = 0.5) -> torch.Tensor:
    """Augment a batch (B, C, *spatial); ``policy=()`` returns it unchanged."""
    if not policy:
        return x
    return apply(x, sample_params(x, policy, translation_ratio=translation_ratio, cutout_ratio=cutout_ratio,
                                  generator=generator))
